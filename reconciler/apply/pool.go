package apply

import (
	"context"
	"sync"

	"golang.org/x/sync/errgroup"
)

// concurrency is how many requests one deploy keeps in flight: enough to hide the API
// server's latency, few enough not to crowd out other clients (the server's priority and
// fairness queues the rest).
const concurrency = 16

// ForEach calls fn for 0..n-1 on up to limit goroutines. The first error cancels the
// context the others see, stops handing out work, and is returned. The benchmarks' raw SSA
// floor uses it too, so it is measured with the deploy's own pool.
func ForEach(ctx context.Context, n, limit int, fn func(ctx context.Context, i int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	for i := 0; i < n && gctx.Err() == nil; i++ {
		g.Go(func() error { return fn(gctx, i) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// Slots bounds the objects applied at once across every deploy of a process
// (runs.maxAppliesInFlight): each deploy keeps up to concurrency requests of its own, and
// all deploys together no more than the slots, so many runs at once queue here instead of
// crowding the API server. A nil *Slots bounds nothing beyond each deploy's own pool.
type Slots struct {
	sem  chan struct{}
	mu   sync.Mutex
	peak int
}

// NewSlots makes n slots (at least 1).
func NewSlots(n int) *Slots { return &Slots{sem: make(chan struct{}, max(n, 1))} }

// acquire waits for a slot and returns its release.
func (s *Slots) acquire(ctx context.Context) (release func(), err error) {
	if s == nil {
		return func() {}, nil
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	s.peak = max(s.peak, len(s.sem))
	s.mu.Unlock()
	return func() { <-s.sem }, nil
}

// InUse is how many objects are being applied now.
func (s *Slots) InUse() int { return len(s.sem) }

// Peak is the most objects applied at once since the slots were made.
func (s *Slots) Peak() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// Cap is the bound.
func (s *Slots) Cap() int { return cap(s.sem) }
