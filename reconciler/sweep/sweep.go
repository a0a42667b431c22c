// Package sweep records the runs of Slipway processes that died (their holder stopped
// beating) as interrupted, and has each one's retry decided, while the daemon runs: a dead
// replica's runs are on record within the holder's ttl, not only when a daemon starts.
package sweep

import (
	"context"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/store"
)

// DefaultInterval is how often a sweep looks for runs of dead holders: a few seconds,
// well inside the holders' 30s ttl. A sweep with nothing to do is one indexed read.
const DefaultInterval = 5 * time.Second

// pendingBatch bounds the interrupted runs decided in one sweep.
const pendingBatch = 50

// Store is what a sweep reads and writes.
type Store interface {
	MarkStaleRuns(ctx context.Context) ([]store.Run, error)
	PendingInterruptions(ctx context.Context, limit int) ([]store.Interruption, error)
}

// Retrier decides whether an interrupted run starts again (trigger.Hub).
type Retrier interface {
	RetryInterrupted(ctx context.Context, run store.Run) error
}

// Options configure a Sweeper.
type Options struct {
	Store   Store
	Retrier Retrier
	// Owns reports whether this process owns a repository's runs (with several replicas,
	// the one its repository is assigned to); nil: it owns every repository. Only the
	// owner decides an interrupted run's retry; any replica records the interruption.
	Owns     func(repository string) bool
	Interval time.Duration // <= 0: DefaultInterval
	Log      *logrus.Entry
}

// Sweeper sweeps every Interval until its context ends.
type Sweeper struct {
	o Options
	// failing remembers the runs whose decision failed, so a long Git outage logs each
	// once rather than every sweep.
	failing map[runKey]bool
}

type runKey struct {
	ref     store.PipelineRef
	buildID int64
}

// New returns a Sweeper.
func New(o Options) *Sweeper {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Owns == nil {
		o.Owns = func(string) bool { return true }
	}
	return &Sweeper{o: o, failing: map[runKey]bool{}}
}

// Run sweeps at once, then every Interval, until ctx ends.
func (s *Sweeper) Run(ctx context.Context) {
	t := time.NewTicker(s.o.Interval)
	defer t.Stop()
	for {
		s.Sweep(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// MarkStale records the unfinished runs of processes that stopped as interrupted, and logs
// each: what the daemon does once before anything runs, and every sweep after.
func MarkStale(ctx context.Context, st interface {
	MarkStaleRuns(ctx context.Context) ([]store.Run, error)
}, log *logrus.Entry) error {
	stale, err := st.MarkStaleRuns(ctx)
	for _, r := range stale {
		log.WithFields(logrus.Fields{"repository": r.Pipeline.Repository, "pipeline": r.Pipeline.Name,
			"build_id": r.BuildID, "reason": r.Reason}).Warn("run interrupted: the process running it stopped")
	}
	return err
}

// Sweep marks the runs of dead holders interrupted and decides the retries of the
// interrupted runs this process owns. Failures are logged and tried again next sweep.
func (s *Sweeper) Sweep(ctx context.Context) {
	log := s.o.Log
	if err := MarkStale(ctx, s.o.Store, log); err != nil && ctx.Err() == nil {
		log.WithError(err).Warn("sweep for runs of stopped processes")
	}
	pending, err := s.o.Store.PendingInterruptions(ctx, pendingBatch)
	if err != nil {
		if ctx.Err() == nil {
			log.WithError(err).Warn("read interrupted runs")
		}
		return
	}
	for _, in := range pending {
		if ctx.Err() != nil {
			return
		}
		r := in.Run
		if !s.o.Owns(r.Pipeline.Repository) {
			continue
		}
		key := runKey{r.Pipeline, r.BuildID}
		fields := logrus.Fields{"repository": r.Pipeline.Repository, "pipeline": r.Pipeline.Name, "build_id": r.BuildID}
		if err := s.o.Retrier.RetryInterrupted(ctx, r); err != nil {
			if !s.failing[key] && ctx.Err() == nil {
				log.WithFields(fields).WithError(err).Warn("deciding the retry of an interrupted run; trying again next sweep")
			}
			s.failing[key] = true
			continue
		}
		delete(s.failing, key)
	}
}
