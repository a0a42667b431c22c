package schedule

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/sirupsen/logrus"
	"k8s.io/utils/clock"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/store"
)

// DefaultStartingDeadline is how late a missed tick may still run when the schedule does
// not say (the pipeline file's default too).
const DefaultStartingDeadline = 10 * time.Minute

// recordTimeout bounds recording a tick whose run already started while the scheduler is
// stopping: the record must not be lost to the cancellation, nor hang the shutdown.
const recordTimeout = 10 * time.Second

// Store is what the scheduler needs from the store (*store.DB).
type Store interface {
	LastScheduleTick(ctx context.Context, ref store.PipelineRef, schedule string) (time.Time, bool, error)
	AdvanceScheduleTick(ctx context.Context, ref store.PipelineRef, schedule string, from, tick time.Time) (bool, error)
	DeleteScheduleTick(ctx context.Context, ref store.PipelineRef, schedule string) error
}

// Runs is how the scheduler sees and starts runs; the daemon implements it over its run
// dispatcher.
type Runs interface {
	// Active reports whether a run of the pipeline is queued or running.
	Active(ref store.PipelineRef) bool
	// CancelActive cancels the pipeline's queued and running runs, recording reason.
	CancelActive(ctx context.Context, ref store.PipelineRef, reason string) error
	// Start submits a run of the pipeline with trigger cron at the tracked branch's head,
	// recording the run and the tick's claim (Fire.Claim) in one store transaction. claimed
	// says the tick is on record, with the run or (err set) without one. ErrTickTaken:
	// another process recorded the tick first, and nothing was recorded here.
	Start(ctx context.Context, f Fire) (claimed bool, err error)
}

// Fire is one tick that starts a run.
type Fire struct {
	Pipeline store.PipelineRef
	Schedule string    // the schedule's Key
	Tick     time.Time // when the tick was due, in the schedule's time zone
	// Missed says the tick came due while the daemon was down (or before this scheduler
	// saw the schedule) and runs late, within its startingDeadline.
	Missed bool
	// Concurrency is the schedule's policy. With forbid, Start must not start a run while
	// one is active and answers ErrActive instead: checking Active first leaves a gap a
	// push could slip through.
	Concurrency pipeline.Concurrency
	// Claim records the tick as handled: a compare-and-set from the last tick recorded.
	// Made in the transaction that records the run, it leaves no moment where a crash
	// loses the tick (claimed, no run) or runs it twice (run, not claimed).
	Claim store.TickClaim
}

// ErrTickTaken is Start's answer when the tick was recorded by another process.
var ErrTickTaken = errors.New("the tick was handled by another process")

// ErrActive is Start's answer under forbid when a run of the pipeline is active.
var ErrActive = errors.New("a run of the pipeline is active")

// Options configure a Scheduler.
type Options struct {
	Store   Store
	Runs    Runs
	Clock   clock.Clock   // nil: the real clock
	Metrics *Metrics      // optional
	Log     *logrus.Entry // nil: the standard logger
}

// Scheduler fires the schedules of every repository. Set it up with New, give it the
// schedules with Set (before or while Run runs) and run it with Run.
type Scheduler struct {
	store   Store
	runs    Runs
	clock   clock.Clock
	metrics *Metrics
	log     *logrus.Entry

	setMu sync.Mutex // one Set at a time, so a removal's delete cannot overtake a re-add

	mu      sync.Mutex
	entries map[entryKey]*entry
	running bool          // Run is running: it starts the entries Set adds
	wake    chan struct{} // tells Run that Set added entries; buffered 1
	wg      sync.WaitGroup

	// event, when set (by tests), is told what each schedule goroutine did.
	event func(event)
}

type entryKey struct {
	ref store.PipelineRef
	key string
}

// entry is one schedule of one pipeline.
type entry struct {
	ref   store.PipelineRef
	key   string
	sched cron.Schedule
	loc   *time.Location

	// Guarded by Scheduler.mu: Set changes the policy in place, without touching timing.
	concurrency pipeline.Concurrency
	deadline    time.Duration
	cancel      context.CancelFunc // nil while no goroutine runs the entry
	done        chan struct{}      // closed when that goroutine has ended
}

// event is what a schedule goroutine reports to tests.
type event struct {
	kind   string // "armed" (waiting for next), "handled" (a tick), "stopped"
	ref    store.PipelineRef
	key    string
	next   time.Time // armed: the tick waited for
	tick   time.Time // handled
	result string    // handled
	reason string    // handled
}

