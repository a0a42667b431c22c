package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrRetryDecided is what CreateRun returns (wrapped) for a retry of an interrupted run
// whose retry was already made or refused: each interrupted run is retried once at most.
var ErrRetryDecided = errors.New("the interrupted run was already retried, or its retry refused")

// InterruptionOutcome is what became of an interrupted run.
type InterruptionOutcome string

const (
	InterruptionPending    InterruptionOutcome = "pending"     // not decided yet
	InterruptionRetried    InterruptionOutcome = "retried"     // a retry run started (RetryBuildID)
	InterruptionNotRetried InterruptionOutcome = "not_retried" // its pipeline does not retry it
)

// Interruption is the record of a run whose holder died before the run ended.
type Interruption struct {
	Run    Run
	Holder string // the process that was running it
	// Tasks are the tasks that were running when it stopped: what may be half done.
	Tasks        []string
	At           time.Time
	Outcome      InterruptionOutcome
	RetryBuildID int64 // the retry run, when Outcome is InterruptionRetried
}

// unfinishedRun lists the statuses of a run that has not ended.
const unfinishedRun = `('queued', 'running', 'awaiting_approval', 'awaiting_window')`

// MarkStaleRuns implements Store. A cheap read finds whether there is anything to do, so
// a sweep every few seconds costs one indexed query; the marking itself is one
// transaction, so replicas sweeping at once mark each run once: one sees all of it, the
// others none. Runs of a holder that still beats (a CLI `slipway run` beside the daemon,
// another replica) are left to it.
//
// Revisions of these runs are left as they are: what they applied is still on the
// cluster, and whether it is healthy is for the reconciler to find out, not for the
// store to guess. The interruption names the tasks that were running, so what may be
// half-applied is on record.
func (s *DB) MarkStaleRuns(ctx context.Context) ([]Run, error) {
	stale := `r.status IN ` + unfinishedRun + ` AND r.holder NOT IN (SELECT holder FROM holders WHERE expires_at > $1)`
	var found int
	if err := s.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM runs r WHERE `+stale+` LIMIT 1) x`,
		s.now()).Scan(&found); err != nil {
		return nil, fmt.Errorf("mark stale runs: %w", err)
	}
	if found == 0 {
		return nil, nil
	}
	var runs []Run
	err := s.write(ctx, func(tx *sql.Tx) error {
		runs = runs[:0]
		now := s.now()
		type staleRun struct {
			id          int64
			holder, who string
		}
		var found []staleRun
		rows, err := tx.QueryContext(ctx, `
			SELECT r.id, r.holder, COALESCE(h.description, '') FROM runs r LEFT JOIN holders h ON h.holder = r.holder
			WHERE `+stale+` ORDER BY r.id`, now)
		if err != nil {
			return fmt.Errorf("runs: %w", err)
		}
		for rows.Next() {
			var r staleRun
			if err := rows.Scan(&r.id, &r.holder, &r.who); err != nil {
				rows.Close()
				return err
			}
			found = append(found, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, st := range found {
			running, err := queryStrings(ctx, tx, `SELECT name FROM tasks WHERE run_id = $1 AND status = 'running' ORDER BY id`, st.id)
			if err != nil {
				return fmt.Errorf("tasks: %w", err)
			}
			for _, step := range []struct{ from, to TaskStatus }{
				{TaskRunning, TaskFailed},
				{TaskPending, TaskCancelled},
			} {
				if _, err := tx.ExecContext(ctx, `
					UPDATE tasks SET status = $1, reason = $2, finished_at = $3 WHERE status = $4 AND run_id = $5`,
					string(step.to), InterruptedReason, now, string(step.from), st.id); err != nil {
					return fmt.Errorf("tasks: %w", err)
				}
			}
			if _, err := tx.ExecContext(ctx, `
				UPDATE runs SET status = $1, reason = $2, finished_at = $3 WHERE id = $4`,
				string(RunInterrupted), interruptedReason(st.holder, st.who, running), now, st.id); err != nil {
				return fmt.Errorf("runs: %w", err)
			}
			tasks, err := json.Marshal(append([]string{}, running...))
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO run_interruptions (run_id, holder, tasks, interrupted_at) VALUES ($1, $2, $3, $4)`,
				st.id, st.holder, string(tasks), now); err != nil {
				return fmt.Errorf("record the interruption: %w", err)
			}
			if err := s.enqueueRun(ctx, tx, st.id, RunInterrupted); err != nil {
				return err
			}
			// The holder that was to take the run's requests is gone: none is left waiting.
			if err := endRunRequests(ctx, tx, st.id, now, "the run was interrupted: its holder is gone", false); err != nil {
				return err
			}
			r, err := scanRun(tx.QueryRowContext(ctx, `
				SELECT `+runColumns+` FROM runs r JOIN pipelines p ON p.id = r.pipeline_id WHERE r.id = $1`, st.id))
			if err != nil {
				return err
			}
			if err := s.announce(ctx, tx, Change{Kind: ChangeRun, Pipeline: r.Pipeline, BuildID: r.BuildID}); err != nil {
				return err
			}
			runs = append(runs, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mark stale runs: %w", err)
	}
	for _, r := range runs {
		s.opts.changed(Change{Kind: ChangeRun, Pipeline: r.Pipeline, BuildID: r.BuildID})
	}
	return runs, nil
}

