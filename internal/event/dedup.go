package event

import "sync"

// DefaultDedupSize is how many message keys a Dedup remembers by default.
// oslo.messaging itself remembers 16; a broker redelivers what was in
// flight when a connection dropped, at most the prefetch count per
// consumer, so a few thousand covers every realistic burst.
const DefaultDedupSize = 4096

// Dedup remembers the keys of the last messages handled (see
// Notification.DedupKey), so that a redelivered message is recognised. It
// is bounded: the oldest key is forgotten first. It is safe for concurrent
// use.
type Dedup struct {
	mu   sync.Mutex
	seen map[string]struct{}
	ring []string
	next int
}

// NewDedup returns a Dedup remembering size keys (DefaultDedupSize if
// size <= 0).
func NewDedup(size int) *Dedup {
	if size <= 0 {
		size = DefaultDedupSize
	}
	return &Dedup{seen: make(map[string]struct{}, size), ring: make([]string, size)}
}

// Seen reports whether key was added and not forgotten yet. The empty key
// is never seen.
func (d *Dedup) Seen(key string) bool {
	if key == "" {
		return false
	}
	d.mu.Lock()
	_, ok := d.seen[key]
	d.mu.Unlock()
	return ok
}

// Add remembers key, forgetting the oldest key when full. It reports
// whether key is new; the empty key is ignored.
func (d *Dedup) Add(key string) bool {
	if key == "" {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.seen[key]; ok {
		return false
	}
	if old := d.ring[d.next]; old != "" {
		delete(d.seen, old)
	}
	d.ring[d.next] = key
	d.next = (d.next + 1) % len(d.ring)
	d.seen[key] = struct{}{}
	return true
}

// Len returns how many keys are remembered.
func (d *Dedup) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.seen)
}
