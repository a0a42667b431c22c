package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// runColumns is what scanRun reads, in order; p is the pipelines alias.
const runColumns = `p.repository, p.name, r.build_id, r.commit_sha, r.branch, r.tag, r.trigger_kind,
	r.parent_build_id, r.status, r.reason, r.created_at, r.started_at, r.finished_at`

type scanner interface{ Scan(dest ...any) error }

func scanRun(sc scanner) (Run, error) {
	var r Run
	var parent, started, finished sql.NullInt64
	var created int64
	err := sc.Scan(&r.Pipeline.Repository, &r.Pipeline.Name, &r.BuildID, &r.Commit, &r.Branch, &r.Tag,
		&r.Trigger, &parent, &r.Status, &r.Reason, &created, &started, &finished)
	if err != nil {
		return Run{}, err
	}
	r.ParentBuildID = parent.Int64
	r.CreatedAt = fromMicros(sql.NullInt64{Int64: created, Valid: true})
	r.StartedAt = fromMicros(started)
	r.FinishedAt = fromMicros(finished)
	return r, nil
}

// CreateRun implements Store. The counter increment and the run insert share one
// write transaction: either both happen or neither, so a committed BUILD_ID is never
// handed out twice (the counter only grows) and a rolled-back one was never seen.
func (s *DB) CreateRun(ctx context.Context, nr NewRun) (Run, error) {
	runs, err := s.CreateRuns(ctx, []NewRun{nr}, Handled{})
	if err != nil {
		return Run{}, err
	}
	return runs[0], nil
}

// checkNewRun refuses a NewRun before any transaction starts.
func checkNewRun(nr NewRun) error {
	ref := nr.Pipeline
	if err := ref.validate(); err != nil {
		return fmt.Errorf("allocate BUILD_ID: %w", err)
	}
	if !nr.Trigger.Valid() {
		return fmt.Errorf("allocate BUILD_ID for %s: unknown trigger %q", ref, nr.Trigger)
	}
	if nr.Trigger == TriggerRetry && nr.ParentBuildID == 0 {
		return fmt.Errorf("allocate BUILD_ID for %s: a retry names the interrupted run as its parent", ref)
	}
	if nr.ParentBuildID < 0 {
		return fmt.Errorf("allocate BUILD_ID for %s: parent BUILD_ID %d is negative", ref, nr.ParentBuildID)
	}
	for _, t := range nr.Tasks {
		if !t.complete() {
			return fmt.Errorf("allocate BUILD_ID for %s: task %q: stage, name and type must all be set", ref, t.Name)
		}
	}
	if e := nr.Audit; e != nil {
		if e.BuildID != 0 || (e.Pipeline != PipelineRef{} && e.Pipeline != ref) {
			return fmt.Errorf("allocate BUILD_ID for %s: its audit entry takes the run's pipeline and BUILD_ID, not %s #%d", ref, e.Pipeline, e.BuildID)
		}
		if _, err := e.check(); err != nil {
			return fmt.Errorf("allocate BUILD_ID for %s: record %s: %w", ref, e.describe(), err)
		}
	}
	return nil
}

// createRun allocates the next BUILD_ID of nr's pipeline and records the run queued, with
// its tasks pending, in tx.
func (s *DB) createRun(ctx context.Context, tx *sql.Tx, nr NewRun, now int64) (Run, error) {
	ref := nr.Pipeline
	pid, err := ensurePipeline(ctx, tx, ref, now)
	if err != nil {
		return Run{}, err
	}
	var parent sql.NullInt64
	var parentRow int64
	if nr.ParentBuildID > 0 {
		if parentRow, err = runID(ctx, tx, ref, nr.ParentBuildID); err != nil {
			return Run{}, fmt.Errorf("parent BUILD_ID %d: %w", nr.ParentBuildID, err)
		}
		parent = sql.NullInt64{Int64: nr.ParentBuildID, Valid: true}
	}
	var buildID int64
	err = tx.QueryRowContext(ctx,
		`UPDATE pipelines SET last_build_id = last_build_id + 1 WHERE id = $1 RETURNING last_build_id`,
		pid).Scan(&buildID)
	if err != nil {
		return Run{}, err
	}
	var rowID int64
	err = tx.QueryRowContext(ctx, `
		INSERT INTO runs (pipeline_id, build_id, commit_sha, branch, tag, trigger_kind,
			parent_build_id, status, reason, created_at, holder)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '', $9, $10) RETURNING id`,
		pid, buildID, nr.Commit, nr.Branch, nr.Tag, string(nr.Trigger), parent, string(RunQueued), now, nr.Holder).Scan(&rowID)
	if err != nil {
		return Run{}, err
	}
	for _, t := range nr.Tasks {
		if err := s.insertTask(ctx, tx, rowID, t); err != nil {
			return Run{}, fmt.Errorf("task %s: %w", t.Name, err)
		}
	}
	if nr.Trigger == TriggerRetry {
		if err := decideInterruption(ctx, tx, parentRow, InterruptionRetried, buildID, now); err != nil {
			return Run{}, fmt.Errorf("retry of BUILD_ID %d: %w", nr.ParentBuildID, err)
		}
	}
	run, err := getRun(ctx, tx, ref, buildID)
	if err != nil {
		return Run{}, err
	}
	if nr.Audit != nil {
		e := *nr.Audit
		e.Pipeline, e.BuildID = ref, buildID
		if e.Time.IsZero() {
			e.Time = time.UnixMicro(now)
		}
		evidence, _ := e.check() // checked by checkNewRun
		if err := insertAudit(ctx, tx, &e, evidence); err != nil {
			return Run{}, fmt.Errorf("record %s: %w", e.describe(), err)
		}
		if err := s.announce(ctx, tx, Change{Kind: ChangeAudit, Pipeline: ref, BuildID: buildID}); err != nil {
			return Run{}, err
		}
	}
	return run, s.announce(ctx, tx, Change{Kind: ChangeRun, Pipeline: ref, BuildID: buildID})
}

