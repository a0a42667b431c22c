package store

import (
	"context"
	"database/sql"
	"fmt"
)

// RecordPushedTags implements Store.
func (s *DB) RecordPushedTags(ctx context.Context, ref PipelineRef, buildID int64, repository string, tags []string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		pid, err := pipelineID(ctx, tx, ref)
		if err != nil {
			return err
		}
		for _, t := range tags {
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO pushed_tags (pipeline_id, repository, tag, build_id, pushed_at) VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (pipeline_id, repository, tag) DO UPDATE SET build_id = excluded.build_id, pushed_at = excluded.pushed_at`,
				pid, repository, t, buildID, s.now()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record tags %s pushed to %s: %w", runName(ref, buildID), repository, err)
	}
	return nil
}

// PushedTags implements Store.
func (s *DB) PushedTags(ctx context.Context, repository string) (map[string][]PipelineRef, error) {
	out := map[string][]PipelineRef{}
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `
			SELECT t.tag, p.repository, p.name FROM pushed_tags t JOIN pipelines p ON p.id = t.pipeline_id
			WHERE t.repository = $1 ORDER BY t.tag, p.repository, p.name`, repository)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var tag string
			var ref PipelineRef
			if err := rows.Scan(&tag, &ref.Repository, &ref.Name); err != nil {
				return err
			}
			out[tag] = append(out[tag], ref)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("tags pushed to %s: %w", repository, err)
	}
	return out, nil
}

// ForgetPushedTag implements Store.
func (s *DB) ForgetPushedTag(ctx context.Context, ref PipelineRef, repository, tag string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
			DELETE FROM pushed_tags WHERE repository = $1 AND tag = $2
				AND pipeline_id = (SELECT id FROM pipelines WHERE repository = $3 AND name = $4)`,
			repository, tag, ref.Repository, ref.Name)
		return err
	})
	if err != nil {
		return fmt.Errorf("forget tag %s:%s of %s: %w", repository, tag, ref, err)
	}
	return nil
}

// AllRevisions implements Store.
func (s *DB) AllRevisions(ctx context.Context) ([]Revision, error) {
	var revs []Revision
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		revs, err = s.queryRevisions(ctx, tx, `1 = 1 ORDER BY r.id`)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("all revisions: %w", err)
	}
	return revs, nil
}
