package trigger

import (
	"context"
	"errors"
	"fmt"

	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/store"
)

// Interruptions is where the hub records that an interrupted run is not retried; a retry
// records itself when its run is created (store.CreateRun with TriggerRetry).
type Interruptions interface {
	RefuseRetry(ctx context.Context, ref store.PipelineRef, buildID int64, why string) error
}

// RetryInterrupted decides what becomes of run, which its process left interrupted: when
// the pipeline file at the run's commit sets retryInterrupted, the commit runs again under
// a new BUILD_ID (trigger retry, run as its parent); otherwise the run stays interrupted
// and its record says why. The store lets one retry per run through, so replicas deciding
// at once do no harm. An error is one worth trying again (a Git server that does not
// answer); the decision is then still open.
func (h *Hub) RetryInterrupted(ctx context.Context, run store.Run) error {
	refuse := func(why string) error {
		err := h.interrupts.RefuseRetry(ctx, run.Pipeline, run.BuildID, why)
		if errors.Is(err, store.ErrRetryDecided) {
			return nil
		}
		return err
	}
	switch run.Trigger {
	case store.TriggerRollback, store.TriggerPromote:
		// Their target is another run's revisions, not a commit's pipeline: people decide.
		return refuse(fmt.Sprintf("a %s is not retried; %s again", run.Trigger, run.Trigger))
	}
	// A later run of another commit on the same branch (a push the new owner found, a
	// manual run) is the newer intent: retrying the older commit after it would put the
	// cluster back to a stale revision.
	if later, err := h.laterRun(ctx, run); err != nil {
		return err
	} else if later != nil {
		return refuse(fmt.Sprintf("superseded by BUILD_ID %d (commit %.7s), which came after it", later.BuildID, later.Commit))
	}
	co, err := h.prepare(ctx, run.Pipeline, h.targetOf(run.Pipeline, run))
	if errors.Is(err, ErrRequest) {
		return refuse(err.Error())
	}
	if err != nil {
		return err
	}
	p := co.Pipelines[0]
	if !p.RetryInterrupted {
		return refuse("the pipeline does not set retryInterrupted")
	}
	_, err = h.dispatcher.Submit(ctx, reconciler.RunJob(co, p, store.TriggerRetry, run.BuildID))
	var suspended *reconciler.SuspendedError
	switch {
	case errors.Is(err, store.ErrRetryDecided):
		return nil // another replica retried it first
	case errors.As(err, &suspended):
		return refuse(suspended.Error())
	}
	return err
}

// laterRun is the first run of run's pipeline after it on the same branch (or tag) at
// another commit, or nil.
func (h *Hub) laterRun(ctx context.Context, run store.Run) (*store.Run, error) {
	for id := run.BuildID + 1; ; id++ {
		r, err := h.records.GetRun(ctx, run.Pipeline, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if r.Branch == run.Branch && r.Tag == run.Tag && r.Commit != run.Commit && r.Commit != "" {
			return &r, nil
		}
	}
}
