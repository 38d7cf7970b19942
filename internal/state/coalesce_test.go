package state

import (
	"slices"
	"testing"

	"github.com/astara-go/astara/internal/event"
)

const (
	C  = event.Create
	R  = event.Read
	U  = event.Update
	D  = event.Delete
	P  = event.Poll
	RB = event.Rebuild
	CR = event.ClusterRebuild
	N  = event.None
)

func queueOf(actions ...event.Action) *Queue {
	var q Queue
	for _, a := range actions {
		q.PushBack(a)
	}
	return &q
}

// TestCoalesce runs every example of the reference (§4.2, from the
// original's test_state.py) and the cases of each rule.
func TestCoalesce(t *testing.T) {
	tests := []struct {
		name     string
		prev     event.Action
		inst     InstanceState
		queue    []event.Action
		want     event.Action
		wantLeft []event.Action
	}{
		// The reference's examples.
		{"updates and polls, then read", P, Up, []event.Action{U, P, U, P, U, R}, U, []event.Action{R}},
		{"update then create", P, Up, []event.Action{U, C}, C, nil},
		{"create then update", P, Up, []event.Action{C, U}, C, nil},
		{"create then delete", P, Up, []event.Action{C, D}, D, []event.Action{C, D}},

		// DELETE short-circuits, wherever it is, leaving the queue.
		{"delete alone", P, Configured, []event.Action{D}, D, []event.Action{D}},
		{"delete last", U, Configured, []event.Action{U, RB, P, D}, D, []event.Action{U, RB, P, D}},
		{"delete first", P, Configured, []event.Action{D, U}, D, []event.Action{D, U}},
		{"delete while degraded adds nothing", P, Degraded, []event.Action{D}, D, []event.Action{D}},

		// The previous action is sticky.
		{"empty queue keeps prev", U, Up, nil, U, nil},
		{"empty queue keeps none", N, Up, nil, N, nil},
		{"poll after update stays update", U, Configured, []event.Action{P}, U, nil},
		{"poll after poll", P, Configured, []event.Action{P}, P, nil},
		{"poll from none", N, Configured, []event.Action{P}, P, nil},
		{"polls from none", N, Configured, []event.Action{P, P, P}, P, nil},
		{"poll then update", P, Configured, []event.Action{P, U}, U, nil},

		// UPDATE followed by CREATE becomes CREATE.
		{"prev update, create", U, Down, []event.Action{C}, C, nil},
		{"update create update", P, Down, []event.Action{U, C, U}, C, nil},
		// CREATE absorbs UPDATE.
		{"prev create absorbs updates", C, Booting, []event.Action{U, U, P}, C, nil},
		{"create then read stops", P, Down, []event.Action{C, R}, C, []event.Action{R}},

		// REBUILD upgrades.
		{"update then rebuild", P, Up, []event.Action{U, RB}, RB, nil},
		{"create then rebuild", P, Down, []event.Action{C, RB}, RB, nil},
		{"prev cluster rebuild, rebuild", CR, Down, []event.Action{RB}, RB, nil},
		{"rebuild then update stops", P, Up, []event.Action{RB, U}, RB, []event.Action{U}},
		{"rebuild absorbs polls and rebuilds", RB, Up, []event.Action{P, RB, P, RB}, RB, nil},
		{"read then rebuild stops", R, Up, []event.Action{RB}, R, []event.Action{RB}},
		{"prev rebuild, update stops", RB, Up, []event.Action{U}, RB, []event.Action{U}},

		// A different action waits for the next pass.
		{"prev update, read", U, Configured, []event.Action{R, U}, U, []event.Action{R, U}},
		{"prev read, update", R, Configured, []event.Action{U}, R, []event.Action{U}},
		{"prev create, read", C, Up, []event.Action{P, R}, C, []event.Action{R}},
		{"same action merges", R, Configured, []event.Action{R, R, P}, R, nil},
		{"prev none takes head", N, Up, []event.Action{R, U}, R, []event.Action{U}},

		// A DEGRADED instance gets one CLUSTER_REBUILD.
		{"degraded, empty queue", P, Degraded, nil, CR, nil},
		{"degraded, update first", P, Degraded, []event.Action{U}, U, []event.Action{CR}},
		{"degraded, cluster rebuild queued", P, Degraded, []event.Action{CR, P}, CR, nil},
		{"degraded, rebuild upgrade", CR, Degraded, []event.Action{RB}, RB, []event.Action{CR}},
		{"not degraded, nothing added", P, Down, nil, P, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := queueOf(tt.queue...)
			got := Coalesce(tt.prev, q, tt.inst)
			if got != tt.want {
				t.Errorf("Coalesce(%s, %v) = %s, want %s", tt.prev, tt.queue, got, tt.want)
			}
			if left := q.Slice(); !slices.Equal(left, tt.wantLeft) && !(len(left) == 0 && len(tt.wantLeft) == 0) {
				t.Errorf("left %v, want %v", left, tt.wantLeft)
			}
		})
	}
}

