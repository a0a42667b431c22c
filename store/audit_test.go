package store

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAuditRoundTripAndFilter(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC)}
	s, _ := openTest(t, WithClock(clk.now))
	ctx := testCtx(t)
	other := PipelineRef{Repository: "git.example/team/web", Name: "deploy"}
	evidence := json.RawMessage(`{"rule":"pullRequest","pr":7,"approvers":["bob"],"heads":["abc"]}`)
	entries := []AuditEntry{
		{Actor: "alice", Action: AuditTrigger, Pipeline: testPipeline, BuildID: 1},
		{Actor: "cli:ops", Action: AuditRollback, Pipeline: other, BuildID: 4, Reason: "slipway rollback --to 2"},
		{Actor: "gate", Action: AuditGateDecision, Pipeline: testPipeline, BuildID: 1, Reason: "PR #7 approved", Evidence: evidence},
		{Actor: "alice", Action: AuditCancel, Pipeline: testPipeline, BuildID: 1},
	}
	for i, e := range entries {
		got, err := s.RecordAudit(ctx, e)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if got.ID == 0 || !got.Time.Equal(clk.t.Truncate(time.Microsecond)) {
			t.Fatalf("entry %d as stored: %+v", i, got)
		}
		clk.advance(time.Second)
	}

	all, err := s.ListAudit(ctx, AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4 || all[0].Action != AuditCancel || all[3].Action != AuditTrigger {
		t.Fatalf("all entries, newest first: %+v", all)
	}
	gate := all[1]
	if gate.Actor != "gate" || gate.Pipeline != testPipeline || gate.BuildID != 1 || gate.Reason != "PR #7 approved" ||
		string(gate.Evidence) != string(evidence) || gate.Time.Location() != time.UTC {
		t.Fatalf("gate decision read back as %+v", gate)
	}
	if all[0].Evidence != nil {
		t.Fatalf("an entry without evidence read back with %q", all[0].Evidence)
	}

	for _, tc := range []struct {
		f    AuditFilter
		want []AuditAction
	}{
		{AuditFilter{Pipeline: testPipeline}, []AuditAction{AuditCancel, AuditGateDecision, AuditTrigger}},
		{AuditFilter{Pipeline: testPipeline, Limit: 2}, []AuditAction{AuditCancel, AuditGateDecision}},
		{AuditFilter{Pipeline: other}, []AuditAction{AuditRollback}},
		{AuditFilter{Pipeline: PipelineRef{Name: "deploy"}}, []AuditAction{AuditCancel, AuditGateDecision, AuditRollback, AuditTrigger}},
		{AuditFilter{Pipeline: PipelineRef{Repository: other.Repository}}, []AuditAction{AuditRollback}},
		{AuditFilter{Pipeline: PipelineRef{Repository: "nope", Name: "deploy"}}, nil},
	} {
		got, err := s.ListAudit(ctx, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var actions []AuditAction
		for _, e := range got {
			actions = append(actions, e.Action)
		}
		if strings.Join(toStrings(actions), ",") != strings.Join(toStrings(tc.want), ",") {
			t.Errorf("ListAudit(%+v) = %v, want %v", tc.f, actions, tc.want)
		}
	}
}

func toStrings(as []AuditAction) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = string(a)
	}
	return out
}

func TestAuditRefusesIncompleteEntries(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	for name, e := range map[string]AuditEntry{
		"no actor":       {Action: AuditTrigger, Pipeline: testPipeline},
		"unknown action": {Actor: "a", Action: "delete", Pipeline: testPipeline},
		"no pipeline":    {Actor: "a", Action: AuditTrigger},
		"bad evidence":   {Actor: "a", Action: AuditGateDecision, Pipeline: testPipeline, Evidence: json.RawMessage(`[1]`)},
		"negative id":    {Actor: "a", Action: AuditCancel, Pipeline: testPipeline, BuildID: -1},
	} {
		if _, err := s.RecordAudit(ctx, e); err == nil {
			t.Errorf("%s: recorded %+v", name, e)
		}
	}
	if got, _ := s.ListAudit(ctx, AuditFilter{}); len(got) != 0 {
		t.Fatalf("refused entries were stored: %+v", got)
	}
}

