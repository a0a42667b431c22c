package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// DriftPolicy is how the daemon treats out-of-band changes to a revision's objects. It is
// recorded with the revision, so the daemon needs no pipeline file to act on it.
type DriftPolicy struct {
	// Mode is correct, report or off; "" (revisions recorded before drift policies were
	// stored) means correct, the pipeline default.
	Mode   string            `json:"mode,omitempty"`
	Ignore []DriftIgnoreRule `json:"ignore,omitempty"`
	// Health is what the health watch does when the revision's workloads fail after its
	// deploy: report, rollback or off; "" means report, the pipeline default.
	Health string `json:"health,omitempty"`
}

// The health watch modes.
const (
	HealthReport   = "report"
	HealthRollback = "rollback"
	HealthOff      = "off"
)

// EffectiveHealth is Health with the default filled in.
func (p DriftPolicy) EffectiveHealth() string {
	if p.Health == "" {
		return HealthReport
	}
	return p.Health
}

// DriftIgnoreRule excludes fields (JSON pointers) of matching objects from drift.
type DriftIgnoreRule struct {
	Kind  string   `json:"kind,omitempty"` // "" matches any kind
	Name  string   `json:"name,omitempty"` // "" matches any name
	Paths []string `json:"paths"`
}

// The drift modes.
const (
	DriftCorrect = "correct"
	DriftReport  = "report"
	DriftOff     = "off"
)

// EffectiveMode is Mode with the default filled in.
func (p DriftPolicy) EffectiveMode() string {
	if p.Mode == "" {
		return DriftCorrect
	}
	return p.Mode
}

func encodeDriftPolicy(p DriftPolicy) (string, error) {
	if p.Mode == "" && len(p.Ignore) == 0 && p.Health == "" {
		return "", nil
	}
	b, err := json.Marshal(p)
	return string(b), err
}

func decodeDriftPolicy(s string) (DriftPolicy, error) {
	var p DriftPolicy
	if s == "" {
		return p, nil
	}
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		return p, fmt.Errorf("drift policy: %w", err)
	}
	return p, nil
}

// DriftAction is what the daemon did about a drifted object.
type DriftAction string

// The drift actions.
const (
	DriftReported         DriftAction = "reported"
	DriftCorrected        DriftAction = "corrected"
	DriftCorrectionFailed DriftAction = "correction-failed"
	// HealthUnhealthy is not drift but the health watch's finding: a workload of the
	// revision failed after its deploy; Error holds the pod's reason and what was done.
	HealthUnhealthy DriftAction = "unhealthy"
)

// NewDriftEvent is one out-of-band change seen on an object of a current revision.
type NewDriftEvent struct {
	Pipeline PipelineRef
	BuildID  int64 // the revision's run
	Task     string
	Cluster  string
	Object   InventoryEntry // Digest and Fingerprint are not recorded
	Action   DriftAction
	Gone     bool   // the object was deleted
	Patch    string // RFC 6902 JSON patch from the live object to the desired one, Secrets masked
	Manager  string // field manager of the change, "" when unknown (a deletion)
	// ChangedAt is when Manager last changed the object (from managedFields); zero when unknown.
	ChangedAt  time.Time
	DetectedAt time.Time
	Error      string // why a correction failed; for HealthUnhealthy, the pod's reason
}

// DriftEvent is a recorded NewDriftEvent.
type DriftEvent struct {
	ID int64
	NewDriftEvent
}

