package reconciler

import (
	"context"
	"fmt"
	"sync"
)

// BuildSlots bound the image builds and scripts executing at once across every run of a
// process (runs.maxBuildsInFlight). A build or a script keeps a core busy where a deploy
// mostly waits on the API server, so the runs in flight may be many while these stay as
// few as the machine can take. A task holds a slot only while its build or script
// executes. A nil *BuildSlots bounds nothing.
type BuildSlots struct {
	sem  chan struct{}
	mu   sync.Mutex
	peak int
}

// NewBuildSlots makes n slots (at least 1).
func NewBuildSlots(n int) *BuildSlots { return &BuildSlots{sem: make(chan struct{}, max(n, 1))} }

// acquire waits for a slot and returns its release. A task that has to wait says so in its
// log, once; if ctx ends first, the error wraps its cause.
func (s *BuildSlots) acquire(ctx context.Context, tl *taskLog) (release func(), err error) {
	if s == nil {
		return func() {}, nil
	}
	select {
	case s.sem <- struct{}{}:
	default:
		tl.Printf("waiting for a build slot: all %d are taken by image builds and scripts (runs.maxBuildsInFlight)", cap(s.sem))
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for a build slot: %w", context.Cause(ctx))
		}
	}
	s.mu.Lock()
	s.peak = max(s.peak, len(s.sem))
	s.mu.Unlock()
	return func() { <-s.sem }, nil
}

// InUse is how many builds and scripts are executing now.
func (s *BuildSlots) InUse() int { return len(s.sem) }

// Peak is the most builds and scripts executing at once since the slots were made.
func (s *BuildSlots) Peak() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// Cap is the bound.
func (s *BuildSlots) Cap() int { return cap(s.sem) }
