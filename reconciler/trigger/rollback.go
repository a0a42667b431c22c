package trigger

import (
	"context"
	"errors"
	"fmt"

	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/store"
)

// Starter queues and cancels runs: what starting a rollback needs of the run engine.
// *reconciler.Dispatcher is one.
type Starter interface {
	Submit(ctx context.Context, job reconciler.Job) (store.Run, error)
	Cancel(ctx context.Context, ref store.PipelineRef, buildID int64, reason string) error
}

// StartRollback queues a run that re-applies what run `to` deployed
// (reconciler.RollbackJob) and records actor's rollback in the audit log; a run the log
// cannot attribute is cancelled and the error returned. The API (through the hub) and
// `slipway rollback` both start rollbacks here.
func StartRollback(ctx context.Context, runs Starter, audit AuditLog, ref store.PipelineRef, to int64, actor string) (store.Run, error) {
	if actor == "" {
		return store.Run{}, fmt.Errorf("roll back %s to #%d: no actor to record", ref.Name, to)
	}
	if to <= 0 {
		return store.Run{}, fmt.Errorf("roll back %s: BUILD_ID %d: %w", ref.Name, to, ErrRequest)
	}
	run, err := runs.Submit(ctx, reconciler.RollbackJob(ref, to))
	if err != nil {
		return store.Run{}, fmt.Errorf("roll back %s to #%d: %w", ref.Name, to, err)
	}
	return recordStart(ctx, runs, audit, run, store.AuditEntry{Actor: actor, Action: store.AuditRollback,
		Reason: fmt.Sprintf("rollback to #%d", to)})
}

// Rollback starts a rollback of the pipeline to run `to` for actor (StartRollback). The
// run `to` must be one of the pipeline's (errors.Is store.ErrNotFound otherwise).
func (h *Hub) Rollback(ctx context.Context, ref store.PipelineRef, to int64, actor string) (store.Run, error) {
	if _, err := h.records.GetRun(ctx, ref, to); err != nil {
		return store.Run{}, fmt.Errorf("roll back %s to #%d: %w", ref.Name, to, err)
	}
	return StartRollback(ctx, h.dispatcher, h.audit, ref, to, actor)
}

// recordStart records who started run. A run the audit log cannot attribute does not go
// ahead: it is cancelled and the error returned.
func recordStart(ctx context.Context, runs interface {
	Cancel(ctx context.Context, ref store.PipelineRef, buildID int64, reason string) error
}, audit AuditLog, run store.Run, e store.AuditEntry) (store.Run, error) {
	e.Pipeline, e.BuildID = run.Pipeline, run.BuildID
	ctx = context.WithoutCancel(ctx) // the run is queued: its record must not depend on the caller staying
	if _, err := audit.RecordAudit(ctx, e); err != nil {
		err = fmt.Errorf("%s of %s #%d by %s not recorded in the audit log, so the run is cancelled: %w",
			e.Action, run.Pipeline.Name, run.BuildID, e.Actor, err)
		if cerr := runs.Cancel(ctx, run.Pipeline, run.BuildID, "cancelled: the audit log could not record who started it"); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return store.Run{}, err
	}
	return run, nil
}
