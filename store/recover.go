package store

import (
	"context"
	"database/sql"
	"fmt"
)

// MarkStaleRuns implements Store. Everything happens in one transaction, so a second
// daemon starting at the same moment sees either all of it or none. Runs of a holder
// that still beats (a CLI `slipway run` beside the daemon, another replica) are left to
// it.
//
// Revisions of these runs are left as they are: what they applied is still on the
// cluster, and whether it is healthy is for the reconciler to find out, not for the
// store to guess.
func (s *DB) MarkStaleRuns(ctx context.Context) ([]Run, error) {
	var runs []Run
	err := s.write(ctx, func(tx *sql.Tx) error {
		now := s.now()
		stale := `status IN ('queued', 'running', 'awaiting_approval', 'awaiting_window') AND holder NOT IN
			(SELECT holder FROM holders WHERE expires_at > ` + fmt.Sprint(now) + `)`
		unfinished := `(SELECT id FROM runs WHERE ` + stale + `)`
		for _, step := range []struct{ from, to TaskStatus }{
			{TaskRunning, TaskFailed},
			{TaskPending, TaskCancelled},
		} {
			if _, err := tx.ExecContext(ctx, `
				UPDATE tasks SET status = $1, reason = $2, finished_at = $3
				WHERE status = $4 AND run_id IN `+unfinished,
				string(step.to), InterruptedReason, now, string(step.from)); err != nil {
				return fmt.Errorf("tasks: %w", err)
			}
		}
		rows, err := tx.QueryContext(ctx, `
			UPDATE runs SET status = $1, reason = $2, finished_at = $3
			WHERE `+stale+`
			RETURNING id`,
			string(RunFailed), InterruptedReason, now)
		if err != nil {
			return fmt.Errorf("runs: %w", err)
		}
		var ids []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range ids {
			if err := s.enqueueRun(ctx, tx, id, RunFailed); err != nil {
				return err
			}
			r, err := scanRun(tx.QueryRowContext(ctx, `
				SELECT `+runColumns+` FROM runs r JOIN pipelines p ON p.id = r.pipeline_id WHERE r.id = $1`, id))
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
