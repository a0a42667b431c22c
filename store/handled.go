package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrHandledElsewhere is what CreateRuns returns (wrapped) when what it was to mark as
// handled was marked by another process first: that process created the runs, so this
// one created none.
var ErrHandledElsewhere = errors.New("already handled by another process")

// Handled is what a batch of runs (CreateRuns) marks as dealt with: the cron tick, pushed
// branch head or new tag that the runs are for. Recording it in the transaction that
// records the runs is what makes a crash harmless: afterwards both are recorded or neither,
// so whoever looks next (another replica, or this one restarted) starts the runs exactly
// when they are not on record. Each part is a compare-and-set, so two processes racing for
// one tick, head or tag create the runs once. The zero Handled marks nothing.
type Handled struct {
	Tick *TickClaim
	Head *HeadClaim
	// Tag, when set, is recorded (its State TagHandled) only if the tag is not recorded yet.
	Tag *TagRef
}

// TickClaim moves a schedule's last handled tick from From (zero: none recorded) to Tick,
// as AdvanceScheduleTick does.
type TickClaim struct {
	Pipeline PipelineRef
	Schedule string
	From     time.Time
	Tick     time.Time
}

// HeadClaim moves the handled head of a repository's branch from From ("": none recorded)
// to To.
type HeadClaim struct {
	Repository string
	Branch     string
	From       string
	To         string
}

func (t TickClaim) check() error {
	if err := t.Pipeline.validate(); err != nil {
		return err
	}
	if t.Schedule == "" || t.Tick.IsZero() {
		return errors.New("a tick claim needs its schedule and tick")
	}
	return nil
}

// claimTick moves the schedule's last tick as t says, in tx; false when it was not From
// (another process claimed a tick since).
func claimTick(ctx context.Context, tx *sql.Tx, t TickClaim, now int64) (bool, error) {
	pid, err := ensurePipeline(ctx, tx, t.Pipeline, now)
	if err != nil {
		return false, err
	}
	var res sql.Result
	if t.From.IsZero() {
		res, err = tx.ExecContext(ctx, `
			INSERT INTO schedule_fires (pipeline_id, schedule, last_tick) VALUES ($1, $2, $3)
			ON CONFLICT (pipeline_id, schedule) DO NOTHING`, pid, t.Schedule, toMicros(t.Tick))
	} else {
		res, err = tx.ExecContext(ctx, `
			UPDATE schedule_fires SET last_tick = $3 WHERE pipeline_id = $1 AND schedule = $2 AND last_tick = $4`,
			pid, t.Schedule, toMicros(t.Tick), toMicros(t.From))
	}
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (h Handled) String() string {
	var parts []string
	if t := h.Tick; t != nil {
		parts = append(parts, fmt.Sprintf("tick %s of schedule %q of %s", t.Tick.Format(time.RFC3339), t.Schedule, t.Pipeline))
	}
	if hd := h.Head; hd != nil {
		parts = append(parts, fmt.Sprintf("head %s of %s %s", hd.To, hd.Repository, hd.Branch))
	}
	if t := h.Tag; t != nil {
		parts = append(parts, fmt.Sprintf("tag %s of %s", t.Tag, t.Repository))
	}
	return strings.Join(parts, ", ")
}

func (h Handled) check() error {
	if t := h.Tick; t != nil {
		if err := t.check(); err != nil {
			return err
		}
	}
	if hd := h.Head; hd != nil && (hd.Repository == "" || hd.Branch == "" || hd.To == "") {
		return errors.New("a head claim needs its repository, branch and head")
	}
	if t := h.Tag; t != nil && (t.Repository == "" || t.Tag == "" || t.Commit == "") {
		return errors.New("a tag needs its repository, name and commit")
	}
	return nil
}

// CreateRuns records runs as CreateRun does, together with h, in one write transaction:
// all of them and h, or nothing. It returns the runs in the order given. When a part of h
// was recorded by another process first, it records nothing and returns an error wrapping
// ErrHandledElsewhere; no BUILD_ID is used up then, since the counter moves in the same
// rolled-back transaction.
func (s *DB) CreateRuns(ctx context.Context, nrs []NewRun, h Handled) ([]Run, error) {
	for _, nr := range nrs {
		if err := checkNewRun(nr); err != nil {
			return nil, err
		}
	}
	if err := h.check(); err != nil {
		return nil, fmt.Errorf("record %s: %w", h, err)
	}
	var runs []Run
	err := s.write(ctx, func(tx *sql.Tx) error {
		runs = runs[:0]
		now := s.now()
		// The claims first: a lost one ends the transaction before any BUILD_ID moves.
		if err := s.markHandled(ctx, tx, h, now); err != nil {
			return err
		}
		for _, nr := range nrs {
			run, err := s.createRun(ctx, tx, nr, now)
			if err != nil {
				return fmt.Errorf("allocate BUILD_ID for %s: %w", nr.Pipeline, err)
			}
			runs = append(runs, run)
		}
		return nil
	})
	if err != nil {
		if len(nrs) == 1 && h == (Handled{}) {
			return nil, err
		}
		return nil, fmt.Errorf("record %d run(s) with %s: %w", len(nrs), h, err)
	}
	for i, r := range runs {
		s.opts.changed(Change{Kind: ChangeRun, Pipeline: r.Pipeline, BuildID: r.BuildID})
		if nrs[i].Audit != nil {
			s.opts.changed(Change{Kind: ChangeAudit, Pipeline: r.Pipeline, BuildID: r.BuildID})
		}
	}
	return runs, nil
}

// markHandled records h's parts in tx, each only if it is still as the caller last saw it.
func (s *DB) markHandled(ctx context.Context, tx *sql.Tx, h Handled, now int64) error {
	lost := func(res sql.Result, what string) error {
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("%s: %w", what, ErrHandledElsewhere)
		}
		return nil
	}
	if t := h.Tick; t != nil {
		won, err := claimTick(ctx, tx, *t, now)
		if err != nil {
			return err
		}
		if !won {
			return fmt.Errorf("tick %s: %w", t.Tick.Format(time.RFC3339), ErrHandledElsewhere)
		}
	}
	if hd := h.Head; hd != nil {
		var res sql.Result
		var err error
		if hd.From == "" {
			res, err = tx.ExecContext(ctx, `
				INSERT INTO branch_heads (repository, branch, head, handled_at) VALUES ($1, $2, $3, $4)
				ON CONFLICT (repository, branch) DO NOTHING`, hd.Repository, hd.Branch, hd.To, now)
		} else {
			res, err = tx.ExecContext(ctx, `
				UPDATE branch_heads SET head = $3, handled_at = $4 WHERE repository = $1 AND branch = $2 AND head = $5`,
				hd.Repository, hd.Branch, hd.To, now, hd.From)
		}
		if err != nil {
			return err
		}
		if err := lost(res, "head "+hd.To); err != nil {
			return err
		}
	}
	if t := h.Tag; t != nil {
		res, err := tx.ExecContext(ctx, `
			INSERT INTO tag_refs (repository, tag, commit_sha, state, updated_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (repository, tag) DO NOTHING`, t.Repository, t.Tag, t.Commit, string(TagHandled), now)
		if err != nil {
			return err
		}
		if err := lost(res, "tag "+t.Tag); err != nil {
			return err
		}
	}
	return nil
}
