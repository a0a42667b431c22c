package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// AuditAction is what an audit entry records.
type AuditAction string

// The audited actions.
const (
	AuditTrigger      AuditAction = "trigger"
	AuditRerun        AuditAction = "rerun"
	AuditCancel       AuditAction = "cancel"
	AuditRollback     AuditAction = "rollback"
	AuditPromote      AuditAction = "promote"
	AuditSuspend      AuditAction = "suspend"
	AuditResume       AuditAction = "resume"
	AuditApprove      AuditAction = "approve"
	AuditReject       AuditAction = "reject"
	AuditGateDecision AuditAction = "gate-decision"
	// AuditTagMoved and AuditTagDeleted record a tag changed after its run: the run is not
	// repeated (actor "slipway", the run the tag started).
	AuditTagMoved   AuditAction = "tag-moved"
	AuditTagDeleted AuditAction = "tag-deleted"
)

// AuditActions lists every action, in the order the docs name them.
var AuditActions = []AuditAction{AuditTrigger, AuditRerun, AuditCancel, AuditRollback, AuditPromote, AuditSuspend, AuditResume, AuditApprove, AuditReject, AuditGateDecision,
	AuditTagMoved, AuditTagDeleted}

func (a AuditAction) valid() bool {
	for _, k := range AuditActions {
		if a == k {
			return true
		}
	}
	return false
}

// AuditEntry is one action a person or a gate took on a pipeline. Entries are never
// changed or deleted.
type AuditEntry struct {
	ID       int64
	Time     time.Time // zero: now
	Actor    string    // the API identity's name, cli:USER, or the gate
	Action   AuditAction
	Pipeline PipelineRef
	BuildID  int64 // the run acted on or started; 0 when none
	Reason   string
	// Evidence is a JSON object backing the action (a gate's rule, pull request number,
	// approvers and heads); nil when there is none.
	Evidence json.RawMessage
}

// AuditFilter selects audit entries. Empty fields match everything.
type AuditFilter struct {
	Pipeline PipelineRef // Repository "" matches every repository, Name "" every pipeline
	Limit    int         // newest first; <= 0: all
}

// RecordAudit appends an entry to the audit log and returns it as stored.
func (s *DB) RecordAudit(ctx context.Context, e AuditEntry) (AuditEntry, error) {
	what := e.describe()
	if err := e.Pipeline.validate(); err != nil {
		return AuditEntry{}, fmt.Errorf("record %s: %w", what, err)
	}
	evidence, err := e.check()
	if err != nil {
		return AuditEntry{}, fmt.Errorf("record %s: %w", what, err)
	}
	if e.Time.IsZero() {
		e.Time = s.opts.now()
	}
	err = s.writeChange(ctx, Change{Kind: ChangeAudit, Pipeline: e.Pipeline, BuildID: e.BuildID}, func(tx *sql.Tx) error {
		return insertAudit(ctx, tx, &e, evidence)
	})
	if err != nil {
		return AuditEntry{}, fmt.Errorf("record %s: %w", what, err)
	}
	e.Time = fromMicros(sql.NullInt64{Int64: toMicros(e.Time), Valid: true})
	return e, nil
}

func (e AuditEntry) describe() string {
	return fmt.Sprintf("audit %s of %s by %q", e.Action, e.Pipeline, e.Actor)
}

// check refuses an entry the log cannot hold, before any transaction starts, and returns
// its evidence as stored ("" when there is none). The pipeline is checked by the caller:
// an entry recorded with a new run takes the run's.
func (e AuditEntry) check() (string, error) {
	switch {
	case e.Actor == "":
		return "", errors.New("the actor must be set")
	case !e.Action.valid():
		return "", fmt.Errorf("unknown action %q", e.Action)
	case e.BuildID < 0:
		return "", fmt.Errorf("BUILD_ID %d is negative", e.BuildID)
	}
	if len(e.Evidence) == 0 {
		return "", nil
	}
	var obj map[string]any
	if err := json.Unmarshal(e.Evidence, &obj); err != nil {
		return "", fmt.Errorf("evidence must be a JSON object: %w", err)
	}
	return string(e.Evidence), nil
}

// insertAudit appends e, checked, in tx and sets its ID.
func insertAudit(ctx context.Context, tx *sql.Tx, e *AuditEntry, evidence string) error {
	return tx.QueryRowContext(ctx, `
		INSERT INTO audit_log (at, actor, action, repository, pipeline, build_id, reason, evidence)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
		toMicros(e.Time), e.Actor, string(e.Action), e.Pipeline.Repository, e.Pipeline.Name, e.BuildID,
		e.Reason, evidence).Scan(&e.ID)
}

// ListAudit returns the audit entries f selects, newest first.
func (s *DB) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = noLimit
	}
	var out []AuditEntry
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `
			SELECT id, at, actor, action, repository, pipeline, build_id, reason, evidence FROM audit_log
			WHERE ($1 = '' OR repository = $1) AND ($2 = '' OR pipeline = $2)
			ORDER BY id DESC LIMIT $3`, f.Pipeline.Repository, f.Pipeline.Name, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e AuditEntry
			var at int64
			var action, evidence string
			if err := rows.Scan(&e.ID, &at, &e.Actor, &action, &e.Pipeline.Repository, &e.Pipeline.Name, &e.BuildID,
				&e.Reason, &evidence); err != nil {
				return err
			}
			e.Time = fromMicros(sql.NullInt64{Int64: at, Valid: true})
			e.Action = AuditAction(action)
			if evidence != "" {
				e.Evidence = json.RawMessage(evidence)
			}
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	return out, nil
}
