package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// noLimit is a LIMIT that keeps every row on both engines (SQLite's -1 is an error on
// PostgreSQL, and PostgreSQL's LIMIT ALL a syntax error on SQLite).
const noLimit = math.MaxInt64

// busyRetries is how often a write is retried at least; past it, retries stop once the
// busy timeout is spent, so a wedged other process turns into an error rather than a hang.
const busyRetries = 8

// write runs fn in a write transaction and commits it: on SQLite BEGIN IMMEDIATE on the
// single writer connection, on PostgreSQL a SERIALIZABLE transaction, so on both a write
// sees no other write interleaved. fn must touch nothing but tx: if another process kept
// the write lock past busy_timeout, or PostgreSQL aborted the transaction for a conflict,
// the whole transaction is rolled back and fn runs again.
//
// On SQLite, writes of concurrent callers are committed together (see groupCommit): each
// runs in a savepoint of its own inside one transaction, so one caller's failure rolls back
// only its own changes, and the group pays for one fsync instead of one each.
func (s *DB) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if s.group != nil {
		return s.group.write(ctx, fn)
	}
	return s.writeWith(ctx, s.dialect.writeTx(), fn)
}

// When the database server cannot be reached (PostgreSQL restarting, the network between
// cut), the write is retried with backoff for up to outageTimeout: the transaction did not
// commit, so running it again applies it once. A COMMIT whose answer was lost is not
// retried: it may have been applied, and running it again could apply it twice.
func (s *DB) writeWith(ctx context.Context, opts *sql.TxOptions, fn func(tx *sql.Tx) error) error {
	start := time.Now()
	deadline := start.Add(s.opts.busyTimeout)
	delay := time.Millisecond
	for attempt := 0; ; attempt++ {
		err := s.writeOnce(ctx, opts, fn)
		var lostCommit *commitError
		switch {
		case err == nil || ctx.Err() != nil || errors.As(err, &lostCommit):
			return err
		case s.dialect.unreachable(err):
			if time.Since(start) > s.opts.outageTimeout {
				return err
			}
			delay = max(delay, 100*time.Millisecond)
		case !s.dialect.retryable(err) || (attempt >= busyRetries && time.Now().After(deadline)):
			return err
		}
		// Jittered, so writers that collided do not collide again in step.
		wait := delay/2 + time.Duration(rand.Int64N(int64(delay)))
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
		delay = min(2*delay, maxRetryDelay)
	}
}

// maxRetryDelay bounds the wait between two attempts of a write.
const maxRetryDelay = 2 * time.Second

func (s *DB) writeOnce(ctx context.Context, opts *sql.TxOptions, fn func(tx *sql.Tx) error) error {
	tx, err := s.writer.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		if s.dialect.unreachable(err) {
			return &commitError{err}
		}
		return fmt.Errorf("commit: %w", err)
	}
	s.writes.Add(1)
	s.commits.Add(1)
	return nil
}

// commitError is a COMMIT that got no answer: whether it was applied is unknown.
type commitError struct{ err error }

func (e *commitError) Error() string {
	return "commit: the database did not answer, so whether the write was applied is unknown: " + e.err.Error()
}
func (e *commitError) Unwrap() error { return e.err }

// read runs fn in a read-only transaction, so the queries in fn see one snapshot.
func (s *DB) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.reader.BeginTx(ctx, s.dialect.readTx())
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	return fn(tx)
}

// pipelineID returns the row id of a pipeline, or ErrNotFound.
func pipelineID(ctx context.Context, q querier, ref PipelineRef) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx,
		`SELECT id FROM pipelines WHERE repository = $1 AND name = $2`,
		ref.Repository, ref.Name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("pipeline %s: %w", ref, ErrNotFound)
	}
	return id, err
}

// runID returns the row id of a run, or ErrNotFound (bare: callers say which run).
func runID(ctx context.Context, q querier, ref PipelineRef, buildID int64) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx, `
		SELECT r.id FROM runs r JOIN pipelines p ON p.id = r.pipeline_id
		WHERE p.repository = $1 AND p.name = $2 AND r.build_id = $3`,
		ref.Repository, ref.Name, buildID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	return id, err
}

// querier is what *sql.Tx and *sql.DB share, so lookups work inside and outside
// transactions.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}
