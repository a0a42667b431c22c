package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// PostgreSQL error codes the store acts on.
const (
	pgSerializationFailure = "40001"
	pgDeadlockDetected     = "40P01"
	pgUniqueViolation      = "23505"
)

// migrationLockKey is the first half of the advisory lock key that serialises migrations;
// the second is a hash of the schema, so stores in different schemas migrate side by side.
const migrationLockKey = 0x51195

// postgresConns bounds the pool: enough for the dispatcher's runs and the API's readers,
// few enough that several replicas stay under PostgreSQL's default max_connections.
const postgresConns = 10

// OpenPostgres opens the PostgreSQL store at dsn (postgres://USER@HOST:PORT/DB?...) and
// migrates it. Several processes (replicas) may share one database: writes are
// SERIALIZABLE transactions, retried when PostgreSQL aborts one for a conflict, so they
// keep the guarantees SQLite's single writer gives (a BUILD_ID is never handed out twice
// and never skipped).
func OpenPostgres(ctx context.Context, dsn string, opts ...Option) (*DB, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	return openPostgres(ctx, dsn, o)
}

func openPostgres(ctx context.Context, dsn string, o options) (_ *DB, err error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's message may quote the DSN, password included: say only what is wrong.
		return nil, errors.New("open store: the PostgreSQL DSN does not parse; the form is postgres://USER@HOST:PORT/DATABASE")
	}
	if o.password != "" {
		cfg.Password = o.password
	}
	where := fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
	codec, err := newObjectCodec()
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", where, err)
	}
	s := &DB{path: where, dialect: postgresDialect{}, codec: codec, opts: o}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()
	s.writer = stdlib.OpenDB(*cfg)
	s.writer.SetMaxOpenConns(postgresConns)
	s.writer.SetMaxIdleConns(postgresConns)
	s.reader = s.writer
	if err := s.writer.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("open store %s: %w", where, err)
	}
	if err := s.prepare(ctx); err != nil {
		return nil, fmt.Errorf("open store %s: %w", where, err)
	}
	if err := s.startRelay(ctx, cfg); err != nil {
		return nil, fmt.Errorf("open store %s: %w", where, err)
	}
	return s, nil
}

type postgresDialect struct{}

func (postgresDialect) name() string { return "postgres" }

func (postgresDialect) retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == pgSerializationFailure || pe.Code == pgDeadlockDetected)
}

// The server refused or dropped the connection, or says it is shutting down or not yet
// up (class 57P).
func (postgresDialect) unreachable(err error) bool {
	var ce *pgconn.ConnectError
	var ne net.Error
	var pe *pgconn.PgError
	return errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, io.ErrUnexpectedEOF) || pgconn.SafeToRetry(err) ||
		(errors.As(err, &pe) && strings.HasPrefix(pe.Code, "57P"))
}

func (postgresDialect) uniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == pgUniqueViolation
}

func (postgresDialect) writeTx() *sql.TxOptions {
	return &sql.TxOptions{Isolation: sql.LevelSerializable}
}

// Reads see one snapshot, like SQLite's read transactions.
func (postgresDialect) readTx() *sql.TxOptions {
	return &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
}

func (postgresDialect) migrationDir() string { return "migrations/postgres" }

// A migration runs READ COMMITTED behind the advisory lock: once the lock is taken, the
// next statement sees what the process that held it committed, so the second process
// finds the migration recorded (a SERIALIZABLE snapshot taken before the wait would not).
func (postgresDialect) migrationTx() *sql.TxOptions {
	return &sql.TxOptions{Isolation: sql.LevelReadCommitted}
}

func (postgresDialect) lockMigrations(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, migrationLockKey)
	return err
}

func (postgresDialect) transactionalDDL() bool { return true }

func (postgresDialect) tables(ctx context.Context, tx *sql.Tx) ([]string, error) {
	return queryStrings(ctx, tx, `SELECT table_name::text FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`)
}

// The copied rows kept their ids; each identity column's sequence must continue past them.
func (postgresDialect) afterCopy(ctx context.Context, tx *sql.Tx, tables []string) error {
	for _, t := range tables {
		// Asked only of tables with an id column: for others the function fails, and the
		// failure would abort the transaction.
		var seq sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT pg_get_serial_sequence(quote_ident(table_name), 'id')
			FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = $1 AND column_name = 'id'`, t).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && !seq.Valid) {
			continue
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `SELECT setval($1, COALESCE((SELECT MAX(id) FROM `+t+`), 0) + 1, false)`, seq.String); err != nil {
			return fmt.Errorf("move the id sequence of %s: %w", t, err)
		}
	}
	return nil
}

// The rewritten rows' old versions stay in the table's pages until VACUUM reclaims them;
// do it now rather than when autovacuum gets round to it.
func (postgresDialect) afterRewrite(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, `VACUUM revisions`)
	return err
}
