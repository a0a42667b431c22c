package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// DB is the Store over database/sql: one SQL core for SQLite and PostgreSQL, with a
// dialect for what differs between them (locking, error codes, migration files).
//
// On SQLite it is one database file in WAL mode, and it keeps two pools. All writes go
// through `writer`, which has exactly one connection and starts every transaction with
// BEGIN IMMEDIATE: goroutines of this process queue for that connection instead of racing
// for SQLite's write lock, and a transaction takes the lock before it reads, so it can
// never fail half-way with SQLITE_BUSY when it later upgrades a read to a write. Other
// processes on the same file are waited for with busy_timeout, and a write that still
// finds the lock taken is retried (see write). Reads go through `reader`, several
// read-only connections that WAL lets run beside the writer.
//
// On PostgreSQL both are one pool (see OpenPostgres).
type DB struct {
	path    string // the SQLite file, or the PostgreSQL server and database, for errors
	writer  *sql.DB
	reader  *sql.DB
	dialect dialect
	codec   *objectCodec
	opts    options
	relay   *relay       // PostgreSQL: sends changes to, and hears them from, other processes
	group   *groupCommit // SQLite: concurrent writes share a commit; nil on PostgreSQL
	// writes counts the write transactions callers made that committed, commits the
	// transactions committed (on SQLite a group of writes commits once): WriteStats.
	writes, commits atomic.Uint64
}

// WriteStats says how many writes callers made that committed, and in how many commits
// (fewer on SQLite, whose concurrent writes share one): what a run's cost in store writes
// is read from (slipway_store_writes_total, slipway_store_commits_total).
func (s *DB) WriteStats() (writes, commits uint64) { return s.writes.Load(), s.commits.Load() }

var _ Store = (*DB)(nil)

// readerCacheKiB is the page cache of each SQLite reader connection (the writer keeps
// SQLite's default): see OpenSQLite.
const readerCacheKiB = 256

// OpenSQLite opens (creating if needed) the SQLite store at path and migrates it.
func OpenSQLite(ctx context.Context, path string, opts ...Option) (*DB, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	return openSQLiteRetrying(ctx, path, o)
}

func openSQLiteRetrying(ctx context.Context, path string, o options) (*DB, error) {
	// Another process may hold the file while it switches it to WAL or migrates it (the
	// daemon and a CLI verb starting together); the pragmas on a new connection can then
	// fail busy before busy_timeout applies. Retry the whole open within the timeout.
	deadline := time.Now().Add(o.busyTimeout)
	delay := 10 * time.Millisecond
	for {
		s, err := openSQLite(ctx, path, o)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return s, err
		}
		select {
		case <-ctx.Done():
			return nil, errors.Join(err, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
}

func openSQLite(ctx context.Context, path string, o options) (_ *DB, err error) {
	if err := createPrivate(path); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	codec, err := newObjectCodec()
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &DB{path: path, dialect: sqliteDialect{}, codec: codec, opts: o}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()

	busy := max(o.busyTimeout.Milliseconds(), 1)
	common := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)", busy)
	// synchronous=FULL: a committed BUILD_ID must survive power loss too, or it could be
	// handed out again after a reboot. Writes are few and batched, so the fsync is cheap.
	// secure_delete: pages freed by a rewrite (a payload re-encrypted, plaintext sealed)
	// are zeroed, so the old bytes do not linger in the file.
	s.writer = openSQLiteDB(path + "?" + common +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=secure_delete(1)&_txlock=immediate")
	s.writer.SetMaxOpenConns(1)
	s.writer.SetMaxIdleConns(1)
	s.writer.SetConnMaxLifetime(0)
	s.writer.SetConnMaxIdleTime(0)

	var mode string
	if err := s.writer.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		// Some network file systems cannot do WAL; the locking promises above need it.
		return nil, fmt.Errorf("open store %s: journal mode is %q, not WAL: put the database on a local file system", path, mode)
	}

	if err := s.prepare(ctx); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s.group = &groupCommit{db: s}

	// A reader's page cache is small: in WAL mode SQLite drops a connection's cache
	// whenever another one committed since its last read, which the daemon's steady
	// writes make almost every time, and the pages stay in the kernel's file cache. With
	// SQLite's default (2000 KiB each) the readers held 11 MiB outside the Go heap after
	// reading 1000 revisions; at this size 3 MiB, the reads no slower.
	s.reader = openSQLiteDB(path + "?" + common + fmt.Sprintf("&_pragma=query_only(1)&_pragma=cache_size(-%d)", readerCacheKiB))
	readers := max(4, runtime.GOMAXPROCS(0))
	s.reader.SetMaxOpenConns(readers)
	s.reader.SetMaxIdleConns(readers)
	if err := s.reader.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return s, nil
}

// prepare brings a newly opened store's schema up to date and, with a keyring, checks and
// seals its payloads (sealOnOpen).
func (s *DB) prepare(ctx context.Context) error {
	if err := s.migrate(ctx); err != nil {
		return err
	}
	if s.opts.keyring != nil {
		return s.sealOnOpen(ctx)
	}
	return nil
}

// createPrivate makes the database file, readable by its owner only, before SQLite does:
// revisions hold rendered manifests (encrypted only when the store has keys), and SQLite
// would create the file world-readable.
// The -wal and -shm files inherit its permissions.
func createPrivate(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// Ping implements Store: one read through the readers' pool.
func (s *DB) Ping(ctx context.Context) error {
	var one int
	if err := s.reader.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("store %s does not answer: %w", s.path, err)
	}
	return nil
}

// Close closes both pools; in-flight calls finish first.
func (s *DB) Close() error {
	s.relay.close()
	var errs []error
	if s.reader != nil && s.reader != s.writer {
		errs = append(errs, s.reader.Close())
	}
	if s.writer != nil {
		errs = append(errs, s.writer.Close())
	}
	s.codec.close()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	return nil
}

func (s *DB) now() int64 { return s.opts.now().UnixMicro() }

// fromMicros turns a stored time back into a time.Time; NULL becomes the zero time.
func fromMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

func toMicros(t time.Time) int64 { return t.UnixMicro() }
