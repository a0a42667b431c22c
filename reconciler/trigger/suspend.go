package trigger

import (
	"context"
	"errors"
	"fmt"

	"github.com/slipwayhq/slipway/store"
)

// PipelineStates is where a pipeline's suspension is kept.
type PipelineStates interface {
	SetSuspended(ctx context.Context, ref store.PipelineRef, suspend bool, actor, reason string) (p store.Pipeline, wasSuspended bool, err error)
}

// Suspend suspends (suspend true) or resumes the pipeline for actor, and records that in the
// audit log. A suspended pipeline starts no runs from pushes or schedules and its drift is
// reported, not corrected; manual runs, re-runs, promotions and rollbacks still start.
func (h *Hub) Suspend(ctx context.Context, ref store.PipelineRef, suspend bool, actor, reason string) (store.Pipeline, error) {
	verb, action := "suspend", store.AuditSuspend
	if !suspend {
		verb, action = "resume", store.AuditResume
	}
	if actor == "" {
		return store.Pipeline{}, fmt.Errorf("%s %s: no actor to record", verb, ref.Name)
	}
	if h.states == nil {
		return store.Pipeline{}, fmt.Errorf("%s %s: this hub keeps no pipeline states", verb, ref.Name)
	}
	w, ok := h.watchers[ref.Repository]
	if !ok {
		return store.Pipeline{}, fmt.Errorf("repository %q is not configured: %w", ref.Repository, ErrRequest)
	}
	p, was, err := h.states.SetSuspended(ctx, ref, suspend, actor, reason)
	if err != nil {
		return store.Pipeline{}, err
	}
	if was && !suspend {
		// Pushes refused while it was suspended are not lost: the watcher runs the branch's
		// head once, if no run of the pipeline has run it.
		if err := h.hint(ctx, w, Hint{Branch: w.Branch(), Resumed: ref.Name}); err != nil {
			return p, fmt.Errorf("%s resumed, but its watcher was not told to catch up: %w", ref.Name, err)
		}
	}
	e := store.AuditEntry{Actor: actor, Action: action, Pipeline: ref, Reason: reason}
	if _, err := h.audit.RecordAudit(context.WithoutCancel(ctx), e); err != nil {
		return p, errors.Join(fmt.Errorf("%s %s done, but the audit log did not record it", verb, ref.Name), err)
	}
	return p, nil
}
