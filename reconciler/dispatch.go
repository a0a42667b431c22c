package reconciler

import (
	"context"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/store"
)

// Dispatcher runs at most one run per pipeline at a time. A run that arrives while another
// runs waits; a newer one arriving meanwhile supersedes the waiting one, which is recorded
// as superseded rather than silently dropped.
type Dispatcher struct {
	Runner *Runner
	Log    *logrus.Entry

	mu    sync.Mutex
	slots map[store.PipelineRef]*slot
	wg    sync.WaitGroup
}

type slot struct {
	running bool
	waiting *queued
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
	if s.running {
		older := s.waiting
		s.waiting = q
		d.mu.Unlock()
		if older != nil {
			d.supersede(ctx, older, run.BuildID)
		}
		return run, nil
	}
	s.running = true
	d.mu.Unlock()
	d.wg.Add(1)
	go d.loop(ctx, run.Pipeline, q)
	return run, nil
}

// loop runs q, then whatever waited for the pipeline meanwhile, until nothing waits.
func (d *Dispatcher) loop(ctx context.Context, ref store.PipelineRef, q *queued) {
	defer d.wg.Done()
	for q != nil {
		if _, err := d.Runner.Execute(ctx, q.co, q.p, q.run); err != nil {
			d.Log.WithError(err).WithFields(logrus.Fields{"pipeline": ref.Name, "build_id": q.run.BuildID}).Error("run")
		}
		d.mu.Lock()
		s := d.slots[ref]
		q, s.waiting = s.waiting, nil
		if q == nil {
			s.running = false
		}
		d.mu.Unlock()
		if q != nil && ctx.Err() != nil {
			// Shutting down: the waiting run never starts.
			d.end(context.WithoutCancel(ctx), q, store.RunCancelled, "slipway shut down before the run started")
			q = nil
			d.mu.Lock()
			s.running = false
			d.mu.Unlock()
		}
	}
}

func (d *Dispatcher) supersede(ctx context.Context, q *queued, by int64) {
	d.end(ctx, q, store.RunSuperseded, "superseded by BUILD_ID "+buildIDString(by))
}

func (d *Dispatcher) end(ctx context.Context, q *queued, to store.RunStatus, reason string) {
	if _, err := d.Runner.Store.TransitionRun(ctx, q.run.Pipeline, q.run.BuildID, store.RunQueued, to, reason); err != nil {
		d.Log.WithError(err).WithField("build_id", q.run.BuildID).Error("record run status")
		return
	}
	d.Runner.emit(Event{Pipeline: q.p.Name, BuildID: q.run.BuildID, Status: string(to), Reason: reason})
}

// Wait blocks until every started run has ended.
func (d *Dispatcher) Wait() { d.wg.Wait() }
