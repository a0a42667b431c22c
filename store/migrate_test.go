package store

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"
)

func countMigrations(t *testing.T, s *SQLite) int {
	t.Helper()
	var n int
	if err := s.reader.QueryRowContext(testCtx(t), `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMigrationsIdempotentOnReopen(t *testing.T) {
	known, err := loadMigrations(sqliteMigrationFiles, "migrations/sqlite")
	if err != nil || len(known) == 0 {
		t.Fatalf("embedded migrations: %v (%d)", err, len(known))
	}
	s, path := openTest(t)
	mustRun(t, s, testPipeline)
	if n := countMigrations(t, s); n != len(known) {
		t.Fatalf("after first open: %d migrations recorded, want %d", n, len(known))
	}
	var appliedAt int64
	if err := s.reader.QueryRowContext(testCtx(t), `SELECT applied_at FROM schema_migrations WHERE version = 1`).Scan(&appliedAt); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	for i := 0; i < 3; i++ {
		s2 := openAt(t, path)
		if n := countMigrations(t, s2); n != len(known) {
			t.Fatalf("reopen %d: %d migrations recorded, want %d", i, n, len(known))
		}
		var again int64
		if err := s2.reader.QueryRowContext(testCtx(t), `SELECT applied_at FROM schema_migrations WHERE version = 1`).Scan(&again); err != nil {
			t.Fatal(err)
		}
		if again != appliedAt {
			t.Fatalf("migration 1 re-applied on reopen (applied_at %d, was %d)", again, appliedAt)
		}
		if _, err := s2.GetRun(testCtx(t), testPipeline, 1); err != nil {
			t.Fatalf("reopen %d lost data: %v", i, err)
		}
		_ = s2.Close()
	}
}

func TestEditedMigrationRefused(t *testing.T) {
	s, path := openTest(t)
	if _, err := s.writer.ExecContext(testCtx(t), `UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1`); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	_, err := OpenSQLite(context.Background(), path)
	if err == nil || !strings.Contains(err.Error(), "was edited") {
		t.Fatalf("open with changed migration checksum: %v, want an error saying it was edited", err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	s, path := openTest(t)
	if _, err := s.writer.ExecContext(testCtx(t),
		`INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (9999, '9999_future.sql', 'x', 0)`); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	_, err := OpenSQLite(context.Background(), path)
	if err == nil || !strings.Contains(err.Error(), "newer than this slipway") {
		t.Fatalf("open of a newer schema: %v, want a refusal", err)
	}
}

func TestLoadMigrationsRejectsBadFiles(t *testing.T) {
	cases := map[string]fstest.MapFS{
		"no number":      {"m/init.sql": {Data: []byte("SELECT 1")}},
		"zero":           {"m/0000_init.sql": {Data: []byte("SELECT 1")}},
		"duplicate":      {"m/0001_a.sql": {Data: []byte("SELECT 1")}, "m/1_b.sql": {Data: []byte("SELECT 2")}},
		"missing folder": {},
	}
	for name, fsys := range cases {
		if _, err := loadMigrations(fsys, "m"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	ms, err := loadMigrations(fstest.MapFS{
		"m/0010_b.sql":  {Data: []byte("SELECT 2")},
		"m/0002_a.sql":  {Data: []byte("SELECT 1")},
		"m/README.md":   {Data: []byte("not a migration")},
		"m/0003_c.sql~": {Data: []byte("editor backup")},
	}, "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].version != 2 || ms[1].version != 10 {
		t.Fatalf("loaded %+v, want versions 2 and 10 in order", ms)
	}
}

// A database written before schema version 2 gains the inventory's digest columns on
// open, its old rows reading as "" (unknown: those objects are applied again once).
func TestMigrationAddsInventoryDigests(t *testing.T) {
	s, path := openTest(t)
	ctx := testCtx(t)
	mustRun(t, s, testPipeline)
	inv := []InventoryEntry{{Version: "v1", Kind: "ConfigMap", Namespace: "game", Name: "settings", Digest: "sha256:aa", Fingerprint: "uid/sha256:bb"}}
	if _, err := s.SaveRevision(ctx, NewRevision{Pipeline: testPipeline, BuildID: 1, Task: "web", Cluster: "local",
		Kind: DeployYAML, Objects: []byte("a: 1"), Inventory: inv}); err != nil {
		t.Fatal(err)
	}
	// Turn the file back into a version 1 database holding that revision.
	for _, q := range []string{
		`ALTER TABLE revision_objects DROP COLUMN desired_digest`,
		`ALTER TABLE revision_objects DROP COLUMN applied_fingerprint`,
		`DELETE FROM schema_migrations WHERE version = 2`,
	} {
		if _, err := s.writer.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	_ = s.Close()

	s2 := openAt(t, path)
	rev, err := s2.GetRevision(ctx, testPipeline, 1, "web")
	if err != nil {
		t.Fatalf("read a version 1 revision after the upgrade: %v", err)
	}
	want := inv[0]
	want.Digest, want.Fingerprint = "", ""
	if len(rev.Inventory) != 1 || rev.Inventory[0] != want {
		t.Fatalf("upgraded inventory %+v, want %+v", rev.Inventory, want)
	}
	mustRun(t, s2, testPipeline)
	if _, err := s2.SaveRevision(ctx, NewRevision{Pipeline: testPipeline, BuildID: 2, Task: "web", Cluster: "local",
		Kind: DeployYAML, Objects: []byte("a: 1"), Inventory: inv}); err != nil {
		t.Fatal(err)
	}
	if rev, err := s2.GetRevision(ctx, testPipeline, 2, "web"); err != nil || len(rev.Inventory) != 1 || rev.Inventory[0] != inv[0] {
		t.Fatalf("inventory saved after the upgrade: %+v, %v", rev.Inventory, err)
	}
}