// New returns a scheduler with no schedules.
func New(o Options) *Scheduler {
	s := &Scheduler{store: o.Store, runs: o.Runs, clock: o.Clock, metrics: o.Metrics, log: o.Log,
		entries: map[entryKey]*entry{}, wake: make(chan struct{}, 1)}
	if s.clock == nil {
		s.clock = clock.RealClock{}
	}
	if s.log == nil {
		s.log = logrus.NewEntry(logrus.StandardLogger())
	}
	return s
}

// SchedulesOf collects the schedules of the pipelines read from one file, by pipeline name,
// in the form Set takes.
func SchedulesOf(pipelines []*pipeline.Pipeline) map[string][]pipeline.Schedule {
	out := map[string][]pipeline.Schedule{}
	for _, p := range pipelines {
		if p != nil && p.Triggers != nil && len(p.Triggers.Schedules) > 0 {
			out[p.Name] = append(out[p.Name], p.Triggers.Schedules...)
		}
	}
	return out
}

// Set replaces the schedules of repository repo with pipelines (pipeline name → its
// schedules); nil or empty removes them all. Call it with what the tracked branch's
// .pipeline.yaml says, whenever that changes, and not when the file cannot be read: a
// schedule Set removes is forgotten in the store, so adding it back later starts from a new
// baseline instead of catching up ticks from before.
//
// Schedules that stay keep their timing (a changed concurrency or startingDeadline applies
// from the next tick); new ones start from now. A schedule that does not parse is left out
// and reported in the returned error; the others are set regardless. Set returns when
// removed schedules have stopped.
func (s *Scheduler) Set(ctx context.Context, repo string, pipelines map[string][]pipeline.Schedule) error {
	return s.set(ctx, repo, pipelines, true)
}

// Release stops the schedules of repository repo without forgetting their ticks in the
// store: the replica that takes the repository over carries on from the last tick handled,
// catching up on any missed meanwhile. It returns when they have stopped.
func (s *Scheduler) Release(ctx context.Context, repo string) error {
	return s.set(ctx, repo, nil, false)
}

func (s *Scheduler) set(ctx context.Context, repo string, pipelines map[string][]pipeline.Schedule, forget bool) error {
	s.setMu.Lock()
	defer s.setMu.Unlock()
	want := map[entryKey]*entry{}
	var errs []error
	for name, scheds := range pipelines {
		ref := store.PipelineRef{Repository: repo, Name: name}
		for _, sc := range scheds {
			e, err := newEntry(ref, sc)
			if err != nil {
				errs = append(errs, fmt.Errorf("pipeline %s: %w", ref, err))
				continue
			}
			k := entryKey{ref, e.key}
			if _, dup := want[k]; dup {
				// Two identical schedules would fire the same tick twice.
				s.log.WithFields(logrus.Fields{"repository": repo, "pipeline": name, "schedule": e.key}).
					Warn("schedule: listed twice; the first one is used")
				continue
			}
			want[k] = e
		}
	}

	s.mu.Lock()
	var removed []*entry
	for k, old := range s.entries {
		if k.ref.Repository != repo {
			continue
		}
		if e, keep := want[k]; keep {
			old.concurrency, old.deadline = e.concurrency, e.deadline
			delete(want, k)
			continue
		}
		delete(s.entries, k)
		if old.cancel != nil {
			old.cancel()
		}
		removed = append(removed, old)
	}
	for k, e := range want {
		s.entries[k] = e
	}
	if s.running && len(want) > 0 {
		// Run starts them under its context.
		select {
		case s.wake <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
	s.mu.Unlock()

	for k, e := range want {
		s.log.WithFields(logrus.Fields{"repository": repo, "pipeline": k.ref.Name, "schedule": e.key,
			"concurrency": e.concurrency, "starting_deadline": e.deadline}).Info("schedule: added")
	}
	for _, old := range removed {
		// Wait for the goroutine first: it must not record a tick after the delete.
		if old.done != nil {
			select {
			case <-old.done:
			case <-ctx.Done():
				return errors.Join(append(errs, fmt.Errorf("set schedules of %s: %w", repo, ctx.Err()))...)
			}
		}
		if !forget {
			continue
		}
		if err := s.store.DeleteScheduleTick(ctx, old.ref, old.key); err != nil {
			errs = append(errs, err)
		}
		s.log.WithFields(logrus.Fields{"repository": repo, "pipeline": old.ref.Name, "schedule": old.key}).
			Info("schedule: removed")
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("set schedules of %s: %w", repo, err)
	}
	return nil
}

func newEntry(ref store.PipelineRef, sc pipeline.Schedule) (*entry, error) {
	sched, loc, err := Parse(sc)
	if err != nil {
		return nil, err
	}
	e := &entry{ref: ref, key: Key(sc), sched: sched, loc: loc,
		concurrency: sc.Concurrency, deadline: sc.StartingDeadline.Duration}
	switch e.concurrency {
	case "":
		e.concurrency = pipeline.ConcurrencyForbid
	case pipeline.ConcurrencyAllow, pipeline.ConcurrencyForbid, pipeline.ConcurrencyReplace:
	default:
		return nil, fmt.Errorf("schedule %q: unknown concurrency %q", sc.Cron, sc.Concurrency)
	}
	if e.deadline <= 0 {
		e.deadline = DefaultStartingDeadline
	}
	return e, nil
}

// Run fires the schedules until ctx ends, then waits for the schedule goroutines to stop.
// Only one Run at a time.
func (s *Scheduler) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("schedule: the scheduler is already running")
	}
	s.running = true
	s.startIdleLocked(ctx)
	s.mu.Unlock()

	for ctx.Err() == nil {
		select {
		case <-s.wake:
			s.mu.Lock()
			s.startIdleLocked(ctx)
			s.mu.Unlock()
		case <-ctx.Done():
		}
	}
	s.mu.Lock()
	s.running = false
	s.mu.Unlock()
	s.wg.Wait()
	s.mu.Lock()
	for _, e := range s.entries {
		e.cancel, e.done = nil, nil
	}
	s.mu.Unlock()
	return nil
}

