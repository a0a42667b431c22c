package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// EnsurePipeline implements Store.
func (s *DB) EnsurePipeline(ctx context.Context, ref PipelineRef) (Pipeline, error) {
	if err := ref.validate(); err != nil {
		return Pipeline{}, fmt.Errorf("ensure pipeline: %w", err)
	}
	var p Pipeline
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := ensurePipeline(ctx, tx, ref, s.now()); err != nil {
			return err
		}
		var err error
		p, err = getPipeline(ctx, tx, ref)
		return err
	})
	if err != nil {
		return Pipeline{}, fmt.Errorf("ensure pipeline %s: %w", ref, err)
	}
	return p, nil
}

// ensurePipeline inserts the pipeline unless it exists and returns its row id.
func ensurePipeline(ctx context.Context, tx *sql.Tx, ref PipelineRef, now int64) (int64, error) {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO pipelines (repository, name, created_at) VALUES ($1, $2, $3)
		ON CONFLICT (repository, name) DO NOTHING`,
		ref.Repository, ref.Name, now)
	if err != nil {
		return 0, err
	}
	return pipelineID(ctx, tx, ref)
}

// GetPipeline implements Store.
func (s *DB) GetPipeline(ctx context.Context, ref PipelineRef) (Pipeline, error) {
	p, err := getPipeline(ctx, s.reader, ref)
	if err != nil {
		return Pipeline{}, fmt.Errorf("get pipeline %s: %w", ref, err)
	}
	return p, nil
}

func getPipeline(ctx context.Context, q querier, ref PipelineRef) (Pipeline, error) {
	p := Pipeline{Ref: ref}
	var created int64
	var suspended sql.NullInt64
	err := q.QueryRowContext(ctx,
		`SELECT last_build_id, created_at, suspended_at, suspended_by, suspended_reason FROM pipelines WHERE repository = $1 AND name = $2`,
		ref.Repository, ref.Name).Scan(&p.LastBuildID, &created, &suspended, &p.SuspendedBy, &p.SuspendReason)
	if errors.Is(err, sql.ErrNoRows) {
		return Pipeline{}, ErrNotFound
	}
	if err != nil {
		return Pipeline{}, err
	}
	p.CreatedAt = fromMicros(sql.NullInt64{Int64: created, Valid: true})
	p.Suspended, p.SuspendedAt = suspended.Valid, fromMicros(suspended)
	return p, nil
}

// ListPipelines implements Store.
func (s *DB) ListPipelines(ctx context.Context) ([]Pipeline, error) {
	rows, err := s.reader.QueryContext(ctx,
		`SELECT repository, name, last_build_id, created_at, suspended_at, suspended_by, suspended_reason FROM pipelines ORDER BY repository, name`)
	if err != nil {
		return nil, fmt.Errorf("list pipelines: %w", err)
	}
	defer rows.Close()
	var ps []Pipeline
	for rows.Next() {
		var p Pipeline
		var created int64
		var suspended sql.NullInt64
		if err := rows.Scan(&p.Ref.Repository, &p.Ref.Name, &p.LastBuildID, &created, &suspended, &p.SuspendedBy, &p.SuspendReason); err != nil {
			return nil, fmt.Errorf("list pipelines: %w", err)
		}
		p.CreatedAt = fromMicros(sql.NullInt64{Int64: created, Valid: true})
		p.Suspended, p.SuspendedAt = suspended.Valid, fromMicros(suspended)
		ps = append(ps, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list pipelines: %w", err)
	}
	return ps, nil
}

// SetSuspended implements Store: suspend (with who and why) or resume the pipeline, which
// is created if it has no row yet. It returns the pipeline as it now stands, and whether it
// was suspended before.
func (s *DB) SetSuspended(ctx context.Context, ref PipelineRef, suspend bool, actor, reason string) (Pipeline, bool, error) {
	if err := ref.validate(); err != nil {
		return Pipeline{}, false, fmt.Errorf("suspend pipeline: %w", err)
	}
	var p Pipeline
	var was bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		now := s.now()
		if _, err := ensurePipeline(ctx, tx, ref, now); err != nil {
			return err
		}
		before, err := getPipeline(ctx, tx, ref)
		if err != nil {
			return err
		}
		was = before.Suspended
		at := sql.NullInt64{Int64: now, Valid: suspend}
		if !suspend {
			actor, reason = "", ""
		}
		if _, err := tx.ExecContext(ctx, `
			UPDATE pipelines SET suspended_at = $1, suspended_by = $2, suspended_reason = $3
			WHERE repository = $4 AND name = $5`, at, actor, reason, ref.Repository, ref.Name); err != nil {
			return err
		}
		p, err = getPipeline(ctx, tx, ref)
		return err
	})
	if err != nil {
		return Pipeline{}, false, fmt.Errorf("suspend pipeline %s: %w", ref, err)
	}
	return p, was, nil
}
