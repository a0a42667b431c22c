package trigger

import (
	"context"
	"fmt"

	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/store"
)

// Starter queues runs: what starting a rollback needs of the run engine.
// *reconciler.Dispatcher is one.
type Starter interface {
	Submit(ctx context.Context, job reconciler.Job) (store.Run, error)
}

// StartRollback queues a run that re-applies what run `to` deployed
// (reconciler.RollbackJob), recorded with actor's rollback in the audit log in one
// transaction: a run the log cannot attribute is never queued. The API (through the hub)
// and `slipway rollback` both start rollbacks here.
func StartRollback(ctx context.Context, runs Starter, ref store.PipelineRef, to int64, actor string) (store.Run, error) {
	if actor == "" {
		return store.Run{}, fmt.Errorf("roll back %s to #%d: no actor to record", ref.Name, to)
	}
	if to <= 0 {
		return store.Run{}, fmt.Errorf("roll back %s: BUILD_ID %d: %w", ref.Name, to, ErrRequest)
	}
	job := reconciler.RollbackJob(ref, to)
	job.Audit = &store.AuditEntry{Actor: actor, Action: store.AuditRollback, Reason: fmt.Sprintf("rollback to #%d", to)}
	run, err := runs.Submit(ctx, job)
	if err != nil {
		return store.Run{}, fmt.Errorf("roll back %s to #%d: %w", ref.Name, to, err)
	}
	return run, nil
}

// Rollback starts a rollback of the pipeline to run `to` for actor (StartRollback). The
// run `to` must be one of the pipeline's (errors.Is store.ErrNotFound otherwise).
func (h *Hub) Rollback(ctx context.Context, ref store.PipelineRef, to int64, actor string) (store.Run, error) {
	if _, err := h.records.GetRun(ctx, ref, to); err != nil {
		return store.Run{}, fmt.Errorf("roll back %s to #%d: %w", ref.Name, to, err)
	}
	return StartRollback(ctx, h.dispatcher, ref, to, actor)
}