// RecordDriftEvent stores a drift event of a revision's object.
func (s *DB) RecordDriftEvent(ctx context.Context, e NewDriftEvent) (DriftEvent, error) {
	what := fmt.Sprintf("drift event of %s in %s", e.Object, revisionName(e.Pipeline, e.BuildID, e.Task))
	if err := e.Pipeline.validate(); err != nil {
		return DriftEvent{}, fmt.Errorf("record %s: %w", what, err)
	}
	switch {
	case e.Task == "" || e.Cluster == "" || e.Object.Kind == "" || e.Object.Version == "" || e.Object.Name == "":
		return DriftEvent{}, fmt.Errorf("record %s: task, cluster and the object's version, kind and name must be set", what)
	case e.Action != DriftReported && e.Action != DriftCorrected && e.Action != DriftCorrectionFailed && e.Action != HealthUnhealthy:
		return DriftEvent{}, fmt.Errorf("record %s: unknown action %q", what, e.Action)
	}
	if e.DetectedAt.IsZero() {
		e.DetectedAt = s.opts.now()
	}
	var changed sql.NullInt64
	if !e.ChangedAt.IsZero() {
		changed = sql.NullInt64{Int64: toMicros(e.ChangedAt), Valid: true}
	}
	var id int64
	err := s.writeChange(ctx, Change{Kind: ChangeDrift, Pipeline: e.Pipeline}, func(tx *sql.Tx) error {
		pid, err := pipelineID(ctx, tx, e.Pipeline)
		if err != nil {
			return err
		}
		o := e.Object
		if err := tx.QueryRowContext(ctx, `
			INSERT INTO drift_events (pipeline_id, build_id, task, cluster, api_group, api_version, kind, namespace, name,
				action, gone, patch, manager, changed_at, detected_at, error)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id`,
			pid, e.BuildID, e.Task, e.Cluster, o.Group, o.Version, o.Kind, o.Namespace, o.Name,
			string(e.Action), e.Gone, e.Patch, e.Manager, changed, toMicros(e.DetectedAt), e.Error).Scan(&id); err != nil {
			return err
		}
		if err := s.enqueueDrift(ctx, tx, pid, e.BuildID, id, e.Action); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return DriftEvent{}, fmt.Errorf("record %s: %w", what, err)
	}
	e.Object.Digest, e.Object.Fingerprint = "", ""
	e.DetectedAt = fromMicros(sql.NullInt64{Int64: toMicros(e.DetectedAt), Valid: true})
	if changed.Valid {
		e.ChangedAt = fromMicros(changed)
	}
	return DriftEvent{ID: id, NewDriftEvent: e}, nil
}

// ListDriftEvents returns the pipeline's drift events, newest first; limit <= 0 means all.
func (s *DB) ListDriftEvents(ctx context.Context, ref PipelineRef, limit int) ([]DriftEvent, error) {
	if limit <= 0 {
		limit = noLimit
	}
	var out []DriftEvent
	err := s.read(ctx, func(tx *sql.Tx) error {
		pid, err := pipelineID(ctx, tx, ref)
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `
			SELECT id, build_id, task, cluster, api_group, api_version, kind, namespace, name,
				action, gone, patch, manager, changed_at, detected_at, error
			FROM drift_events WHERE pipeline_id = $1 ORDER BY id DESC LIMIT $2`, pid, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e := DriftEvent{NewDriftEvent: NewDriftEvent{Pipeline: ref}}
			o := &e.Object
			var action string
			var changed sql.NullInt64
			var detected int64
			if err := rows.Scan(&e.ID, &e.BuildID, &e.Task, &e.Cluster, &o.Group, &o.Version, &o.Kind, &o.Namespace, &o.Name,
				&action, &e.Gone, &e.Patch, &e.Manager, &changed, &detected, &e.Error); err != nil {
				return err
			}
			e.Action = DriftAction(action)
			e.ChangedAt = fromMicros(changed)
			e.DetectedAt = fromMicros(sql.NullInt64{Int64: detected, Valid: true})
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list drift events of %s: %w", ref, err)
	}
	return out, nil
}

// CurrentRevisions returns, for every task of every pipeline, the revision now on the
// cluster: the newest one that is healthy, applied or failed. A rolled-back revision is
// never current: the one it was rolled back to is. Nor is a failed revision with no
// objects (a chart deploy Helm failed before rendering anything): nothing of it reached
// the cluster, so the revision before it is still what is there.
func (s *DB) CurrentRevisions(ctx context.Context) ([]Revision, error) {
	var revs []Revision
	err := s.EachCurrentRevision(ctx, nil, func(r *Revision) error {
		revs = append(revs, *r)
		return nil
	})
	return revs, err
}

// EachCurrentRevision hands the current revisions (see CurrentRevisions, same order) to fn
// one at a time, for a reader that keeps what it took from the revisions it read before
// (the drift and health watches, which reload after every deploy). The revisions known
// reports true for come without their objects and inventory (Objects and Inventory nil),
// which are the bulk of a revision to read, decompress and check; the others come in
// full. known sees each revision's other fields, the objects' digest among them; nil
// knows none. Each revision is its own copy, fn's to keep: keeping one keeps no other.
// fn runs inside the store's read and must not call the store; an error from fn ends the
// reading and is returned as it is.
func (s *DB) EachCurrentRevision(ctx context.Context, known func(*Revision) bool, fn func(*Revision) error) error {
	return s.eachCurrent(ctx, nil, known, fn)
}

// EachCurrentRevisionOf is EachCurrentRevision for the given pipelines only, in the order
// given (a pipeline the store does not know has no revisions): what a reader reloads after
// runs of those pipelines, which cannot have changed any other pipeline's current revisions.
func (s *DB) EachCurrentRevisionOf(ctx context.Context, pipelines []PipelineRef, known func(*Revision) bool, fn func(*Revision) error) error {
	if len(pipelines) == 0 {
		return nil
	}
	return s.eachCurrent(ctx, pipelines, known, fn)
}

// currentRevisionsWhere selects the current revisions (see CurrentRevisions); its
// placeholders $1..$3 are the statuses currentArgs gives, %s narrows the candidates.
const currentRevisionsWhere = `r.id IN (
			SELECT c.id FROM revisions c WHERE %s c.status IN ($1, $2, $3)
				AND (c.status <> $3 OR c.objects_size > 0) AND NOT EXISTS (
				SELECT 1 FROM revisions n WHERE n.pipeline_id = c.pipeline_id AND n.task = c.task
					AND n.status IN ($1, $2, $3) AND (n.status <> $3 OR n.objects_size > 0)
					AND n.build_id > c.build_id))
			ORDER BY p.repository, p.name, r.task`

// eachCurrent hands fn the current revisions of pipelines, or of all when pipelines is nil,
// in one read.
func (s *DB) eachCurrent(ctx context.Context, pipelines []PipelineRef, known func(*Revision) bool, fn func(*Revision) error) error {
	var fnErr error
	each := func(r *Revision) error {
		if err := fn(r); err != nil {
			fnErr = err
			return err
		}
		return nil
	}
	statuses := []any{string(RevisionHealthy), string(RevisionApplied), string(RevisionFailed)}
	err := s.read(ctx, func(tx *sql.Tx) error {
		if pipelines == nil {
			return s.eachRevision(ctx, tx, revisionParts{known: known}, each, fmt.Sprintf(currentRevisionsWhere, ""), statuses...)
		}
		// One pipeline at a time: its revisions are found by the index on pipeline_id.
		where := fmt.Sprintf(currentRevisionsWhere, "c.pipeline_id = (SELECT id FROM pipelines WHERE repository = $4 AND name = $5) AND")
		for _, ref := range pipelines {
			if err := s.eachRevision(ctx, tx, revisionParts{known: known}, each, where, append(statuses, ref.Repository, ref.Name)...); err != nil {
				return err
			}
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("current revisions: %w", err)
	}
	return nil
}
