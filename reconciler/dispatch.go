package reconciler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/store"
)

// executor is what the dispatcher needs of a Runner.
type executor interface {
	Queue(ctx context.Context, co *Checkout, p *pipeline.Pipeline, trigger store.Trigger, parent int64) (store.Run, error)
	Execute(ctx context.Context, co *Checkout, p *pipeline.Pipeline, run store.Run) (store.Run, error)
	EndQueued(ctx context.Context, run store.Run, to store.RunStatus, reason string) error
}

// Dispatcher runs at most one run per pipeline at a time. A run that arrives while another
// runs waits; a newer one arriving meanwhile supersedes the waiting one, which is recorded
// as superseded rather than silently dropped. A run that is only waiting for health when a
// newer run arrives is cancelled and ends superseded: its wait would only delay the newer
// commit, which replaces what it deployed anyway.
type Dispatcher struct {
	Runner executor
	Log    *logrus.Entry
	// Base is the daemon's lifetime: runs derive their context from it, not from the
	// caller of Submit, which may be an HTTP request that ends long before the run. Nil:
	// the caller's context.
	Base context.Context

	mu    sync.Mutex
	slots map[store.PipelineRef]*slot
	wg    sync.WaitGroup
}

type slot struct {
	running *active
	waiting *queued
}

// active is the run a slot is executing.
type active struct {
	run        store.Run
	ctx        context.Context
	cancel     context.CancelCauseFunc
	healthWait atomic.Bool // set by the deploy tasks while they wait for health
}

type queued struct {
	co  *Checkout
	p   *pipeline.Pipeline
	run store.Run
}

// Submit queues a run of p at co (allocating its BUILD_ID now) and starts it when the
// pipeline is free. parent is the run this one re-runs (0: none). It returns the queued run.
func (d *Dispatcher) Submit(ctx context.Context, co *Checkout, p *pipeline.Pipeline, trigger store.Trigger, parent int64) (store.Run, error) {
	run, err := d.Runner.Queue(ctx, co, p, trigger, parent)
	if err != nil {
		return run, err
	}
	q := &queued{co: co, p: p, run: run}
	d.mu.Lock()
	s := d.slotLocked(run.Pipeline)
	if s.running != nil {
		older := s.waiting
		s.waiting = q
		// Only a newer commit makes a health wait pointless; a schedule or a person asking
		// for another run waits its turn.
		if trigger == store.TriggerPush && s.running.healthWait.Load() {
			s.running.cancel(&superseded{by: run.BuildID})
		}
		d.mu.Unlock()
		if older != nil {
			d.end(ctx, older, store.RunSuperseded, "superseded by BUILD_ID "+buildIDString(run.BuildID))
		}
		return run, nil
	}
	s.running = newActive(d.base(ctx), run)
	d.startLocked(ctx, s, q)
	return run, nil
}

// ErrBusy says SubmitIfIdle found a run of the pipeline queued or running.
var ErrBusy = errors.New("a run of the pipeline is queued or running")

// SubmitIfIdle is Submit for a pipeline with no run queued or running, and ErrBusy
// otherwise. The slot is claimed before the run is recorded, so nothing can slip in
// between the check and the start (what a schedule's forbid needs).
func (d *Dispatcher) SubmitIfIdle(ctx context.Context, co *Checkout, p *pipeline.Pipeline, trigger store.Trigger) (store.Run, error) {
	ref := store.PipelineRef{Repository: co.Repo.Name, Name: p.Name}
	d.mu.Lock()
	s := d.slotLocked(ref)
	if s.running != nil || s.waiting != nil {
		d.mu.Unlock()
		return store.Run{}, fmt.Errorf("start %s: %w", p.Name, ErrBusy)
	}
	claim := newActive(d.base(ctx), store.Run{})
	s.running = claim
	d.mu.Unlock()

	run, err := d.Runner.Queue(ctx, co, p, trigger, 0)
	d.mu.Lock()
	if err != nil {
		// Give the slot back; a run submitted meanwhile waited behind the claim.
		s.running = nil
		if q := s.waiting; q != nil {
			s.waiting = nil
			s.running = newActive(d.base(ctx), q.run)
			d.startLocked(ctx, s, q)
			return run, err
		}
		d.mu.Unlock()
		return run, err
	}
	claim.run = run
	d.wg.Add(1)
	d.mu.Unlock()
	go d.loop(d.base(ctx), s, claim, &queued{co: co, p: p, run: run})
	return run, nil
}

func (d *Dispatcher) slotLocked(ref store.PipelineRef) *slot {
	if d.slots == nil {
		d.slots = map[store.PipelineRef]*slot{}
	}
	s := d.slots[ref]
	if s == nil {
		s = &slot{}
		d.slots[ref] = s
	}
	return s
}

// startLocked runs q in the slot s.running claims; it releases d.mu.
func (d *Dispatcher) startLocked(ctx context.Context, s *slot, q *queued) {
	a := s.running
	d.wg.Add(1)
	d.mu.Unlock()
	go d.loop(d.base(ctx), s, a, q)
}

