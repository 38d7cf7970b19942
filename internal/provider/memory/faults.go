// Package memory provides in-memory implementations of provider.NetworkAPI
// and provider.ComputeAPI for tests and examples: a network API populated
// by hand, and a compute API that hands booted instances to a pluggable
// Runner (a no-op, a fake appliance, or a real agent in a namespace). Both
// can be told to fail, and both are safe for concurrent use.
package memory

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
)

// faults makes operations fail on demand.
type faults struct {
	mu sync.Mutex
	m  map[string]*fault
}

type fault struct {
	err   error
	times int // < 0: until cleared
}

// set makes the next times calls of op fail with err (times < 0: every call;
// err nil or times 0: clear).
func (f *faults) set(op string, err error, times int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]*fault{}
	}
	if err == nil || times == 0 {
		delete(f.m, op)
		return
	}
	f.m[op] = &fault{err: err, times: times}
}

// check returns the injected error for op, if any, and counts it.
func (f *faults) check(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	ft, ok := f.m[op]
	if !ok {
		return nil
	}
	if ft.times > 0 {
		ft.times--
		if ft.times == 0 {
			delete(f.m, op)
		}
	}
	return fmt.Errorf("%s: injected failure: %w", op, ft.err)
}

// newID returns a random UUID (version 4) string.
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
