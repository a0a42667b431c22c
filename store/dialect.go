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

// The replaced payloads' pages were zeroed as they were freed (secure_delete), but the WAL
// still holds earlier images of them until it is checkpointed and cut.
func (sqliteDialect) afterRewrite(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	return err
}

func isBusy(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	code := se.Code() & 0xff // extended codes keep the primary code in the low byte
	return code == sqliteBusy || code == sqliteLocked
}
