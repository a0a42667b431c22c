package store

import (
	"context"
	"database/sql"
	"errors"

	"modernc.org/sqlite"
)

// dialect is what differs between the SQL engines DB runs on. The queries themselves are
// shared: both engines take $N placeholders, RETURNING and ON CONFLICT.
type dialect interface {
	// name is the engine, for errors and tests.
	name() string
	// retryable reports an error after which the whole write transaction may run again:
	// SQLite's lock was busy, or PostgreSQL aborted it for a serialization conflict.
	retryable(err error) bool
	// unreachable reports an error that says the database server could not be reached
	// or went away: the transaction did not commit, and may run again once it is back.
	unreachable(err error) bool
	// uniqueViolation reports a UNIQUE or PRIMARY KEY constraint failure.
	uniqueViolation(err error) bool
	// writeTx and readTx are the options of write and read transactions.
	writeTx() *sql.TxOptions
	readTx() *sql.TxOptions
	// migrationDir is the folder of this engine's files in migrationFiles.
	migrationDir() string
	// migrationTx is the options of a migration's transaction; lockMigrations, its first
	// statement, makes processes migrating one database at once take turns.
	migrationTx() *sql.TxOptions
	lockMigrations(ctx context.Context, tx *sql.Tx) error
	// transactionalDDL reports whether schema changes roll back with their transaction,
	// so that all pending migrations can run in one.
	transactionalDDL() bool
	// tables lists the store's tables; afterCopy runs after Copy wrote the destination
	// (row ids were copied, so the engine's own counters must be moved past them).
	tables(ctx context.Context, tx *sql.Tx) ([]string, error)
	afterCopy(ctx context.Context, tx *sql.Tx, tables []string) error
	// afterRewrite runs after payloads were rewritten in place (re-encrypted), to drop
	// the old bytes the engine may still hold.
	afterRewrite(ctx context.Context, db *sql.DB) error
}

// SQLite primary result codes the retry loop cares about.
const (
	sqliteBusy   = 5 // another connection holds the lock
	sqliteLocked = 6 // a conflict inside this connection's shared cache
)

type sqliteDialect struct{}

func (sqliteDialect) name() string { return "sqlite" }

func (sqliteDialect) retryable(err error) bool { return isBusy(err) }

// A local file has no server to lose.
func (sqliteDialect) unreachable(error) bool { return false }

func (sqliteDialect) uniqueViolation(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	const constraintUnique, constraintPrimaryKey = 2067, 1555
	return se.Code() == constraintUnique || se.Code() == constraintPrimaryKey
}

// The writer's connection starts every transaction with BEGIN IMMEDIATE (_txlock), which
// already serialises writers.
func (sqliteDialect) writeTx() *sql.TxOptions     { return nil }
func (sqliteDialect) readTx() *sql.TxOptions      { return &sql.TxOptions{ReadOnly: true} }
func (sqliteDialect) migrationDir() string        { return "migrations/sqlite" }
func (sqliteDialect) migrationTx() *sql.TxOptions { return nil }

func (sqliteDialect) lockMigrations(context.Context, *sql.Tx) error { return nil }

// SQLite's DDL is transactional too, but the migrations that rebuild a table must switch
// foreign keys off outside any transaction (foreignKeysOff), so each runs on its own.
func (sqliteDialect) transactionalDDL() bool { return false }

// The replaced payloads' pages were zeroed as they were freed (secure_delete), but the WAL
// still holds earlier images of them until it is checkpointed and cut.
func (sqliteDialect) afterRewrite(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	return err
}

func (sqliteDialect) tables(ctx context.Context, tx *sql.Tx) ([]string, error) {
	return queryStrings(ctx, tx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`)
}

// An INTEGER PRIMARY KEY hands out MAX(id)+1: nothing to move.
func (sqliteDialect) afterCopy(context.Context, *sql.Tx, []string) error { return nil }

// queryStrings returns the one text column of query's rows.
func queryStrings(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func isBusy(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	code := se.Code() & 0xff // extended codes keep the primary code in the low byte
	return code == sqliteBusy || code == sqliteLocked
}
