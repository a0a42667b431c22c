package store

import (
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/test/testenv"
)

func TestParseDSN(t *testing.T) {
	good := []struct{ dsn, path string }{
		{"sqlite:///var/lib/slipway/slipway.db", "/var/lib/slipway/slipway.db"},
		{"sqlite:data/slipway.db", "data/slipway.db"},
		{"SQLITE:///tmp/a%20b.db", "/tmp/a b.db"},
		{"sqlite3:///tmp/x.db", "/tmp/x.db"},
	}
	for _, c := range good {
		kind, path, err := parseDSN(c.dsn)
		if err != nil || kind != "sqlite" || path != c.path {
			t.Errorf("parseDSN(%q) = %q, %q, %v; want sqlite, %q", c.dsn, kind, path, err, c.path)
		}
	}
	bad := []string{
		"", "slipway.db", "mysql://x/y", "sqlite://host/x.db", "sqlite:", "sqlite:///var/lib/",
		"sqlite:///tmp/x.db?mode=memory", "sqlite:///tmp/x%3F.db", "sqlite::memory:",
	}
	for _, dsn := range bad {
		if _, _, err := parseDSN(dsn); err == nil {
			t.Errorf("parseDSN(%q) accepted", dsn)
		}
	}
}

// Errors opening a PostgreSQL store never repeat the password of the DSN.
func TestOpenPostgresErrorsHideThePassword(t *testing.T) {
	for _, dsn := range []string{
		"postgres://slipway:s3cret@127.0.0.1:1/slipway?connect_timeout=2", // nothing listens there
		"postgres://slipway:s3cret@127.0.0.1:1/slipway?sslmode=s3cret",    // does not parse
	} {
		s, err := Open(testCtx(t), dsn)
		if err == nil {
			_ = s.Close()
			t.Fatalf("Open(%q) succeeded", dsn)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error leaks the password: %q", err)
		}
	}
}

// Open takes postgres:// and postgresql:// DSNs, and WithPassword supplies a password the
// DSN leaves out.
func TestOpenPostgres(t *testing.T) {
	dsn, err := url.Parse(testenv.PostgresSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	password, _ := dsn.User.Password()
	dsn.User = url.User(dsn.User.Username())
	for _, scheme := range []string{"postgres", "postgresql"} {
		dsn.Scheme = scheme
		st, err := Open(testCtx(t), dsn.String(), WithPassword(password))
		if err != nil {
			t.Fatalf("Open %s://: %v", scheme, err)
		}
		mustRun(t, st, testPipeline)
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Open(testCtx(t), dsn.String(), WithPassword("wrong")); err == nil || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("Open with a wrong password: %v; want an error that does not repeat it", err)
	}
}

func TestOpenCreatesPrivateWALDatabase(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "state")
	path := filepath.Join(dir, "slipway.db")
	st, err := Open(testCtx(t), "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := st.(*DB)

	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("database file mode %v, want 0600", perm)
	}
	ctx := testCtx(t)
	var mode string
	if err := s.reader.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	for _, pool := range []struct {
		name string
		q    querier
	}{{"writer", s.writer}, {"reader", s.reader}} {
		var fk, timeout int
		if err := pool.q.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
			t.Errorf("%s: foreign_keys = %d, %v; want 1", pool.name, fk, err)
		}
		if err := pool.q.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&timeout); err != nil || timeout != int(DefaultBusyTimeout.Milliseconds()) {
			t.Errorf("%s: busy_timeout = %d, %v; want %d", pool.name, timeout, err, DefaultBusyTimeout.Milliseconds())
		}
	}
	// Every reader connection, held at once so the pool opens each, keeps a small page
	// cache; the writer SQLite's default.
	readers := s.reader.Stats().MaxOpenConnections
	var held []*sql.Conn
	for i := 0; i < readers; i++ {
		c, err := s.reader.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		var kib int
		if err := c.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&kib); err != nil || kib != -readerCacheKiB {
			t.Errorf("reader %d: cache_size = %d, %v; want %d (KiB)", i, kib, err, -readerCacheKiB)
		}
	}
	if got := s.reader.Stats().OpenConnections; got != readers {
		t.Errorf("%d reader connections open, want %d", got, readers)
	}
	for _, c := range held {
		c.Close()
	}
	var kib int
	if err := s.writer.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&kib); err != nil || kib != -2000 {
		t.Errorf("writer: cache_size = %d, %v; want SQLite's default -2000", kib, err)
	}
	// The reader pool must refuse writes: all writes go through the single writer.
	if _, err := s.reader.ExecContext(ctx, "DELETE FROM pipelines"); err == nil {
		t.Error("reader pool accepted a write")
	}
}

// Processes that open a fresh store at once (the daemon and a CLI verb started beside it)
// race to switch it to WAL and to migrate it; SQLite then answers busy at once, before
// busy_timeout applies. Open must wait its turn rather than fail.
func TestOpenConcurrentlyOnFreshFile(t *testing.T) {
	for round := range 20 {
		path := filepath.Join(t.TempDir(), fmt.Sprintf("round%d.db", round))
		errs := make(chan error, 6)
		for range cap(errs) {
			go func() {
				st, err := Open(testCtx(t), "sqlite://"+path)
				if err == nil {
					_, err = st.ListPipelines(testCtx(t))
					err = errors.Join(err, st.Close())
				}
				errs <- err
			}()
		}
		for range cap(errs) {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
}
