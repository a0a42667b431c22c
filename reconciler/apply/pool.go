package apply

import (
	"context"

	"golang.org/x/sync/errgroup"

	"github.com/slipwayhq/slipway/internal/bound"
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
type Slots = bound.Slots

// NewSlots makes n slots (at least 1).
func NewSlots(n int) *Slots { return bound.New(n) }