// startIdleLocked starts the goroutines of the entries that have none; s.mu is held and
// ctx is Run's.
func (s *Scheduler) startIdleLocked(ctx context.Context) {
	for _, e := range s.entries {
		if e.cancel == nil {
			s.startLocked(ctx, e)
		}
	}
}

// startLocked starts e's goroutine under Run's ctx; s.mu is held.
func (s *Scheduler) startLocked(ctx context.Context, e *entry) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	e.cancel, e.done = cancel, done
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(done)
		defer cancel()
		s.loop(ctx, e)
		s.notify(event{kind: "stopped", ref: e.ref, key: e.key})
	}()
}

// loop handles e's ticks until ctx ends.
func (s *Scheduler) loop(ctx context.Context, e *entry) {
	log := s.log.WithFields(logrus.Fields{"repository": e.ref.Repository, "pipeline": e.ref.Name, "schedule": e.key})
	now := s.clock.Now()
	last, ok, err := s.store.LastScheduleTick(ctx, e.ref, e.key)
	switch {
	case err != nil && ctx.Err() != nil:
		return
	case err != nil:
		// Keep ticking from now: a store hiccup should cost the catch-up, not the schedule.
		log.WithError(err).Error("schedule: read the last tick; ticks missed while down are not run")
		last = now.Truncate(time.Microsecond)
	case !ok:
		// Baseline: the schedule starts now. Ticks before it was in the file were never
		// missed, and a restart from here on knows which were.
		last = now.Truncate(time.Microsecond)
		won, err := s.store.AdvanceScheduleTick(ctx, e.ref, e.key, time.Time{}, last)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			log.WithError(err).Error("schedule: record the baseline")
		case !won:
			// Another process recorded one first: carry on from its record.
			if last, ok = s.reread(ctx, e, log, last); !ok {
				return
			}
		}
	}

	catchUp := true // the first due tick, if any, came due before we were watching
	for {
		now := s.clock.Now()
		if due := newestDue(e.sched, last, now); !due.IsZero() {
			var ok bool
			if last, ok = s.handle(ctx, e, log, last, due, now, catchUp); !ok {
				return
			}
		}
		catchUp = false
		next := e.sched.Next(last)
		if next.IsZero() {
			log.Warn("schedule: the expression has no tick in the next five years")
			s.notify(event{kind: "armed", ref: e.ref, key: e.key})
			<-ctx.Done()
			return
		}
		timer := s.clock.NewTimer(next.Sub(now))
		s.notify(event{kind: "armed", ref: e.ref, key: e.key, next: next})
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C():
			// A timer may fire early (the wall clock was set back): newestDue then finds
			// nothing and the loop waits again.
		}
	}
}