// GetRun implements Store.
func (s *DB) GetRun(ctx context.Context, ref PipelineRef, buildID int64) (Run, error) {
	r, err := getRun(ctx, s.reader, ref, buildID)
	if err != nil {
		return Run{}, fmt.Errorf("get %s: %w", runName(ref, buildID), err)
	}
	return r, nil
}

func getRun(ctx context.Context, q querier, ref PipelineRef, buildID int64) (Run, error) {
	r, err := scanRun(q.QueryRowContext(ctx, `
		SELECT `+runColumns+`
		FROM runs r JOIN pipelines p ON p.id = r.pipeline_id
		WHERE p.repository = $1 AND p.name = $2 AND r.build_id = $3`,
		ref.Repository, ref.Name, buildID))
	if errors.Is(err, sql.ErrNoRows) {
		return Run{}, ErrNotFound
	}
	return r, err
}

// ListRuns implements Store.
func (s *DB) ListRuns(ctx context.Context, ref PipelineRef, limit int) ([]Run, error) {
	query := `
		SELECT ` + runColumns + `
		FROM runs r JOIN pipelines p ON p.id = r.pipeline_id
		WHERE p.repository = $1 AND p.name = $2
		ORDER BY r.build_id DESC`
	args := []any{ref.Repository, ref.Name}
	if limit > 0 {
		query += ` LIMIT $3`
		args = append(args, limit)
	}
	rows, err := s.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list runs of %s: %w", ref, err)
	}
	defer rows.Close()
	var runs []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("list runs of %s: %w", ref, err)
		}
		runs = append(runs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list runs of %s: %w", ref, err)
	}
	return runs, nil
}

// NoteQueuedRuns implements Store: one write for all of them, so a burst of runs lined up
// for a place costs one commit, not one each. A run no longer on record is skipped.
func (s *DB) NoteQueuedRuns(ctx context.Context, runs []Run, reason string) error {
	if len(runs) == 0 {
		return nil
	}
	changes := make([]Change, len(runs))
	for i, r := range runs {
		changes[i] = Change{Kind: ChangeRun, Pipeline: r.Pipeline, BuildID: r.BuildID}
	}
	err := s.writeChanges(ctx, changes, func(tx *sql.Tx) error {
		for _, r := range runs {
			id, err := runID(ctx, tx, r.Pipeline, r.BuildID)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err == nil {
				_, err = tx.ExecContext(ctx, `UPDATE runs SET reason = $1 WHERE id = $2 AND status = $3`, reason, id, string(RunQueued))
			}
			if err != nil {
				return fmt.Errorf("%s: %w", runName(r.Pipeline, r.BuildID), err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("note why queued runs wait: %w", err)
	}
	return nil
}

// TransitionRun implements Store. The UPDATE carries the expected status in its WHERE
// clause, so the check and the change are one step even across processes.
func (s *DB) TransitionRun(ctx context.Context, ref PipelineRef, buildID int64, from, to RunStatus, reason string) (Run, error) {
	what := runName(ref, buildID)
	if !from.CanMove(to) {
		return Run{}, &TransitionError{What: what, From: string(from), To: string(to), Illegal: true}
	}
	var run Run
	err := s.writeChange(ctx, Change{Kind: ChangeRun, Pipeline: ref, BuildID: buildID}, func(tx *sql.Tx) (err error) {
		run, err = s.transitionRun(ctx, tx, ref, buildID, from, to, reason, s.now())
		return err
	})
	if err != nil {
		return Run{}, fmt.Errorf("move %s to %s: %w", what, to, err)
	}
	return run, nil
}

// transitionRun is TransitionRun's compare-and-set in tx; the caller checked the move is
// legal.
func (s *DB) transitionRun(ctx context.Context, tx *sql.Tx, ref PipelineRef, buildID int64, from, to RunStatus, reason string, now int64) (Run, error) {
	what := runName(ref, buildID)
	id, err := runID(ctx, tx, ref, buildID)
	if err != nil {
		return Run{}, err
	}
	res, err := tx.ExecContext(ctx, `
		UPDATE runs SET status = $1, reason = $2,
			started_at  = CASE WHEN $3 THEN $4 ELSE started_at END,
			finished_at = CASE WHEN $5 THEN $4 ELSE finished_at END
		WHERE id = $6 AND status = $7`,
		string(to), reason, from == RunQueued && to == RunRunning, now, to.Final(), id, string(from))
	if err != nil {
		return Run{}, err
	}
	if n, err := res.RowsAffected(); err != nil {
		return Run{}, err
	} else if n == 0 {
		cur, err := getRun(ctx, tx, ref, buildID)
		if err != nil {
			return Run{}, err
		}
		return Run{}, &TransitionError{What: what, From: string(from), To: string(to), Current: string(cur.Status)}
	}
	if err := s.enqueueRun(ctx, tx, id, to); err != nil {
		return Run{}, err
	}
	if to.Final() {
		if err := endRunRequests(ctx, tx, id, now, "the run ended "+string(to)+" before its holder took the request", true); err != nil {
			return Run{}, err
		}
		// The claim made for this run ends with it, in the same commit: the holder
		// need not release it with a write of its own. A claim for another run stays.
		if _, err := tx.ExecContext(ctx, `
			DELETE FROM pipeline_claims WHERE build_id = $1
			AND pipeline_id = (SELECT pipeline_id FROM runs WHERE id = $2)`, buildID, id); err != nil {
			return Run{}, err
		}
	}
	return getRun(ctx, tx, ref, buildID)
}
