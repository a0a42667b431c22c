package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrClaimed is what a ClaimedError wraps: another live holder runs the pipeline.
var ErrClaimed = errors.New("the pipeline is running in another Slipway process")

// ClaimedError says which holder runs the pipeline, and which run it is.
type ClaimedError struct {
	Pipeline    PipelineRef
	Holder      string
	Description string // what the holder said it is, e.g. "slipway serve on host (pid 42)"
	BuildID     int64
}

func (e *ClaimedError) Error() string {
	who := e.Holder
	if e.Description != "" {
		who = e.Description
	}
	return fmt.Sprintf("pipeline %s is running BUILD_ID %d in %s", e.Pipeline, e.BuildID, who)
}

func (e *ClaimedError) Unwrap() error { return ErrClaimed }

// BeatHolder records that holder is alive until ttl from now (registering it the first
// time). A holder that stops beating loses its claims and its unfinished runs count as
// interrupted.
func (s *DB) BeatHolder(ctx context.Context, holder, description string, ttl time.Duration) error {
	if holder == "" || ttl <= 0 {
		return fmt.Errorf("holder heartbeat: holder and a positive ttl must be set")
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
			INSERT INTO holders (holder, description, expires_at) VALUES ($1, $2, $3)
			ON CONFLICT (holder) DO UPDATE SET description = excluded.description, expires_at = excluded.expires_at`,
			holder, description, toMicros(s.opts.now().Add(ttl)))
		return err
	})
	if err != nil {
		return fmt.Errorf("holder heartbeat of %s: %w", holder, err)
	}
	return nil
}

// RemoveHolder forgets a holder that stops cleanly, and its claims.
func (s *DB) RemoveHolder(ctx context.Context, holder string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM pipeline_claims WHERE holder = $1`, holder); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM holders WHERE holder = $1`, holder)
		return err
	})
	if err != nil {
		return fmt.Errorf("remove holder %s: %w", holder, err)
	}
	return nil
}

// ClaimPipeline makes holder the one process running the pipeline, for run buildID. It
// succeeds when the pipeline is unclaimed, claimed by holder already, or claimed by a
// holder whose heartbeat ran out; otherwise it returns a *ClaimedError. holder must be
// beating (BeatHolder), or its claim would count as free at once.
func (s *DB) ClaimPipeline(ctx context.Context, ref PipelineRef, holder string, buildID int64) error {
	if err := ref.validate(); err != nil {
		return fmt.Errorf("claim: %w", err)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		now := s.now()
		pid, err := ensurePipeline(ctx, tx, ref, now)
		if err != nil {
			return err
		}
		return claimIn(ctx, tx, ref, pid, holder, buildID, now)
	})
	var claimed *ClaimedError
	if errors.As(err, &claimed) {
		return claimed
	}
	if err != nil {
		return fmt.Errorf("claim %s: %w", ref, err)
	}
	return nil
}

// claimIn is ClaimPipeline's check and claim of the pipeline whose row is pid, in tx.
func claimIn(ctx context.Context, tx *sql.Tx, ref PipelineRef, pid int64, holder string, buildID, now int64) error {
	var other ClaimedError
	var expires sql.NullInt64
	err := tx.QueryRowContext(ctx, `
		SELECT c.holder, COALESCE(h.description, ''), c.build_id, h.expires_at
		FROM pipeline_claims c LEFT JOIN holders h ON h.holder = c.holder
		WHERE c.pipeline_id = $1`, pid).Scan(&other.Holder, &other.Description, &other.BuildID, &expires)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return err
	case other.Holder != holder && expires.Valid && expires.Int64 > now:
		other.Pipeline = ref
		return &other
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO pipeline_claims (pipeline_id, holder, build_id, claimed_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (pipeline_id) DO UPDATE SET holder = excluded.holder, build_id = excluded.build_id,
			claimed_at = excluded.claimed_at`, pid, holder, buildID, now)
	return err
}

// StartRun implements Store: the claim and the run's move to running are one commit, so
// a run starts with one write rather than two, and a run whose pipeline another process
// holds is left queued with nothing changed.
func (s *DB) StartRun(ctx context.Context, ref PipelineRef, buildID int64, holder string) (Run, error) {
	what := runName(ref, buildID)
	if err := ref.validate(); err != nil {
		return Run{}, fmt.Errorf("start %s: %w", what, err)
	}
	if holder == "" {
		return Run{}, fmt.Errorf("start %s: no holder to claim the pipeline for", what)
	}
	var run Run
	err := s.writeChange(ctx, Change{Kind: ChangeRun, Pipeline: ref, BuildID: buildID}, func(tx *sql.Tx) error {
		now := s.now()
		pid, err := pipelineID(ctx, tx, ref)
		if err != nil {
			return err
		}
		if err := claimIn(ctx, tx, ref, pid, holder, buildID, now); err != nil {
			return err
		}
		run, err = s.transitionRun(ctx, tx, ref, buildID, RunQueued, RunRunning, "", now)
		return err
	})
	var claimed *ClaimedError
	if errors.As(err, &claimed) {
		return Run{}, claimed
	}
	if err != nil {
		return Run{}, fmt.Errorf("start %s: %w", what, err)
	}
	return run, nil
}

// ReleasePipeline gives up holder's claim on the pipeline; a claim held by another
// holder is left alone.
func (s *DB) ReleasePipeline(ctx context.Context, ref PipelineRef, holder string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
			DELETE FROM pipeline_claims WHERE holder = $1
			AND pipeline_id = (SELECT id FROM pipelines WHERE repository = $2 AND name = $3)`,
			holder, ref.Repository, ref.Name)
		return err
	})
	if err != nil {
		return fmt.Errorf("release %s: %w", ref, err)
	}
	return nil
}
