package statetest

import (
	"context"
	"errors"
	"sync"

	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/state"
)

// ErrFactory is the error of a creation the fleet makes fail.
var ErrFactory = errors.New("statetest: compute API unreachable")

// Fleet creates one Fake per resource: it is the instance factory of
// worker and scheduler tests. A resource's fake outlives its state
// machine, as a cloud outlives the orchestrator. It is safe for concurrent
// use.
type Fleet struct {
	mu        sync.Mutex
	def       Model
	models    map[string]Model
	fakes     map[string]*Fake
	failFirst int
}

// NewFleet returns a fleet whose resources start as def.
func NewFleet(def Model) *Fleet {
	return &Fleet{def: def, models: map[string]Model{}, fakes: map[string]*Fake{}}
}

// NewInstance returns the resource's fake, creating it on first use.
func (f *Fleet) NewInstance(_ context.Context, r event.Resource) (state.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failFirst > 0 {
		f.failFirst--
		return nil, ErrFactory
	}
	if fk, ok := f.fakes[r.ID]; ok {
		return fk, nil
	}
	m, ok := f.models[r.ID]
	if !ok {
		m = f.def
	}
	fk := New(m)
	f.fakes[r.ID] = fk
	return fk, nil
}

// Set makes resource id start as m instead of the default.
func (f *Fleet) Set(id string, m Model) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.models[id] = m
}

// FailFirst makes the next n creations fail with ErrFactory.
func (f *Fleet) FailFirst(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failFirst = n
}

// Fake returns the resource's fake, if one was created.
func (f *Fleet) Fake(id string) (*Fake, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fk, ok := f.fakes[id]
	return fk, ok
}
