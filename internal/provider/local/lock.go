package local

import (
	"context"
	"sync"
)

// keyedMutex serializes what is done under one key (an instance id, an
// instance name); waiting for a key honours the context. The zero value
// is ready.
type keyedMutex struct {
	mu   sync.Mutex
	held map[string]chan struct{} // closed when the key is released
}

// lock waits until key is free and takes it; unlock releases it.
func (k *keyedMutex) lock(ctx context.Context, key string) (unlock func(), err error) {
	for {
		k.mu.Lock()
		ch, busy := k.held[key]
		if !busy {
			if k.held == nil {
				k.held = map[string]chan struct{}{}
			}
			ch = make(chan struct{})
			k.held[key] = ch
			k.mu.Unlock()
			return func() {
				k.mu.Lock()
				delete(k.held, key)
				k.mu.Unlock()
				close(ch)
			}, nil
		}
		k.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
