package trigger

import (
	"context"
	"errors"
	"fmt"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/store"
)

// Promote starts a run that deploys what run buildID deployed to the environment before
// `to` again, to `to` (reconciler.PromoteJob), for actor, and records that in the audit log.
// The pipeline file is the one at the run's commit.
func (h *Hub) Promote(ctx context.Context, ref store.PipelineRef, buildID int64, to, actor string) (store.Run, error) {
	if actor == "" {
		return store.Run{}, fmt.Errorf("promote %s #%d: no actor to record", ref.Name, buildID)
	}
	artifact, err := h.records.GetRun(ctx, ref, buildID)
	if err != nil {
		return store.Run{}, fmt.Errorf("promote %s #%d: %w", ref.Name, buildID, err)
	}
	co, err := h.prepare(ctx, ref, h.targetOf(ref, artifact))
	if err != nil {
		return store.Run{}, err
	}
	job, err := reconciler.PromoteJob(co, co.Pipelines[0], buildID, to)
	if err != nil {
		return store.Run{}, promoteRequestError(err)
	}
	job.Audit = &store.AuditEntry{Actor: actor, Action: store.AuditPromote,
		Reason: fmt.Sprintf("promote #%d (%s) to %s", buildID, short(artifact.Commit), to)}
	run, err := h.dispatcher.Submit(ctx, job)
	if err != nil {
		return store.Run{}, promoteRequestError(err)
	}
	return run, nil
}

// promoteRequestError marks refusals the caller can act on as ErrRequest.
func promoteRequestError(err error) error {
	if errors.Is(err, pipeline.ErrPromotion) || errors.Is(err, reconciler.ErrNotPromotable) {
		return fmt.Errorf("%w: %w", ErrRequest, err)
	}
	return err
}
