package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// TagState is what a watcher did about a tag.
type TagState string

// The tag states.
const (
	// TagBaseline: the tag was there when the repository was first watched; never run.
	TagBaseline TagState = "baseline"
	// TagHandled: the tag was seen new and its matching pipelines (if any) started.
	TagHandled TagState = "handled"
	// TagMoved: the tag was moved to another commit after it was handled; recorded, not run.
	TagMoved TagState = "moved"
	// TagDeleted: the tag was deleted after it was handled; recorded.
	TagDeleted TagState = "deleted"
)

// TagRef is a tag of a repository as its watcher last dealt with it.
type TagRef struct {
	Repository string
	Tag        string
	Commit     string // "" once deleted
	State      TagState
	UpdatedAt  time.Time
}

// TagsScanned reports whether the repository's tags have been looked at before.
func (s *DB) TagsScanned(ctx context.Context, repository string) (bool, error) {
	var n int
	err := s.read(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM tag_scans WHERE repository = $1`, repository).Scan(&n)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("tag scan of %s: %w", repository, err)
	}
	return n == 1, nil
}

// RecordTagBaseline records the tags a repository has when it is first watched (none run)
// and marks its tags as looked at, in one transaction.
func (s *DB) RecordTagBaseline(ctx context.Context, repository string, tags map[string]string) error {
	if repository == "" {
		return fmt.Errorf("record tag baseline: repository must be set")
	}
	now := s.now()
	err := s.write(ctx, func(tx *sql.Tx) error {
		for tag, commit := range tags {
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO tag_refs (repository, tag, commit_sha, state, updated_at) VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (repository, tag) DO NOTHING`, repository, tag, commit, string(TagBaseline), now); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO tag_scans (repository, first_at) VALUES ($1, $2)
			ON CONFLICT (repository) DO NOTHING`, repository, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("record the tags of %s: %w", repository, err)
	}
	return nil
}

// ListTagRefs returns the tags recorded for a repository, by name.
func (s *DB) ListTagRefs(ctx context.Context, repository string) (map[string]TagRef, error) {
	out := map[string]TagRef{}
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT tag, commit_sha, state, updated_at FROM tag_refs WHERE repository = $1`, repository)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			t := TagRef{Repository: repository}
			var at int64
			if err := rows.Scan(&t.Tag, &t.Commit, &t.State, &at); err != nil {
				return err
			}
			t.UpdatedAt = fromMicros(sql.NullInt64{Int64: at, Valid: true})
			out[t.Tag] = t
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("tags of %s: %w", repository, err)
	}
	return out, nil
}

// SetTagRef records what a watcher did about a tag.
func (s *DB) SetTagRef(ctx context.Context, t TagRef) error {
	switch {
	case t.Repository == "" || t.Tag == "":
		return fmt.Errorf("set tag: repository and tag must be set")
	case t.State != TagBaseline && t.State != TagHandled && t.State != TagMoved && t.State != TagDeleted:
		return fmt.Errorf("set tag %s of %s: unknown state %q", t.Tag, t.Repository, t.State)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
			INSERT INTO tag_refs (repository, tag, commit_sha, state, updated_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (repository, tag) DO UPDATE SET commit_sha = excluded.commit_sha, state = excluded.state,
				updated_at = excluded.updated_at`,
			t.Repository, t.Tag, t.Commit, string(t.State), s.now())
		return err
	})
	if err != nil {
		return fmt.Errorf("set tag %s of %s: %w", t.Tag, t.Repository, err)
	}
	return nil
}

// RunsOfTag returns the runs of a repository's pipelines made for a tag, newest first.
func (s *DB) RunsOfTag(ctx context.Context, repository, tag string) ([]Run, error) {
	rows, err := s.reader.QueryContext(ctx, `
		SELECT `+runColumns+`
		FROM runs r JOIN pipelines p ON p.id = r.pipeline_id
		WHERE p.repository = $1 AND r.tag = $2
		ORDER BY r.created_at DESC, r.build_id DESC`, repository, tag)
	if err != nil {
		return nil, fmt.Errorf("runs of tag %s of %s: %w", tag, repository, err)
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("runs of tag %s of %s: %w", tag, repository, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
