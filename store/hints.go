package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ChangeHint says a webhook hint was handed to a repository's owner (HandHint). Pipeline
// names the repository only.
const ChangeHint ChangeKind = "hint"

// RepositoryHint is a webhook's push hint, handed by the replica that received it to the
// replica that watches the repository.
type RepositoryHint struct {
	ID         int64
	Repository string
	DeliveryID string
	Branch     string
	Commit     string
	Tag        string
	Resumed    string // a pipeline just resumed
	Created    time.Time
}

// HandHint records a hint for the repository's owner to take (TakeHints).
func (s *DB) HandHint(ctx context.Context, h RepositoryHint) error {
	if h.Repository == "" {
		return fmt.Errorf("hand a hint: no repository")
	}
	// Announced: the owner is another process, woken through the relay.
	err := s.writeChange(ctx, Change{Kind: ChangeHint, Pipeline: PipelineRef{Repository: h.Repository}}, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
			INSERT INTO repository_hints (repository, delivery_id, branch, commit_sha, tag, resumed, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			h.Repository, h.DeliveryID, h.Branch, h.Commit, h.Tag, h.Resumed, s.now())
		return err
	})
	if err != nil {
		return fmt.Errorf("hand a hint for %s: %w", h.Repository, err)
	}
	return nil
}

// TakeHints returns and deletes the hints handed for the given repositories, oldest first.
// Each hint is taken once, by one caller.
func (s *DB) TakeHints(ctx context.Context, repositories []string) ([]RepositoryHint, error) {
	if len(repositories) == 0 {
		return nil, nil
	}
	args := make([]any, len(repositories))
	marks := make([]string, len(repositories))
	for i, r := range repositories {
		args[i] = r
		marks[i] = fmt.Sprintf("$%d", i+1)
	}
	in := `repository IN (` + strings.Join(marks, ", ") + `)`
	// Owners ask every few seconds and there is mostly nothing: a read answers that
	// without a write transaction.
	var waiting int
	if err := s.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM repository_hints WHERE `+in+` LIMIT 1) AS waiting`,
		args...).Scan(&waiting); err != nil {
		return nil, fmt.Errorf("take hints: %w", err)
	}
	if waiting == 0 {
		return nil, nil
	}
	var out []RepositoryHint
	err := s.write(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		rows, err := tx.QueryContext(ctx, `
			DELETE FROM repository_hints WHERE `+in+`
			RETURNING id, repository, delivery_id, branch, commit_sha, tag, resumed, created_at`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var h RepositoryHint
			var created int64
			if err := rows.Scan(&h.ID, &h.Repository, &h.DeliveryID, &h.Branch, &h.Commit, &h.Tag, &h.Resumed, &created); err != nil {
				return err
			}
			h.Created = fromMicros(sql.NullInt64{Int64: created, Valid: true})
			out = append(out, h)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("take hints: %w", err)
	}
	slices.SortFunc(out, func(a, b RepositoryHint) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}
