package reconciler

import (
	"context"
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
	cancel     context.CancelCauseFunc
	healthWait atomic.Bool // set by the deploy tasks while they wait for health
}

type queued struct {
	co  *Checkout
	p   *pipeline.Pipeline
	run store.Run
}

// Submit queues a run of p at co (allocating its BUILD_ID now) and starts it when the
// pipeline is free. It returns the queued run.
func (d *Dispatcher) Submit(ctx context.Context, co *Checkout, p *pipeline.Pipeline, trigger store.Trigger) (store.Run, error) {
	run, err := d.Runner.Queue(ctx, co, p, trigger, 0)
	if err != nil {
		return run, err
	}
	q := &queued{co: co, p: p, run: run}
	d.mu.Lock()
	if d.slots == nil {
		d.slots = map[store.PipelineRef]*slot{}
	}
	s := d.slots[run.Pipeline]
	if s == nil {
		s = &slot{}
		d.slots[run.Pipeline] = s
	}
	if s.running != nil {
		older := s.waiting
		s.waiting = q
		if s.running.healthWait.Load() {
			s.running.cancel(errSuperseded)
		}
		d.mu.Unlock()
		if older != nil {
			d.end(ctx, older, store.RunSuperseded, "superseded by BUILD_ID "+buildIDString(run.BuildID))
		}
		return run, nil
	}
	d.mu.Unlock()
	d.wg.Add(1)
	go d.loop(ctx, s, q)
	return run, nil
}

// loop runs q, then whatever waited for the pipeline meanwhile, until nothing waits.
func (d *Dispatcher) loop(ctx context.Context, s *slot, q *queued) {
	defer d.wg.Done()
	for q != nil {
		runCtx, cancel := context.WithCancelCause(ctx)
		a := &active{cancel: cancel}
		d.mu.Lock()
		s.running = a
		d.mu.Unlock()
		if _, err := d.Runner.Execute(withHealthWaitFlag(runCtx, &a.healthWait), q.co, q.p, q.run); err != nil {
			d.Log.WithError(err).WithFields(logrus.Fields{"pipeline": q.p.Name, "build_id": q.run.BuildID}).Error("run")
		}
		cancel(nil)
		d.mu.Lock()
		q, s.waiting = s.waiting, nil
		s.running = nil
		d.mu.Unlock()
		if q != nil && ctx.Err() != nil {
			// Shutting down: the waiting run never starts.
			d.end(context.WithoutCancel(ctx), q, store.RunCancelled, "slipway shut down before the run started")
			return
		}
	}
}

func (d *Dispatcher) end(ctx context.Context, q *queued, to store.RunStatus, reason string) {
	if err := d.Runner.EndQueued(ctx, q.run, to, reason); err != nil {
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
