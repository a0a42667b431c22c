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
type BuildSlots struct{ *bound.Slots }

// NewBuildSlots makes n slots (at least 1).
func NewBuildSlots(n int) *BuildSlots { return &BuildSlots{bound.New(n)} }

// acquire waits for a slot and returns its release. A task that has to wait says so in its
// log, once; if ctx ends first, the error wraps its cause.
func (s *BuildSlots) acquire(ctx context.Context, tl *taskLog) (release func(), err error) {
	if s == nil {
		return func() {}, nil
	}
	if release, ok := s.TryAcquire(); ok {
		return release, nil
	}
	tl.Printf("waiting for a build slot: all %d are taken by image builds and scripts (runs.maxBuildsInFlight)", s.Cap())
	if release, err = s.Acquire(ctx); err != nil {
		return nil, fmt.Errorf("waiting for a build slot: %w", context.Cause(ctx))
	}
	return release, nil
}
