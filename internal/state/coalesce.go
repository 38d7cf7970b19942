package state

import "github.com/astara-go/astara/internal/event"

// Coalesce is CalcAction's algorithm, exactly as the original
// (astara/state.py:CalcAction.execute): it folds the queued actions into
// the one action to perform next, starting from prev, the machine's previous
// action (actions are sticky), and removes what it consumed from q.
//
//   - A queued DELETE wins at once; the queue is left untouched.
//   - A DEGRADED instance gets a CLUSTER_REBUILD queued, unless one is.
//   - UPDATE followed by CREATE becomes CREATE; CREATE, UPDATE or
//     CLUSTER_REBUILD followed by REBUILD becomes REBUILD; CREATE absorbs a
//     following UPDATE; a POLL after any action is dropped.
//   - A different action stops the fold: it waits for the next pass.
//
// None is treated as Python's None (no previous action).
func Coalesce(prev event.Action, q *Queue, inst InstanceState) event.Action {
	if q.Contains(event.Delete) {
		return event.Delete
	}
	if inst == Degraded && !q.Contains(event.ClusterRebuild) {
		q.PushBack(event.ClusterRebuild)
	}
	action := prev
	for q.Len() > 0 {
		head := q.Front()
		switch {
		case action == event.Update && head == event.Create:
			action = q.PopFront() // upgrade to CREATE
			continue
		case (action == event.Create || action == event.Update || action == event.ClusterRebuild) && head == event.Rebuild:
			action = q.PopFront() // upgrade to REBUILD
			continue
		case action == event.Create && head == event.Update:
			q.PopFront() // CREATE implies UPDATE
			continue
		case action != event.None && head == event.Poll:
			q.PopFront() // a redundant poll
			continue
		case action != event.None && action != event.Poll && action != head:
			return action // different work: do the current action first
		}
		action = q.PopFront() // no action yet, a poll, or the same action
	}
	return action
}