// base is the context runs derive from.
func (d *Dispatcher) base(ctx context.Context) context.Context {
	if d.Base != nil {
		return d.Base
	}
	return ctx
}

// newActive claims the pipeline's slot for run; the claim holds the run's context from the
// start, so a cancel that arrives before Execute begins is not lost.
func newActive(ctx context.Context, run store.Run) *active {
	runCtx, cancel := context.WithCancelCause(ctx)
	return &active{run: run, ctx: runCtx, cancel: cancel}
}

// Active reports whether a run of the pipeline is running or waiting to run.
func (d *Dispatcher) Active(ref store.PipelineRef) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.slots[ref]
	return s != nil && (s.running != nil || s.waiting != nil)
}

// ErrNotActive says a run asked to be cancelled is neither queued nor running here.
var ErrNotActive = errors.New("the run is neither queued nor running")

// Cancel ends one run of the pipeline: a waiting run never starts, a running one has its
// context cancelled (builds, applies and health waits stop; nothing more is applied) and
// ends cancelled with reason. It returns once the cancellation is recorded or requested.
func (d *Dispatcher) Cancel(ctx context.Context, ref store.PipelineRef, buildID int64, reason string) error {
	d.mu.Lock()
	s := d.slots[ref]
	switch {
	case s != nil && s.waiting != nil && s.waiting.run.BuildID == buildID:
		q := s.waiting
		s.waiting = nil
		d.mu.Unlock()
		// The run has left the queue: its record must follow even if the caller goes away.
		return d.Runner.EndQueued(context.WithoutCancel(ctx), q.run, store.RunCancelled, reason)
	case s != nil && s.running != nil && s.running.run.BuildID == buildID:
		s.running.cancel(&cancelled{reason: reason})
		d.mu.Unlock()
		return nil
	}
	d.mu.Unlock()
	return fmt.Errorf("cancel %s BUILD_ID %d: %w", ref.Name, buildID, ErrNotActive)
}

// CancelActive cancels whatever run of the pipeline is waiting or running, with reason.
func (d *Dispatcher) CancelActive(ctx context.Context, ref store.PipelineRef, reason string) {
	d.mu.Lock()
	s := d.slots[ref]
	var q *queued
	if s != nil {
		q, s.waiting = s.waiting, nil
		if s.running != nil {
			s.running.cancel(&cancelled{reason: reason})
		}
	}
	d.mu.Unlock()
	if q != nil {
		d.end(ctx, q, store.RunCancelled, reason)
	}
}

// cancelled is the cancellation cause of a run someone (or a schedule) cancelled.
type cancelled struct{ reason string }

func (c *cancelled) Error() string { return c.reason }

// loop runs q, then whatever waited for the pipeline meanwhile, until nothing waits.
func (d *Dispatcher) loop(ctx context.Context, s *slot, a *active, q *queued) {
	defer d.wg.Done()
	for q != nil {
		if _, err := d.Runner.Execute(withHealthWaitFlag(a.ctx, &a.healthWait), q.co, q.p, q.run); err != nil {
			d.Log.WithError(err).WithFields(logrus.Fields{"pipeline": q.p.Name, "build_id": q.run.BuildID}).Error("run")
		}
		a.cancel(nil)
		d.mu.Lock()
		q, s.waiting = s.waiting, nil
		s.running = nil
		if q != nil && ctx.Err() == nil {
			// Claimed before the lock is released, so Submit never starts a second loop.
			s.running = newActive(ctx, q.run)
			a = s.running
		}
		d.mu.Unlock()
		if q != nil && ctx.Err() != nil {
			// Shutting down: the waiting run never starts.
			d.end(context.WithoutCancel(ctx), q, store.RunCancelled, "slipway shut down before the run started")
			return
		}
	}
}

// end records how a run that never started ended. The caller may be an HTTP request that
// is gone by now; the run has left the queue either way, so its record must follow.
func (d *Dispatcher) end(ctx context.Context, q *queued, to store.RunStatus, reason string) {
	if err := d.Runner.EndQueued(context.WithoutCancel(ctx), q.run, to, reason); err != nil {
		d.Log.WithError(err).WithField("build_id", q.run.BuildID).Error("record run status")
	}
}

// Wait blocks until every started run has ended.
func (d *Dispatcher) Wait() { d.wg.Wait() }

type healthWaitKey struct{}

// withHealthWaitFlag lets the deploy tasks of a run say when they are waiting for health.
func withHealthWaitFlag(ctx context.Context, f *atomic.Bool) context.Context {
	return context.WithValue(ctx, healthWaitKey{}, f)
}

// inHealthWait marks the run as waiting for health until the returned func is called.
func inHealthWait(ctx context.Context) (done func()) {
	f, ok := ctx.Value(healthWaitKey{}).(*atomic.Bool)
	if !ok {
		return func() {}
	}
	f.Store(true)
	return func() { f.Store(false) }
}
