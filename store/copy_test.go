package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// Every table of the schema (but schema_migrations) is one Copy moves, and the other way
// round, on the engine under test.
func TestCopyKnowsEveryTable(t *testing.T) {
	s, _ := openTest(t)
	var tables []string
	err := s.read(testCtx(t), func(tx *sql.Tx) error {
		var err error
		tables, err = s.dialect.tables(testCtx(t), tx)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	tables = slices.DeleteFunc(tables, func(n string) bool { return n == "schema_migrations" })
	slices.Sort(tables)
	want := slices.Sorted(slices.Values(copyTables))
	if !slices.Equal(tables, want) {
		t.Fatalf("%s tables %v; Copy moves %v", backendName(), tables, want)
	}
}

// populate writes at least one row into every table, through the Store.
func populate(t *testing.T, s *DB) {
	t.Helper()
	ctx := testCtx(t)
	other := PipelineRef{Repository: testPipeline.Repository, Name: "other"}
	for range 3 {
		mustRun(t, s, testPipeline)
	}
	mustRun(t, s, other)
	if _, err := s.CreateRun(ctx, NewRun{Pipeline: testPipeline, Trigger: TriggerRollback, ParentBuildID: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddTask(ctx, testPipeline, 1, NewTask{Stage: "deploy", Name: "web", Type: "deploy-yaml"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetTaskOutputs(ctx, testPipeline, 1, "web", map[string]string{"image": "x@sha256:00"}); err != nil {
		t.Fatal(err)
	}
	// More lines than the cap: the dropped marker (log_counts.marker_id) comes along.
	if err := s.AppendLogs(ctx, testPipeline, 1, "web", []LogLine{{Text: "one"}, {Text: "two"}, {Text: "three"}, {Text: "four"}}); err != nil {
		t.Fatal(err)
	}
	saveSecret(t, s, 5) // run 5 with an encrypted revision, inventory and masks
	if _, err := s.SaveRevision(ctx, NewRevision{Pipeline: testPipeline, BuildID: 1, Task: "web", Cluster: "local",
		Kind: DeployYAML, Objects: []byte("a: 1"), Prune: true, Drift: DriftPolicy{Mode: "correct"},
		Inventory: []InventoryEntry{{Version: "v1", Kind: "ConfigMap", Namespace: "game", Name: "a", Adopted: true}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordDriftEvent(ctx, NewDriftEvent{Pipeline: testPipeline, BuildID: 1, Task: "web", Cluster: "local",
		Object: InventoryEntry{Version: "v1", Kind: "ConfigMap", Namespace: "game", Name: "a"}, Action: DriftReported,
		Gone: true, Patch: "[]", DetectedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordDelivery(ctx, "repo", "d1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordPullRequestEvent(ctx, PullRequestEvent{Repository: "repo", Number: 7, Action: "opened",
		Title: "t", Author: "a", SourceBranch: "f", TargetBranch: "main", HeadCommit: "c", DeliveryID: "d1", ReceivedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := s.HandHint(ctx, RepositoryHint{Repository: testPipeline.Repository, DeliveryID: "d1", Branch: "main"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RequestRun(ctx, NewRunRequest{Pipeline: testPipeline, BuildID: 2, Kind: RequestApprove, Actor: "alice", Comment: "ok"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetScheduleTick(ctx, testPipeline, "0 * * * *", time.Now().Truncate(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetHandledHead(ctx, "repo", "main", "abc"); err != nil {
		t.Fatal(err)
	}
	// A run of a process that died: interrupted, and its retry decided.
	dead, err := s.CreateRun(ctx, NewRun{Pipeline: other, Commit: "c", Trigger: TriggerPush, Holder: "gone"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.BeatHolder(ctx, "h1", "test", time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkStaleRuns(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateRun(ctx, NewRun{Pipeline: other, Commit: "c", Trigger: TriggerRetry, ParentBuildID: dead.BuildID, Holder: "h1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.ClaimPipeline(ctx, other, "h1", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordAudit(ctx, AuditEntry{Actor: "cli:me", Action: AuditTrigger, Pipeline: testPipeline, BuildID: 1,
		Evidence: []byte(`{"why":"test"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordPushedTags(ctx, testPipeline, 1, "127.0.0.1:5000/app", []string{"v1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordTagBaseline(ctx, "repo", map[string]string{"v1": "abc"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SignOut(ctx, "nonce", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// The notification outbox (the store is opened WithNotifications): the drift event
	// above queued an event; it becomes a delivery.
	events, err := s.UndispatchedEvents(ctx, 10)
	if err != nil || len(events) == 0 {
		t.Fatalf("queued notification events: %v, %v", events, err)
	}
	if err := s.DispatchEvent(ctx, events[0].ID, []NewDelivery{{Target: "ops", Event: "drift.detected", Message: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
}

// tableRows reads every row of every copied table, booleans as 0 or 1 and text as bytes,
// so two engines' rows compare equal when they hold the same.
func tableRows(t *testing.T, s *DB) map[string][][]any {
	t.Helper()
	out := map[string][][]any{}
	for _, table := range copyTables {
		rows, err := s.reader.QueryContext(testCtx(t), `SELECT * FROM `+table)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		slices.Sort(cols) // the engines may order added columns differently
		_ = rows.Close()
		order := make([]string, len(cols))
		for i := range cols {
			order[i] = fmt.Sprint(i + 1)
		}
		rows, err = s.reader.QueryContext(testCtx(t), `SELECT `+strings.Join(cols, ", ")+` FROM `+table+` ORDER BY `+strings.Join(order, ", "))
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			vals, err := scanValues(rows, len(cols))
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				switch v := v.(type) {
				case bool:
					vals[i] = map[bool]int64{false: 0, true: 1}[v]
				case string:
					vals[i] = []byte(v)
				}
			}
			out[table] = append(out[table], vals)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		_ = rows.Close()
	}
	return out
}

// checkCopied compares every table but those skipped.
func checkCopied(t *testing.T, from, to *DB, res CopyResult, skip ...string) {
	t.Helper()
	want, got := tableRows(t, from), tableRows(t, to)
	for _, table := range copyTables {
		if slices.Contains(skip, table) {
			continue
		}
		if len(want[table]) == 0 {
			t.Errorf("the test wrote no row into %s: the copy of that table is untested", table)
		}
		if !reflect.DeepEqual(got[table], want[table]) {
			t.Errorf("table %s differs after the copy:\n got %v\nwant %v", table, got[table], want[table])
		}
	}
	for _, c := range res.Tables {
		if c.Rows != int64(len(want[c.Name])) {
			t.Errorf("Copy says %d rows of %s, the source holds %d", c.Rows, c.Name, len(want[c.Name]))
		}
	}
}

// `slipway store migrate`'s core: an installation copied into an empty store (of the
// engine under test) holds every row of every table, reads back (encrypted revisions
// included), and carries on: BUILD_IDs, log lines and audit entries continue. On
// PostgreSQL the copy also goes back to SQLite.
func TestCopyCarriesEverything(t *testing.T) {
	ctx := testCtx(t)
	kr := keyring(t, newKey(t))
	src := openAt(t, filepath.Join(t.TempDir(), "source.db"), WithKeyring(kr), WithLogLineCap(3), WithNotifications())
	populate(t, src)

	dst, loc := openTest(t)
	res, err := Copy(ctx, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	checkCopied(t, src, dst, res)
	if _, err := Copy(ctx, src, dst); !errors.Is(err, ErrDestinationNotEmpty) {
		t.Fatalf("a second copy into the same store: %v; want ErrDestinationNotEmpty", err)
	}
	_ = dst.Close()

	// The daemon opens the copy with the same keys and carries on.
	d := openAt(t, loc, WithKeyring(kr), WithLogLineCap(3))
	readSecret(t, d, 5)
	if r := mustRun(t, d, testPipeline); r.BuildID != 6 {
		t.Fatalf("next BUILD_ID after the copy: %d, want 6", r.BuildID)
	}
	if err := d.AppendLogs(ctx, testPipeline, 6, "", []LogLine{{Text: "after the copy"}}); err != nil {
		t.Fatal(err)
	}
	lines, err := d.ReadLogs(ctx, testPipeline, 6, LogQuery{})
	if err != nil || len(lines) != 1 || lines[0].Text != "after the copy" {
		t.Fatalf("log lines written after the copy: %v, %v", lines, err)
	}
	if e, err := d.RecordAudit(ctx, AuditEntry{Actor: "cli:me", Action: AuditRerun, Pipeline: testPipeline, BuildID: 6}); err != nil || e.ID != 2 {
		t.Fatalf("audit entry after the copy: id %d, %v; want 2", e.ID, err)
	}
	old, err := d.ReadLogs(ctx, testPipeline, 1, LogQuery{Tasks: []string{"web"}})
	if err != nil || len(old) != 4 {
		t.Fatalf("copied log of run 1: %d lines (%v), want 3 kept and the dropped marker", len(old), err)
	}

	if onPostgres() {
		back := openAt(t, filepath.Join(t.TempDir(), "back.db"))
		res, err := Copy(ctx, d, back)
		if err != nil {
			t.Fatalf("copy back to SQLite: %v", err)
		}
		checkCopied(t, d, back, res)
		if r := mustRun(t, back, testPipeline); r.BuildID != 7 {
			t.Fatalf("next BUILD_ID after copying back: %d, want 7", r.BuildID)
		}
	}
}

// A source holding a table Copy does not know is refused, not copied in part.
func TestCopyRefusesUnknownTables(t *testing.T) {
	src, _ := openTest(t)
	mustRun(t, src, testPipeline)
	if _, err := src.writer.ExecContext(testCtx(t), `CREATE TABLE extra (id BIGINT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	dst := openAt(t, filepath.Join(t.TempDir(), "dst.db"))
	_, err := Copy(context.Background(), src, dst)
	if err == nil || !strings.Contains(err.Error(), "table extra") {
		t.Fatalf("copy of a store with an unknown table: %v", err)
	}
	if runs, _ := dst.ListPipelines(testCtx(t)); len(runs) != 0 {
		t.Fatalf("the refused copy wrote %d pipelines", len(runs))
	}
}
