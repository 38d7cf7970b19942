package state

import "github.com/astara-go/astara/internal/event"

// inline is how many queued actions a Queue holds without allocating.
const inline = 7

// Queue is a resource's FIFO of pending actions. The first few actions are
// stored inline, so an idle or lightly loaded machine allocates nothing for
// its queue. The zero value is an empty queue.
type Queue struct {
	n     uint8                // actions in small
	small [inline]event.Action // the first actions, in order
	more  []event.Action       // the actions after small, in order
}

// Len returns the number of queued actions.
func (q *Queue) Len() int { return int(q.n) + len(q.more) }

// Front returns the first action (None if the queue is empty).
func (q *Queue) Front() event.Action {
	if q.n == 0 {
		return event.None
	}
	return q.small[0]
}

// Back returns the last action (None if the queue is empty).
func (q *Queue) Back() event.Action {
	if len(q.more) > 0 {
		return q.more[len(q.more)-1]
	}
	if q.n == 0 {
		return event.None
	}
	return q.small[q.n-1]
}

// PushBack appends a.
func (q *Queue) PushBack(a event.Action) {
	if q.n < inline {
		q.small[q.n] = a
		q.n++
		return
	}
	q.more = append(q.more, a)
}

// PushFront prepends a.
func (q *Queue) PushFront(a event.Action) {
	if q.n == inline {
		q.more = append([]event.Action{q.small[inline-1]}, q.more...)
		q.n--
	}
	copy(q.small[1:q.n+1], q.small[:q.n])
	q.small[0] = a
	q.n++
}

// PopFront removes and returns the first action (None if the queue is empty).
func (q *Queue) PopFront() event.Action {
	if q.n == 0 {
		return event.None
	}
	a := q.small[0]
	copy(q.small[:q.n-1], q.small[1:q.n])
	q.n--
	if len(q.more) > 0 {
		q.small[q.n] = q.more[0]
		q.n++
		q.more = q.more[1:]
		if len(q.more) == 0 {
			q.more = nil
		}
	}
	return a
}

// Contains reports whether a is queued.
func (q *Queue) Contains(a event.Action) bool {
	for _, b := range q.small[:q.n] {
		if b == a {
			return true
		}
	}
	for _, b := range q.more {
		if b == a {
			return true
		}
	}
	return false
}

// Remove removes every queued a and reports how many there were.
func (q *Queue) Remove(a event.Action) int {
	all := q.Slice()
	kept := all[:0]
	for _, b := range all {
		if b != a {
			kept = append(kept, b)
		}
	}
	removed := len(all) - len(kept)
	if removed > 0 {
		q.Clear()
		for _, b := range kept {
			q.PushBack(b)
		}
	}
	return removed
}

// Clear empties the queue.
func (q *Queue) Clear() { *q = Queue{} }

// Slice returns a copy of the queued actions, first to last.
func (q *Queue) Slice() []event.Action {
	s := make([]event.Action, 0, q.Len())
	s = append(s, q.small[:q.n]...)
	return append(s, q.more...)
}

// Add queues an action the way a Machine receives events: a POLL reaching a
// non-empty queue, or an action equal to the last queued one, is absorbed,
// because Coalesce would drop it anyway (for any previous action other than
// None, which a Machine never has). This keeps queues short under bursts
// without changing what Coalesce computes; TestAddIsExact proves it over
// every queue up to a length. Add reports whether the queue grew.
func (q *Queue) Add(a event.Action) bool {
	if q.Len() > 0 && (a == event.Poll || a == q.Back()) {
		return false
	}
	q.PushBack(a)
	return true
}