// handle applies the tick's policy and records it, claiming it in the store (a
// compare-and-set from last) so that no two processes handle one tick; a run is recorded in
// the claim's transaction. It returns the last tick now recorded, and false if ctx ended
// before the tick was dealt with, leaving it unrecorded so that a restart (or the replica
// taking over) can still run it.
func (s *Scheduler) handle(ctx context.Context, e *entry, log *logrus.Entry, last, tick, now time.Time, catchUp bool) (time.Time, bool) {
	s.mu.Lock()
	concurrency, deadline := e.concurrency, e.deadline
	s.mu.Unlock()
	tick = tick.In(e.loc)
	late := now.Sub(tick)
	log = log.WithFields(logrus.Fields{"tick": tick.Format(time.RFC3339), "concurrency": concurrency})

	var result, reason string
	claimed := false
	switch {
	case late > deadline:
		// Also after a clock jump (a suspended host): never a tick from long ago.
		result, reason = resultSkipped, reasonDeadline
		log.WithFields(logrus.Fields{"late": late.Round(time.Second).String(), "starting_deadline": deadline.String()}).
			Warn("schedule: tick missed by more than startingDeadline, skipped")
	case concurrency == pipeline.ConcurrencyForbid && s.runs.Active(e.ref):
		result, reason = resultSkipped, reasonForbid
		log.Info("schedule: a run of the pipeline is still active, tick skipped")
	default:
		result, reason = resultFired, reasonScheduled
		if catchUp {
			reason = reasonMissed
		}
		if concurrency == pipeline.ConcurrencyReplace && s.runs.Active(e.ref) {
			reason = reasonReplace
			why := "replaced by the schedule's tick of " + tick.Format(time.RFC3339)
			if err := s.runs.CancelActive(ctx, e.ref, why); err != nil {
				if ctx.Err() != nil {
					return last, false
				}
				// Starting anyway is what allow would do; the dispatcher still queues it.
				log.WithError(err).Warn("schedule: cancel the active run")
			}
		}
		var err error
		claimed, err = s.runs.Start(ctx, Fire{Pipeline: e.ref, Schedule: e.key, Tick: tick, Missed: catchUp, Concurrency: concurrency,
			Claim: store.TickClaim{Pipeline: e.ref, Schedule: e.key, From: last, Tick: tick}})
		switch {
		case errors.Is(err, ErrTickTaken):
			return s.takenElsewhere(ctx, e, log, last)
		case err != nil && ctx.Err() != nil && !claimed:
			// Whether the transaction committed before the cancel is for the store to say:
			// the next owner reads it, and runs the tick only if it is not recorded.
			return last, false
		case errors.Is(err, ErrActive):
			result, reason = resultSkipped, reasonForbid
			log.Info("schedule: a run of the pipeline is still active, tick skipped")
		case err != nil:
			result, reason = resultFailed, reasonError
			log.WithError(err).Error("schedule: start a run")
		default:
			log.WithFields(logrus.Fields{"reason": reason}).Info("schedule: tick fired")
		}
	}

	if !claimed {
		// A tick skipped or failed without a run: its record must not be lost to a stopping
		// scheduler, nor hang its shutdown.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
		won, err := s.store.AdvanceScheduleTick(rctx, e.ref, e.key, last, tick)
		cancel()
		switch {
		case err != nil:
			log.WithError(err).Error("schedule: record the tick")
		case !won:
			return s.takenElsewhere(ctx, e, log, last)
		}
	}
	s.metrics.tick(e.ref, result, reason)
	s.notify(event{kind: "handled", ref: e.ref, key: e.key, tick: tick, result: result, reason: reason})
	return tick, true
}

// takenElsewhere carries on from the tick another process recorded.
func (s *Scheduler) takenElsewhere(ctx context.Context, e *entry, log *logrus.Entry, last time.Time) (time.Time, bool) {
	log.Info("schedule: tick handled by another process, not run here")
	s.notify(event{kind: "handled", ref: e.ref, key: e.key, result: resultSkipped, reason: "taken"})
	return s.reread(ctx, e, log, last)
}

// reread is the last tick the store records, or last if it cannot be read.
func (s *Scheduler) reread(ctx context.Context, e *entry, log *logrus.Entry, last time.Time) (time.Time, bool) {
	got, ok, err := s.store.LastScheduleTick(ctx, e.ref, e.key)
	switch {
	case err != nil && ctx.Err() != nil:
		return last, false
	case err != nil:
		log.WithError(err).Error("schedule: read the last tick")
		return last, true
	case !ok || got.Before(last):
		return last, true
	}
	return got, true
}

func (s *Scheduler) notify(ev event) {
	if s.event != nil {
		s.event(ev)
	}
}