var alphabet = []event.Action{C, R, U, D, P, RB, CR}

// sequences calls fn with every sequence over alphabet up to length max.
func sequences(max int, fn func([]event.Action)) {
	var rec func(prefix []event.Action)
	rec = func(prefix []event.Action) {
		fn(prefix)
		if len(prefix) == max {
			return
		}
		for _, a := range alphabet {
			rec(append(prefix, a))
		}
	}
	rec(make([]event.Action, 0, max))
}

func added(actions []event.Action) *Queue {
	var q Queue
	for _, a := range actions {
		q.Add(a)
	}
	return &q
}

// TestAddIsExact proves that the absorption Queue.Add does changes nothing
// Coalesce computes: for every previous action, instance state and queue up
// to six actions (five under the race detector), coalescing the raw queue and the queue built with Add
// give the same action and leave queues that Add makes equal. By induction
// over passes, a machine fed with Add performs the same actions as one fed
// the raw events.
func TestAddIsExact(t *testing.T) {
	maxLen := 6
	if raceEnabled || testing.Short() {
		maxLen = 5
	}
	prevs := append([]event.Action{N}, alphabet...)
	n := 0
	sequences(maxLen, func(seq []event.Action) {
		for _, prev := range prevs {
			for _, inst := range []InstanceState{Up, Degraded} {
				raw, norm := queueOf(seq...), added(seq)
				a1, a2 := Coalesce(prev, raw, inst), Coalesce(prev, norm, inst)
				if a1 != a2 {
					t.Fatalf("prev %s, %s, queue %v: raw gives %s, Add gives %s (queue %v)", prev, inst, seq, a1, a2, added(seq).Slice())
				}
				if l1, l2 := added(raw.Slice()).Slice(), added(norm.Slice()).Slice(); !slices.Equal(l1, l2) {
					t.Fatalf("prev %s, %s, queue %v: raw leaves %v, Add leaves %v", prev, inst, seq, l1, l2)
				}
				n++
			}
		}
	})
	t.Logf("%d cases", n)
}

func TestQueueAddAbsorbs(t *testing.T) {
	tests := []struct {
		in   []event.Action
		want []event.Action
	}{
		{[]event.Action{P}, []event.Action{P}},
		{[]event.Action{P, P, P}, []event.Action{P}},
		{[]event.Action{U, P, U, P, U, R}, []event.Action{U, R}},
		{[]event.Action{P, U}, []event.Action{P, U}},
		{[]event.Action{U, RB, U, RB}, []event.Action{U, RB, U, RB}},
		{[]event.Action{C, C, D, D}, []event.Action{C, D}},
	}
	for _, tt := range tests {
		if got := added(tt.in).Slice(); !slices.Equal(got, tt.want) {
			t.Errorf("Add %v = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestQueue checks the queue against a slice, across its inline part and
// its overflow.
func TestQueue(t *testing.T) {
	var q Queue
	var ref []event.Action
	check := func(op string) {
		t.Helper()
		if got := q.Slice(); !slices.Equal(got, ref) && !(len(got) == 0 && len(ref) == 0) {
			t.Fatalf("after %s: queue %v, want %v", op, got, ref)
		}
		if q.Len() != len(ref) {
			t.Fatalf("after %s: Len %d, want %d", op, q.Len(), len(ref))
		}
		front, back := N, N
		if len(ref) > 0 {
			front, back = ref[0], ref[len(ref)-1]
		}
		if q.Front() != front || q.Back() != back {
			t.Fatalf("after %s: Front/Back %s/%s, want %s/%s", op, q.Front(), q.Back(), front, back)
		}
	}
	for i := range 20 {
		a := alphabet[i%len(alphabet)]
		q.PushBack(a)
		ref = append(ref, a)
		check("PushBack")
	}
	for i := range 5 {
		a := alphabet[(i*3)%len(alphabet)]
		q.PushFront(a)
		ref = append([]event.Action{a}, ref...)
		check("PushFront")
	}
	if got := q.Remove(P); got != 3 {
		t.Fatalf("Remove(poll) = %d, want 3", got)
	}
	ref = slices.DeleteFunc(ref, func(a event.Action) bool { return a == P })
	check("Remove")
	if !q.Contains(D) || q.Contains(P) {
		t.Fatalf("Contains: delete %v poll %v", q.Contains(D), q.Contains(P))
	}
	for len(ref) > 0 {
		if got := q.PopFront(); got != ref[0] {
			t.Fatalf("PopFront = %s, want %s", got, ref[0])
		}
		ref = ref[1:]
		check("PopFront")
	}
	if got := q.PopFront(); got != N {
		t.Fatalf("PopFront on empty = %s", got)
	}
	for range 3 {
		q.PushFront(U)
		ref = append(ref, U)
	}
	check("PushFront on empty")
	q.Clear()
	ref = nil
	check("Clear")
}
