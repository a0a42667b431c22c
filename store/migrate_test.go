package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func countMigrations(t *testing.T, s *DB) int {
	t.Helper()
	var n int
	if err := s.reader.QueryRowContext(testCtx(t), `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMigrationsIdempotentOnReopen(t *testing.T) {
	s, path := openTest(t)
	known, err := loadMigrations(migrationFiles, s.dialect.migrationDir())
	if err != nil || len(known) == 0 {
		t.Fatalf("embedded migrations: %v (%d)", err, len(known))
	}
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
	_, err := openLoc(context.Background(), path)
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
	_, err := openLoc(context.Background(), path)
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

// Version 9 rebuilds the runs table; every run and what hangs off it (tasks, logs,
// revisions) survives, and the new statuses are accepted.
func TestMigrationRebuildsRunsKeepingEverything(t *testing.T) {
	// SQLite's own table rebuild, in both passes (PostgreSQL's version 9 swaps a CHECK
	// constraint instead).
	path := filepath.Join(t.TempDir(), "slipway.db")
	s := openAt(t, path)
	ctx := testCtx(t)
	run := mustRun(t, s, testPipeline)
	if _, err := s.AddTask(ctx, testPipeline, run.BuildID, NewTask{Stage: "deploy", Name: "web", Type: "deploy-yaml"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendLogs(ctx, testPipeline, run.BuildID, "web", []LogLine{{Text: "hello"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveRevision(ctx, NewRevision{Pipeline: testPipeline, BuildID: run.BuildID, Task: "web", Cluster: "local",
		Kind: DeployYAML, Objects: []byte("a: 1")}); err != nil {
		t.Fatal(err)
	}
	rerun, err := s.CreateRun(ctx, NewRun{Pipeline: testPipeline, Trigger: TriggerManual, ParentBuildID: run.BuildID})
	if err != nil {
		t.Fatal(err)
	}
	// Back to version 8's runs table, whose CHECK knows no approval statuses.
	for _, q := range []string{
		`PRAGMA foreign_keys = OFF`,
		`CREATE TABLE runs_old AS SELECT * FROM runs`,
		`DROP TABLE runs`,
		`CREATE TABLE runs (id INTEGER PRIMARY KEY, pipeline_id INTEGER NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
			build_id INTEGER NOT NULL, commit_sha TEXT NOT NULL DEFAULT '', branch TEXT NOT NULL DEFAULT '',
			tag TEXT NOT NULL DEFAULT '', trigger_kind TEXT NOT NULL, parent_build_id INTEGER,
			status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'superseded', 'timed_out')),
			reason TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER,
			holder TEXT NOT NULL DEFAULT '', UNIQUE (pipeline_id, build_id),
			FOREIGN KEY (pipeline_id, parent_build_id) REFERENCES runs (pipeline_id, build_id))`,
		`INSERT INTO runs SELECT * FROM runs_old`,
		`DROP TABLE runs_old`,
		`PRAGMA foreign_keys = ON`,
		`DELETE FROM schema_migrations WHERE version = 9`,
	} {
		if _, err := s.writer.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	_ = s.Close()

	s2 := openAt(t, path)
	if tasks, err := s2.ListTasks(ctx, testPipeline, run.BuildID); err != nil || len(tasks) != 1 {
		t.Fatalf("tasks after the rebuild: %v %v", tasks, err)
	}
	if lines, err := s2.ReadLogs(ctx, testPipeline, run.BuildID, LogQuery{}); err != nil || len(lines) != 1 {
		t.Fatalf("logs after the rebuild: %v %v", lines, err)
	}
	if _, err := s2.GetRevision(ctx, testPipeline, run.BuildID, "web"); err != nil {
		t.Fatalf("revision after the rebuild: %v", err)
	}
	if r, err := s2.GetRun(ctx, testPipeline, rerun.BuildID); err != nil || r.ParentBuildID != run.BuildID {
		t.Fatalf("re-run after the rebuild: %+v %v", r, err)
	}
	var fk int
	if err := s2.writer.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Fatalf("foreign keys after the migration: %d %v", fk, err)
	}
	if _, err := s2.TransitionRun(ctx, testPipeline, run.BuildID, RunQueued, RunRunning, ""); err != nil {
		t.Fatal(err)
	}
	started, err := s2.TransitionRun(ctx, testPipeline, run.BuildID, RunRunning, RunAwaitingApproval, "stage production needs an approval")
	if err != nil {
		t.Fatal(err)
	}
	back, err := s2.TransitionRun(ctx, testPipeline, run.BuildID, RunAwaitingApproval, RunRunning, "")
	if err != nil || !back.StartedAt.Equal(started.StartedAt) {
		t.Fatalf("back to running after the approval: %+v %v (started_at must stay)", back, err)
	}
	if _, err := s2.TransitionRun(ctx, testPipeline, run.BuildID, RunRunning, RunAwaitingApproval, ""); err != nil {
		t.Fatal(err)
	}
	if r, err := s2.TransitionRun(ctx, testPipeline, run.BuildID, RunAwaitingApproval, RunApprovalTimedOut, "no approval within 20s"); err != nil || r.FinishedAt.IsZero() {
		t.Fatalf("approval timed out: %+v %v", r, err)
	}
}
