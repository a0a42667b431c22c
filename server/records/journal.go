package records

import (
	"context"
	"encoding/json"
	"time"

	"github.com/slipwayhq/slipway/store"
)

// AuditEntry is one entry of the audit log.
type AuditEntry struct {
	ID         int64           `json:"id"`
	Time       time.Time       `json:"time"`
	Actor      string          `json:"actor"` // the API identity's name, cli:USER, or the gate
	Action     string          `json:"action"`
	Repository string          `json:"repository"`
	Pipeline   string          `json:"pipeline"`
	BuildID    int64           `json:"buildId,omitempty"`
	Reason     string          `json:"reason,omitempty"`
	Evidence   json.RawMessage `json:"evidence,omitempty"`
}

// AuditStore is what Audit reads.
type AuditStore interface {
	ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error)
}

// Audit lists the audit entries f selects that keep keeps, newest first, at most limit
// (<= 0: all). With keep set, entries are filtered before the limit is applied.
func Audit(ctx context.Context, st AuditStore, f store.AuditFilter, keep Keep, limit int) ([]AuditEntry, error) {
	if keep != nil {
		f.Limit = 0
	} else {
		f.Limit = limit
	}
	entries, err := st.ListAudit(ctx, f)
	if err != nil {
		return nil, err
	}
	out := []AuditEntry{}
	for _, e := range entries {
		if !keep.keeps(e.Pipeline) {
			continue
		}
		if limit > 0 && len(out) == limit {
			break
		}
		out = append(out, AuditEntry{ID: e.ID, Time: e.Time, Actor: e.Actor, Action: string(e.Action),
			Repository: e.Pipeline.Repository, Pipeline: e.Pipeline.Name, BuildID: e.BuildID, Reason: e.Reason, Evidence: e.Evidence})
	}
	return out, nil
}

// DriftEvent is what the drift watcher (or the health watch) saw and did about one object.
type DriftEvent struct {
	ID         int64     `json:"id"`
	BuildID    int64     `json:"buildId"` // the run whose revision the object belongs to
	Task       string    `json:"task"`
	Cluster    string    `json:"cluster"`
	Object     Object    `json:"object"`
	Action     string    `json:"action"` // reported, corrected, correction-failed or unhealthy
	Gone       bool      `json:"gone,omitempty"`
	Patch      string    `json:"patch,omitempty"`   // RFC 6902 patch from the live object to the desired one, secrets masked
	Manager    string    `json:"manager,omitempty"` // who changed it (field manager), when known
	ChangedAt  time.Time `json:"changedAt,omitzero"`
	DetectedAt time.Time `json:"detectedAt"`
	Error      string    `json:"error,omitempty"`
}

// DriftStore is what DriftEvents reads.
type DriftStore interface {
	ListDriftEvents(ctx context.Context, ref store.PipelineRef, limit int) ([]store.DriftEvent, error)
}

// DriftEvents lists the pipeline's drift events, newest first; limit <= 0: all.
func DriftEvents(ctx context.Context, st DriftStore, ref store.PipelineRef, limit int) ([]DriftEvent, error) {
	events, err := st.ListDriftEvents(ctx, ref, limit)
	if err != nil {
		return nil, err
	}
	out := make([]DriftEvent, 0, len(events))
	for _, e := range events {
		o := e.Object
		out = append(out, DriftEvent{ID: e.ID, BuildID: e.BuildID, Task: e.Task, Cluster: e.Cluster,
			Object: Object{Group: o.Group, Version: o.Version, Kind: o.Kind, Namespace: o.Namespace, Name: o.Name},
			Action: string(e.Action), Gone: e.Gone, Patch: e.Patch, Manager: e.Manager, ChangedAt: e.ChangedAt,
			DetectedAt: e.DetectedAt, Error: e.Error})
	}
	return out, nil
}
