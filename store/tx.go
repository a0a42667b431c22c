package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"modernc.org/sqlite"
)

// SQLite primary result codes the retry loop cares about.
const (
	sqliteBusy   = 5 // another connection holds the lock
	sqliteLocked = 6 // a conflict inside this connection's shared cache
)

// busyRetries bounds how often a write is retried after busy_timeout already waited, so
// a wedged other process turns into an error rather than a hang.
const busyRetries = 8

// write runs fn in a write transaction (BEGIN IMMEDIATE on the single writer
// connection) and commits it. fn must touch nothing but tx: if another process kept the
// write lock past busy_timeout, the whole transaction is rolled back and fn runs again.
func (s *SQLite) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	delay := 5 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := s.writeOnce(ctx, fn)
		if err == nil || !isBusy(err) || attempt == busyRetries {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
}

func (s *SQLite) writeOnce(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// read runs fn in a read-only transaction, so the queries in fn see one snapshot.
func (s *SQLite) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	return fn(tx)
}

func isBusy(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	code := se.Code() & 0xff // extended codes keep the primary code in the low byte
	return code == sqliteBusy || code == sqliteLocked
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

// isUniqueViolation reports a UNIQUE or PRIMARY KEY constraint failure.
func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	const constraintUnique, constraintPrimaryKey = 2067, 1555
	return se.Code() == constraintUnique || se.Code() == constraintPrimaryKey
}
