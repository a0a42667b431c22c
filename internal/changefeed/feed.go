// Package changefeed wakes followers of the store (live log streams, the web UI, the
// notifier) when a write they care about commits, so that none of them polls.
//
// A follower is woken, not handed data: it re-reads the store from where it was. Wake-ups
// are merged while a follower is busy, so a slow follower never blocks a writer and never
// falls behind by more than one read.
package changefeed

import (
	"sync"

	"github.com/slipwayhq/slipway/store"
)

// Feed is a store.ChangeSink that fans each change out to the followers whose filter
// matches it. The zero value is not usable; call New.
type Feed struct {
	mu   sync.Mutex
	subs map[*follower]struct{}
}

type follower struct {
	match func(store.Change) bool
	wake  chan struct{}
}

// New returns a feed with no followers.
func New() *Feed {
	return &Feed{subs: map[*follower]struct{}{}}
}

// Changed implements store.ChangeSink. It never blocks. A store.ChangeResync wakes every
// follower, whatever it matches: changes may have been missed.
func (f *Feed) Changed(c store.Change) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.subs {
		if c.Kind != store.ChangeResync && s.match != nil && !s.match(c) {
			continue
		}
		select {
		case s.wake <- struct{}{}:
		default: // already woken and not yet read: one read covers both changes
		}
	}
}

// Follow returns a channel that receives a value after each committed change match
// accepts (nil: every change), merged while unread, and a function that stops following.
// Read the store after subscribing, then after each wake-up, so no change is missed.
func (f *Feed) Follow(match func(store.Change) bool) (wake <-chan struct{}, stop func()) {
	s := &follower{match: match, wake: make(chan struct{}, 1)}
	f.mu.Lock()
	f.subs[s] = struct{}{}
	f.mu.Unlock()
	var once sync.Once
	return s.wake, func() {
		once.Do(func() {
			f.mu.Lock()
			delete(f.subs, s)
			f.mu.Unlock()
		})
	}
}

// Run matches the changes of one run: its state, tasks and logs.
func Run(ref store.PipelineRef, buildID int64) func(store.Change) bool {
	return func(c store.Change) bool {
		return c.Pipeline == ref && c.BuildID == buildID &&
			(c.Kind == store.ChangeRun || c.Kind == store.ChangeTask || c.Kind == store.ChangeLogs)
	}
}

// Kinds matches changes of the given kinds, of any run.
func Kinds(kinds ...store.ChangeKind) func(store.Change) bool {
	return func(c store.Change) bool {
		for _, k := range kinds {
			if c.Kind == k {
				return true
			}
		}
		return false
	}
}
