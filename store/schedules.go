package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// LastScheduleTick returns the last tick of a pipeline's schedule that was handled (fired,
// deliberately skipped, or the baseline recorded when the schedule was first seen). ok is
// false when none is recorded, including when the pipeline is unknown.
func (s *DB) LastScheduleTick(ctx context.Context, ref PipelineRef, schedule string) (tick time.Time, ok bool, err error) {
	if err := ref.validate(); err != nil {
		return time.Time{}, false, fmt.Errorf("last tick of schedule %q: %w", schedule, err)
	}
	var v int64
	err = s.reader.QueryRowContext(ctx, `
		SELECT f.last_tick FROM schedule_fires f JOIN pipelines p ON p.id = f.pipeline_id
		WHERE p.repository = $1 AND p.name = $2 AND f.schedule = $3`,
		ref.Repository, ref.Name, schedule).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("last tick of schedule %q of %s: %w", schedule, ref, err)
	}
	return fromMicros(sql.NullInt64{Int64: v, Valid: true}), true, nil
}

// SetScheduleTick records tick as the last handled tick of a pipeline's schedule,
// replacing the one recorded before. The pipeline is recorded first if it is new: a
// schedule's baseline is usually written before the pipeline ever ran.
func (s *DB) SetScheduleTick(ctx context.Context, ref PipelineRef, schedule string, tick time.Time) error {
	what := fmt.Sprintf("set last tick of schedule %q of %s", schedule, ref)
	if err := ref.validate(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if schedule == "" || tick.IsZero() {
		return fmt.Errorf("%s: schedule and tick must be set", what)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		pid, err := ensurePipeline(ctx, tx, ref, s.now())
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `
			INSERT INTO schedule_fires (pipeline_id, schedule, last_tick) VALUES ($1, $2, $3)
			ON CONFLICT (pipeline_id, schedule) DO UPDATE SET last_tick = excluded.last_tick`,
			pid, schedule, toMicros(tick))
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// DeleteScheduleTick forgets a pipeline's schedule, so that if it is added again it starts
// from a new baseline instead of catching up ticks from before it was removed. Forgetting
// a schedule that is not recorded is not an error.
func (s *DB) DeleteScheduleTick(ctx context.Context, ref PipelineRef, schedule string) error {
	if err := ref.validate(); err != nil {
		return fmt.Errorf("delete schedule %q: %w", schedule, err)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
			DELETE FROM schedule_fires WHERE schedule = $3
			AND pipeline_id = (SELECT id FROM pipelines WHERE repository = $1 AND name = $2)`,
			ref.Repository, ref.Name, schedule)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete schedule %q of %s: %w", schedule, ref, err)
	}
	return nil
}

// AdvanceScheduleTick records tick as the last handled tick of a pipeline's schedule only
// if the one recorded is still from (from zero: only if none is recorded). ok false means
// another process recorded a tick meanwhile: it handled the tick, and this one must not.
// Replicas that hand a schedule over claim each tick this way before starting its run, so
// a tick is never run twice even if two of them race for it.
func (s *DB) AdvanceScheduleTick(ctx context.Context, ref PipelineRef, schedule string, from, tick time.Time) (ok bool, err error) {
	t := TickClaim{Pipeline: ref, Schedule: schedule, From: from, Tick: tick}
	what := fmt.Sprintf("advance last tick of schedule %q of %s", schedule, ref)
	if err := t.check(); err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		ok, err = claimTick(ctx, tx, t, s.now())
		return err
	})
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	return ok, nil
}