// The audit log survives what removes other records: the pipeline's deletion (which
// cascades to its runs), a direct DELETE or UPDATE, and reopening the store.
func TestAuditIsNeverDeleted(t *testing.T) {
	s, path := openTest(t)
	ctx := testCtx(t)
	run := mustRun(t, s, testPipeline)
	if _, err := s.RecordAudit(ctx, AuditEntry{Actor: "alice", Action: AuditTrigger, Pipeline: testPipeline, BuildID: run.BuildID}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.writer.ExecContext(ctx, `DELETE FROM pipelines`); err != nil {
		t.Fatalf("deleting the pipeline: %v", err)
	}
	if _, err := s.GetRun(ctx, testPipeline, run.BuildID); err == nil {
		t.Fatal("the run outlived its pipeline: the test does not show what it means to")
	}
	for _, stmt := range []string{`DELETE FROM audit_log`, `UPDATE audit_log SET actor = 'mallory'`} {
		_, err := s.writer.ExecContext(ctx, stmt)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Fatalf("%s: err = %v, want the append-only refusal", stmt, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path)
	got, err := s.ListAudit(ctx, AuditFilter{Pipeline: testPipeline})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Actor != "alice" || got[0].BuildID != run.BuildID {
		t.Fatalf("after deleting the pipeline and reopening: %+v", got)
	}
}

// A run asked for by someone is recorded with its audit entry in one transaction: both, or
// neither, whichever part fails.
func TestRunAndItsAuditEntryCommitTogether(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)}
	sink := &recordingSink{}
	s, _ := openTest(t, WithClock(clk.now), WithChangeSink(sink))
	ctx := testCtx(t)
	asked := func(actor string) NewRun {
		return NewRun{Pipeline: testPipeline, Commit: "0123abcd", Branch: "main", Trigger: TriggerManual,
			Tasks: []NewTask{{Stage: "deploy", Name: "web", Type: "deploy-yaml"}},
			Audit: &AuditEntry{Actor: actor, Action: AuditTrigger, Reason: "manual run at 0123abcd"}}
	}
	runsAndEntries := func() (int, []AuditEntry) {
		t.Helper()
		runs, err := s.ListRuns(ctx, testPipeline, 0)
		if err != nil {
			t.Fatal(err)
		}
		entries, err := s.ListAudit(ctx, AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		return len(runs), entries
	}

	// Both parts recorded: the entry names the run it started.
	run, err := s.CreateRun(ctx, asked("alice"))
	if err != nil {
		t.Fatal(err)
	}
	n, entries := runsAndEntries()
	if n != 1 || len(entries) != 1 {
		t.Fatalf("after one run asked for: %d runs, audit %+v", n, entries)
	}
	if e := entries[0]; e.Actor != "alice" || e.Action != AuditTrigger || e.Pipeline != testPipeline || e.BuildID != run.BuildID ||
		e.Reason != "manual run at 0123abcd" || !e.Time.Equal(clk.t) {
		t.Fatalf("the run's entry: %+v (run #%d)", e, run.BuildID)
	}
	heard := sink.take()
	if !slices.Contains(heard, Change{Kind: ChangeRun, Pipeline: testPipeline, BuildID: run.BuildID}) ||
		!slices.Contains(heard, Change{Kind: ChangeAudit, Pipeline: testPipeline, BuildID: run.BuildID}) {
		t.Fatalf("changes heard: %+v", heard)
	}

	// The entry cannot be recorded: neither is the run, and its BUILD_ID is not used up.
	refuseAuditOf(t, s, "mallory")
	if _, err := s.CreateRun(ctx, asked("mallory")); err == nil || !strings.Contains(err.Error(), "audit refused") {
		t.Fatalf("a run whose audit entry is refused: %v", err)
	}
	if n, entries := runsAndEntries(); n != 1 || len(entries) != 1 {
		t.Fatalf("after a refused entry: %d runs, %d entries", n, len(entries))
	}

	// The run cannot be recorded (the second of a batch names a parent that does not
	// exist): no entry either, not even the first run's.
	second := asked("bob")
	second.ParentBuildID = 99
	if _, err := s.CreateRuns(ctx, []NewRun{asked("bob"), second}, Handled{}); err == nil {
		t.Fatal("a batch with a run whose parent does not exist was recorded")
	}
	if n, entries := runsAndEntries(); n != 1 || len(entries) != 1 {
		t.Fatalf("after a refused run: %d runs, %d entries", n, len(entries))
	}
	if len(sink.take()) != 0 {
		t.Fatal("the sink heard of writes that did not commit")
	}

	// An entry that is invalid is refused before anything is written; one naming another
	// run is refused too (it takes its run's pipeline and BUILD_ID).
	bad := asked("")
	if _, err := s.CreateRun(ctx, bad); err == nil || !strings.Contains(err.Error(), "actor") {
		t.Fatalf("an entry without actor: %v", err)
	}
	other := asked("alice")
	other.Audit.BuildID = 7
	if _, err := s.CreateRun(ctx, other); err == nil {
		t.Fatal("an entry naming another BUILD_ID was recorded")
	}

	// The next run takes the next BUILD_ID: nothing above used one up.
	next, err := s.CreateRun(ctx, asked("alice"))
	if err != nil || next.BuildID != run.BuildID+1 {
		t.Fatalf("next run: #%d, %v (want #%d)", next.BuildID, err, run.BuildID+1)
	}
}

// refuseAuditOf makes the database refuse audit entries by actor, as a failing disk or a
// constraint would: the insert fails inside the transaction.
func refuseAuditOf(t *testing.T, s *DB, actor string) {
	t.Helper()
	var stmts []string
	if onPostgres() {
		stmts = []string{`CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN IF NEW.actor = '` + actor + `' THEN RAISE EXCEPTION 'audit refused'; END IF; RETURN NEW; END $$`,
			`CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION refuse_audit()`}
	} else {
		stmts = []string{`CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log WHEN NEW.actor = '` + actor + `'
			BEGIN SELECT RAISE(ABORT, 'audit refused'); END`}
	}
	for _, q := range stmts {
		if _, err := s.writer.ExecContext(testCtx(t), q); err != nil {
			t.Fatal(err)
		}
	}
}