// interruptedReason is an interrupted run's reason: which process stopped, and what it
// was doing.
func interruptedReason(holder, who string, running []string) string {
	if who == "" {
		who = holder
	}
	if who == "" {
		who = "an older Slipway"
	}
	doing := "before any task started"
	if len(running) > 0 {
		doing = "while running " + strings.Join(running, ", ")
	}
	return fmt.Sprintf("%s (%s) %s", InterruptedReason, who, doing)
}

const interruptionColumns = `i.holder, i.tasks, i.interrupted_at, i.outcome, i.retry_build_id`

func scanInterruption(sc scanner) (Interruption, error) {
	var in Interruption
	var tasks, outcome string
	var at int64
	run, err := scanRun(extraScanner{sc, []any{&in.Holder, &tasks, &at, &outcome, &in.RetryBuildID}})
	if err != nil {
		return Interruption{}, err
	}
	in.Run, in.Outcome = run, InterruptionOutcome(outcome)
	in.At = fromMicros(sql.NullInt64{Int64: at, Valid: true})
	if err := json.Unmarshal([]byte(tasks), &in.Tasks); err != nil {
		return Interruption{}, fmt.Errorf("tasks of the interruption: %w", err)
	}
	return in, nil
}

// extraScanner scans a row of runColumns followed by more columns into scanRun's
// destinations and then extra.
type extraScanner struct {
	sc    scanner
	extra []any
}

func (e extraScanner) Scan(dest ...any) error { return e.sc.Scan(append(dest, e.extra...)...) }

// PendingInterruptions returns up to limit interrupted runs whose retry is not decided
// yet, oldest first.
func (s *DB) PendingInterruptions(ctx context.Context, limit int) ([]Interruption, error) {
	rows, err := s.reader.QueryContext(ctx, `
		SELECT `+runColumns+`, `+interruptionColumns+`
		FROM run_interruptions i JOIN runs r ON r.id = i.run_id JOIN pipelines p ON p.id = r.pipeline_id
		WHERE i.outcome = 'pending' ORDER BY i.run_id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("pending interruptions: %w", err)
	}
	defer rows.Close()
	var out []Interruption
	for rows.Next() {
		in, err := scanInterruption(rows)
		if err != nil {
			return nil, fmt.Errorf("pending interruptions: %w", err)
		}
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pending interruptions: %w", err)
	}
	return out, nil
}

// GetInterruption returns the interruption of run buildID, or ErrNotFound when the run
// was not interrupted.
func (s *DB) GetInterruption(ctx context.Context, ref PipelineRef, buildID int64) (Interruption, error) {
	in, err := scanInterruption(s.reader.QueryRowContext(ctx, `
		SELECT `+runColumns+`, `+interruptionColumns+`
		FROM run_interruptions i JOIN runs r ON r.id = i.run_id JOIN pipelines p ON p.id = r.pipeline_id
		WHERE p.repository = $1 AND p.name = $2 AND r.build_id = $3`, ref.Repository, ref.Name, buildID))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Interruption{}, fmt.Errorf("interruption of %s: %w", runName(ref, buildID), err)
	}
	return in, nil
}

// RefuseRetry records that interrupted run buildID is not retried (its pipeline does not
// ask for it, or its commit cannot run any more), with why in the run's reason. It
// returns ErrRetryDecided when the retry was decided already.
func (s *DB) RefuseRetry(ctx context.Context, ref PipelineRef, buildID int64, why string) error {
	err := s.writeChange(ctx, Change{Kind: ChangeRun, Pipeline: ref, BuildID: buildID}, func(tx *sql.Tx) error {
		id, err := runID(ctx, tx, ref, buildID)
		if err != nil {
			return err
		}
		if err := decideInterruption(ctx, tx, id, InterruptionNotRetried, 0, s.now()); err != nil {
			return err
		}
		if why != "" {
			if _, err := tx.ExecContext(ctx, `UPDATE runs SET reason = reason || '; not retried: ' || $1 WHERE id = $2`,
				why, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("refuse the retry of %s: %w", runName(ref, buildID), err)
	}
	return nil
}

// decideInterruption moves the pending interruption of run row runRowID to outcome (with
// the retry's BUILD_ID when retried), in the transaction that creates the retry; only one
// decision is ever taken (ErrRetryDecided for the later ones, or a run not interrupted).
func decideInterruption(ctx context.Context, tx *sql.Tx, runRowID int64, outcome InterruptionOutcome, retryBuildID, now int64) error {
	res, err := tx.ExecContext(ctx, `
		UPDATE run_interruptions SET outcome = $1, retry_build_id = $2, decided_at = $3
		WHERE run_id = $4 AND outcome = 'pending'`, string(outcome), retryBuildID, now, runRowID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return ErrRetryDecided
	}
	return nil
}
