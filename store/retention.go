package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Retention says which records Prune deletes. A zero age or count keeps records however
// old or many they are. The audit log is not among them: nothing deletes it.
type Retention struct {
	// Deliveries: webhook delivery ids older than this are forgotten (a redelivery after
	// that starts a run again).
	Deliveries time.Duration
	// PullRequestEvents by age and, per repository, by count (the newest are kept).
	PullRequestEvents RecordLimit
	// DriftEvents by age and, per pipeline, by count (the newest are kept).
	DriftEvents RecordLimit
	// Batch is how many rows one write transaction deletes at most (<= 0: 500), so
	// clean-up never holds the write lock long and other writers get in between batches.
	Batch int
}

// RecordLimit keeps records up to an age and a count; zero turns either off.
type RecordLimit struct {
	MaxAge   time.Duration
	MaxCount int
}

// Pruned counts what Prune deleted.
type Pruned struct {
	Deliveries, PullRequestEvents, DriftEvents int
}

// Prune deletes what r selects, in batches of r.Batch rows, each its own transaction.
func (s *DB) Prune(ctx context.Context, r Retention) (Pruned, error) {
	var p Pruned
	batch := r.Batch
	if batch <= 0 {
		batch = 500
	}
	now := s.opts.now()
	var err error
	if r.Deliveries > 0 {
		p.Deliveries, err = s.deleteBatches(ctx, batch, `DELETE FROM webhook_deliveries WHERE (repository, delivery_id) IN
			(SELECT repository, delivery_id FROM webhook_deliveries WHERE received_at < $1 LIMIT $2)`, toMicros(now.Add(-r.Deliveries)))
		if err != nil {
			return p, fmt.Errorf("prune webhook deliveries: %w", err)
		}
	}
	if p.PullRequestEvents, err = s.pruneRecords(ctx, batch, now, r.PullRequestEvents, "pull_request_events", "repository", "received_at"); err != nil {
		return p, fmt.Errorf("prune pull request events: %w", err)
	}
	if p.DriftEvents, err = s.pruneRecords(ctx, batch, now, r.DriftEvents, "drift_events", "pipeline_id", "detected_at"); err != nil {
		return p, fmt.Errorf("prune drift events: %w", err)
	}
	return p, nil
}

// pruneRecords deletes from table (ids grow with time) the rows older than l.MaxAge, then
// in each group (rows sharing the group column) all but the newest l.MaxCount. Table and
// column names are the constants above, never input.
func (s *DB) pruneRecords(ctx context.Context, batch int, now time.Time, l RecordLimit, table, group, at string) (int, error) {
	total := 0
	if l.MaxAge > 0 {
		// Oldest first, by id: the scan stops once a batch is found.
		n, err := s.deleteBatches(ctx, batch, `DELETE FROM `+table+` WHERE id IN
			(SELECT id FROM `+table+` WHERE `+at+` < $1 ORDER BY id LIMIT $2)`, toMicros(now.Add(-l.MaxAge)))
		total += n
		if err != nil {
			return total, err
		}
	}
	if l.MaxCount <= 0 {
		return total, nil
	}
	// Per group over its limit: the newest id that goes, read first, then deleted in batches.
	type cut struct {
		group any
		id    int64
	}
	var cuts []cut
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT g, (SELECT id FROM `+table+` WHERE `+group+` = g ORDER BY id DESC LIMIT 1 OFFSET $1)
			FROM (SELECT `+group+` AS g FROM `+table+` GROUP BY `+group+` HAVING COUNT(*) > $1) AS groups`, l.MaxCount)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c cut
			if err := rows.Scan(&c.group, &c.id); err != nil {
				return err
			}
			cuts = append(cuts, c)
		}
		return rows.Err()
	})
	if err != nil {
		return total, err
	}
	for _, c := range cuts {
		n, err := s.deleteBatches(ctx, batch, `DELETE FROM `+table+` WHERE id IN
			(SELECT id FROM `+table+` WHERE `+group+` = $1 AND id <= $2 ORDER BY id LIMIT $3)`, c.group, c.id)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// deleteBatches runs query (whose last parameter is the batch size) until it deletes
// fewer rows than a batch, one transaction each.
func (s *DB) deleteBatches(ctx context.Context, batch int, query string, args ...any) (int, error) {
	total := 0
	args = append(args, batch)
	for {
		var n int64
		err := s.write(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, query, args...)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		total += int(n)
		if err != nil || n < int64(batch) {
			return total, err
		}
	}
}
