package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// PullRequestEvent is one pull request action a forge reported.
type PullRequestEvent struct {
	ID           int64
	Repository   string
	Number       int
	Action       string // opened, updated, merged or closed
	Title        string
	Author       string
	SourceBranch string
	TargetBranch string
	HeadCommit   string
	MergeCommit  string // "" unless merged
	DeliveryID   string
	ReceivedAt   time.Time
}

// RecordDelivery remembers a webhook delivery id of a repository and reports whether it is
// new. A false answer means the delivery was seen before: a redelivery that must start
// nothing. Prune forgets old ids (retention.webhookDeliveries).
func (s *DB) RecordDelivery(ctx context.Context, repository, deliveryID string) (bool, error) {
	if repository == "" || deliveryID == "" {
		return false, fmt.Errorf("record delivery: repository and delivery id must be set")
	}
	now := s.opts.now()
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
			INSERT INTO webhook_deliveries (repository, delivery_id, received_at) VALUES ($1, $2, $3)
			ON CONFLICT (repository, delivery_id) DO NOTHING`, repository, deliveryID, toMicros(now))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("record delivery %s of %s: %w", deliveryID, repository, err)
	}
	return n == 1, nil
}

// RecordPullRequestEvent stores a pull request action.
func (s *DB) RecordPullRequestEvent(ctx context.Context, e PullRequestEvent) (PullRequestEvent, error) {
	if e.Repository == "" || e.Number <= 0 || e.Action == "" {
		return e, fmt.Errorf("record pull request event: repository, number and action must be set")
	}
	if e.ReceivedAt.IsZero() {
		e.ReceivedAt = s.opts.now()
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `
			INSERT INTO pull_request_events (repository, number, action, title, author, source_branch, target_branch,
				head_commit, merge_commit, delivery_id, received_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`,
			e.Repository, e.Number, e.Action, e.Title, e.Author, e.SourceBranch, e.TargetBranch,
			e.HeadCommit, e.MergeCommit, e.DeliveryID, toMicros(e.ReceivedAt)).Scan(&e.ID)
	})
	if err != nil {
		return e, fmt.Errorf("record pull request #%d event of %s: %w", e.Number, e.Repository, err)
	}
	e.ReceivedAt = fromMicros(sql.NullInt64{Int64: toMicros(e.ReceivedAt), Valid: true})
	return e, nil
}

// ListPullRequestEvents returns a repository's pull request events, newest first; number
// 0 means every pull request, limit <= 0 all events.
func (s *DB) ListPullRequestEvents(ctx context.Context, repository string, number, limit int) ([]PullRequestEvent, error) {
	if limit <= 0 {
		limit = noLimit
	}
	var out []PullRequestEvent
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `
			SELECT id, number, action, title, author, source_branch, target_branch, head_commit, merge_commit,
				delivery_id, received_at
			FROM pull_request_events WHERE repository = $1 AND ($2 = 0 OR number = $2)
			ORDER BY id DESC LIMIT $3`, repository, number, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e := PullRequestEvent{Repository: repository}
			var received int64
			if err := rows.Scan(&e.ID, &e.Number, &e.Action, &e.Title, &e.Author, &e.SourceBranch, &e.TargetBranch,
				&e.HeadCommit, &e.MergeCommit, &e.DeliveryID, &received); err != nil {
				return err
			}
			e.ReceivedAt = fromMicros(sql.NullInt64{Int64: received, Valid: true})
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list pull request events of %s: %w", repository, err)
	}
	return out, nil
}

// ForgetDelivery drops a recorded delivery id, so the forge's retry of a delivery that
// could not be acted on is not mistaken for a duplicate.
func (s *DB) ForgetDelivery(ctx context.Context, repository, deliveryID string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE repository = $1 AND delivery_id = $2`,
			repository, deliveryID)
		return err
	})
	if err != nil {
		return fmt.Errorf("forget delivery %s of %s: %w", deliveryID, repository, err)
	}
	return nil
}

// HandledHead returns the head of a repository's branch a watcher last dealt with; "" when
// none is recorded.
func (s *DB) HandledHead(ctx context.Context, repository, branch string) (string, error) {
	var head string
	err := s.read(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT head FROM branch_heads WHERE repository = $1 AND branch = $2`,
			repository, branch).Scan(&head)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("handled head of %s %s: %w", repository, branch, err)
	}
	return head, nil
}

// SetHandledHead records the head of a repository's branch a watcher has dealt with.
func (s *DB) SetHandledHead(ctx context.Context, repository, branch, head string) error {
	if repository == "" || branch == "" || head == "" {
		return fmt.Errorf("set handled head: repository, branch and head must be set")
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
			INSERT INTO branch_heads (repository, branch, head, handled_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (repository, branch) DO UPDATE SET head = excluded.head, handled_at = excluded.handled_at`,
			repository, branch, head, s.now())
		return err
	})
	if err != nil {
		return fmt.Errorf("set handled head of %s %s: %w", repository, branch, err)
	}
	return nil
}
