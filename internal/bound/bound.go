// Package bound is a fixed pool of slots shared by concurrent work, which remembers the most
// held at once: the daemon's bounds on applies and on builds are each one.
package bound

import (
	"context"
	"sync"
)

// Slots is a pool of n slots. A nil *Slots bounds nothing: Acquire and TryAcquire always
// succeed.
type Slots struct {
	sem  chan struct{}
	mu   sync.Mutex
	peak int
}

// New makes n slots (at least 1).
func New(n int) *Slots { return &Slots{sem: make(chan struct{}, max(n, 1))} }

// Acquire waits for a slot and returns its release; ctx's error if it ends first.
func (s *Slots) Acquire(ctx context.Context) (release func(), err error) {
	if s == nil {
		return func() {}, nil
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.held(), nil
}

// TryAcquire takes a slot if one is free at once.
func (s *Slots) TryAcquire() (release func(), ok bool) {
	if s == nil {
		return func() {}, true
	}
	select {
	case s.sem <- struct{}{}:
		return s.held(), true
	default:
		return nil, false
	}
}

// held notes a slot taken and returns its release.
func (s *Slots) held() func() {
	s.mu.Lock()
	s.peak = max(s.peak, len(s.sem))
	s.mu.Unlock()
	return func() { <-s.sem }
}

// InUse is how many slots are held now.
func (s *Slots) InUse() int { return len(s.sem) }

// Peak is the most slots held at once since the pool was made.
func (s *Slots) Peak() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// Cap is the bound.
func (s *Slots) Cap() int { return cap(s.sem) }
