package store

import (
	"encoding/json"
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
