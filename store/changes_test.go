package store

import (
	"slices"
	"sync"
	"testing"
	"time"
)

type recordingSink struct {
	mu      sync.Mutex
	changes []Change
}

func (r *recordingSink) Changed(c Change) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, c)
}

func (r *recordingSink) take() []Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.changes
	r.changes = nil
	return out
}

// Each committed write to runs, tasks, logs, drift events and the audit log is told to
// the sink once, on either engine; a write that failed is not.
func TestChangeSinkHearsCommittedWrites(t *testing.T) {
	sink := &recordingSink{}
	s, _ := openTest(t, WithChangeSink(sink))
	ctx := testCtx(t)
	run := mustRun(t, s, testPipeline)
	if _, err := s.AddTask(ctx, testPipeline, run.BuildID, NewTask{Stage: "deploy", Name: "web", Type: "deploy-yaml"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TransitionRun(ctx, testPipeline, run.BuildID, RunQueued, RunRunning, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TransitionTask(ctx, testPipeline, run.BuildID, "web", TaskPending, TaskRunning, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendLogs(ctx, testPipeline, run.BuildID, "web", []LogLine{{Text: "hi"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordDriftEvent(ctx, NewDriftEvent{Pipeline: testPipeline, BuildID: run.BuildID, Task: "web", Cluster: "c",
		Object: InventoryEntry{Version: "v1", Kind: "ConfigMap", Name: "a"}, Action: DriftReported, Patch: "[]", DetectedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordAudit(ctx, AuditEntry{Actor: "cli:me", Action: AuditTrigger, Pipeline: testPipeline, BuildID: run.BuildID}); err != nil {
		t.Fatal(err)
	}
	want := []Change{
		{Kind: ChangeRun, Pipeline: testPipeline, BuildID: 1},
		{Kind: ChangeTask, Pipeline: testPipeline, BuildID: 1, Task: "web"},
		{Kind: ChangeRun, Pipeline: testPipeline, BuildID: 1},
		{Kind: ChangeTask, Pipeline: testPipeline, BuildID: 1, Task: "web"},
		{Kind: ChangeLogs, Pipeline: testPipeline, BuildID: 1, Task: "web"},
		{Kind: ChangeDrift, Pipeline: testPipeline},
		{Kind: ChangeAudit, Pipeline: testPipeline, BuildID: 1},
	}
	if got := sink.take(); !slices.Equal(got, want) {
		t.Fatalf("%s changes:\n got %v\nwant %v", backendName(), got, want)
	}
	// Refused: the run is running, not queued; nothing was written, nobody is told.
	if _, err := s.TransitionRun(ctx, testPipeline, run.BuildID, RunQueued, RunCancelled, ""); err == nil {
		t.Fatal("a move from the wrong status succeeded")
	}
	if _, err := s.AddTask(ctx, testPipeline, run.BuildID, NewTask{Stage: "deploy", Name: "web", Type: "deploy-yaml"}); err == nil {
		t.Fatal("a second task of the same name was added")
	}
	if got := sink.take(); len(got) != 0 {
		t.Fatalf("failed writes were told to the sink: %v", got)
	}
}
