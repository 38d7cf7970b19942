package event

import (
	"fmt"
	"sync"
	"testing"
)

func TestDedup(t *testing.T) {
	d := NewDedup(3)
	if d.Seen("a") {
		t.Fatal("seen before added")
	}
	for _, k := range []string{"a", "b", "c"} {
		if !d.Add(k) {
			t.Fatalf("Add(%s) not new", k)
		}
	}
	if d.Add("b") {
		t.Error("Add(b) twice is new")
	}
	if !d.Seen("a") || !d.Seen("b") || !d.Seen("c") || d.Len() != 3 {
		t.Fatalf("lost a key within the bound, len %d", d.Len())
	}
	d.Add("d") // forgets a, the oldest
	if d.Seen("a") || !d.Seen("d") || d.Len() != 3 {
		t.Errorf("after overflow: a %v d %v len %d", d.Seen("a"), d.Seen("d"), d.Len())
	}
	if d.Add("") || d.Seen("") {
		t.Error("the empty key is remembered")
	}
	if n := NewDedup(0); len(n.ring) != DefaultDedupSize {
		t.Errorf("default size %d", len(n.ring))
	}
}

func TestDedupConcurrent(t *testing.T) {
	d := NewDedup(100)
	var wg sync.WaitGroup
	news := make([]int, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if d.Add(fmt.Sprint(i)) {
					news[g]++
				}
				d.Seen(fmt.Sprint(i))
			}
		}()
	}
	wg.Wait()
	if total := news[0] + news[1] + news[2] + news[3]; total != 50 {
		t.Errorf("%d keys were new, want 50", total)
	}
}
