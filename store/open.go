package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Open opens the store a DSN names and brings its schema up to date:
//
//	sqlite:///var/lib/slipway/slipway.db   absolute path
//	sqlite:slipway.db                      path relative to the working directory
//
//	postgres://USER@HOST:PORT/DATABASE     PostgreSQL (postgresql:// too); the password
//	                                       from WithPassword, the DSN or ~/.pgpass
func Open(ctx context.Context, dsn string, opts ...Option) (Store, error) {
	s, err := OpenDB(ctx, dsn, opts...)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// OpenDB is Open returning the store itself, for what needs more than the Store
// interface (Copy).
func OpenDB(ctx context.Context, dsn string, opts ...Option) (*DB, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	kind, path, err := parseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	switch kind {
	case "sqlite":
		return openSQLiteRetrying(ctx, path, o)
	default: // "postgres"
		return openPostgres(ctx, dsn, o)
	}
}

// parseDSN returns the backend and, for SQLite, the file path. Errors never repeat the
// DSN itself: a PostgreSQL DSN may carry a password.
func parseDSN(dsn string) (kind, path string, err error) {
	scheme, rest, ok := strings.Cut(dsn, ":")
	if !ok || scheme == "" {
		return "", "", errors.New(`store DSN must start with "sqlite:" or "postgres:" (for example sqlite:///var/lib/slipway/slipway.db)`)
	}
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		return "postgres", "", nil
	case "sqlite", "sqlite3":
	default:
		return "", "", fmt.Errorf(`store DSN scheme %q is not supported: use sqlite:///path/to/slipway.db or postgres://USER@HOST/DB`, scheme)
	}
	switch {
	case strings.HasPrefix(rest, "///"):
		path = rest[2:]
	case strings.HasPrefix(rest, "//"):
		// sqlite://host/x would silently mean a relative "host/x"; refuse the guess.
		return "", "", errors.New("sqlite DSN must be sqlite:///absolute/path or sqlite:relative/path")
	default:
		path = rest
	}
	if unescaped, err := url.PathUnescape(path); err == nil {
		path = unescaped
	}
	if strings.ContainsAny(path, "?#") {
		// The driver reads everything after '?' as its own parameters.
		return "", "", errors.New("sqlite DSN: the path must not contain '?' or '#'")
	}
	if path == "" || strings.HasSuffix(path, "/") {
		return "", "", errors.New("sqlite DSN names no file")
	}
	if strings.HasPrefix(path, ":") {
		// :memory: would give every connection its own empty database.
		return "", "", errors.New("sqlite DSN must name a file, not an in-memory database")
	}
	return "sqlite", path, nil
}
