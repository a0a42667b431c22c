package reconciler

import (
	"context"
	"fmt"

	"github.com/slipwayhq/slipway/internal/bound"
)

// BuildSlots bound the image builds and scripts executing at once across every run of a
// process (runs.maxBuildsInFlight). A build or a script keeps a core busy where a deploy
// mostly waits on the API server, so the runs in flight may be many while these stay as
// few as the machine can take. A task holds a slot only while its build or script
// executes. A nil *BuildSlots bounds nothing.
//
// A task that has to wait for a slot needs no place among the runs in flight meanwhile,
// nor for the build or script it then runs, which the slot bounds (RunState.building): so
// runs waiting for the few slots do not keep the runs that deploy out. Its run takes a
// place again before its next task. Slots and places cannot wait on each other: a slot is
// held only around the build or script itself (underBuildSlot), which never waits for a
// place, so every slot held is given back without one; a task waits for a place only
// between pieces of its run's other work, holding no slot.
type BuildSlots struct{ *bound.Slots }

// NewBuildSlots makes n slots (at least 1).
func NewBuildSlots(n int) *BuildSlots { return &BuildSlots{bound.New(n)} }

// underBuildSlot runs work (a build or a script) holding a build slot, and gives the slot
// back however work ends.
func underBuildSlot[T any](ctx context.Context, rc *runContext, slots *BuildSlots, tl *taskLog, work func() (T, error)) (T, error) {
	release, err := slots.acquire(ctx, rc.state, tl)
	if err != nil {
		var zero T
		return zero, err
	}
	defer release()
	return work()
}

// acquire takes a slot and returns its release. A task that has to wait says so in its
// log, once, and needs no place among the runs in flight until the release; if ctx ends
// first, the error wraps its cause.
func (s *BuildSlots) acquire(ctx context.Context, state *RunState, tl *taskLog) (release func(), err error) {
	if s == nil {
		return func() {}, nil
	}
	if release, ok := s.TryAcquire(); ok {
		return release, nil
	}
	done := state.building()
	tl.Printf("waiting for a build slot: all %d are taken by image builds and scripts (runs.maxBuildsInFlight)", s.Cap())
	held, err := s.Acquire(ctx)
	if err != nil {
		done()
		return nil, fmt.Errorf("waiting for a build slot: %w", context.Cause(ctx))
	}
	return func() {
		held()
		done()
	}, nil
}
