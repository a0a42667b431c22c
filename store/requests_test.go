package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// heldRun creates a queued run of testPipeline held by holder.
func heldRun(t *testing.T, s *DB, holder string) Run {
	t.Helper()
	run, err := s.CreateRun(testCtx(t), NewRun{Pipeline: testPipeline, Commit: "c0ffee", Branch: "main", Trigger: TriggerPush, Holder: holder})
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// A request is addressed to the run's holder, taken by it once, and finished once with
// the outcome the process that recorded it reads back.
func TestRunRequestTakenOnceByItsHolder(t *testing.T) {
	ctx := testCtx(t)
	s, _ := openTest(t)
	run := heldRun(t, s, "replica-1")
	q, err := s.RequestRun(ctx, NewRunRequest{Pipeline: testPipeline, BuildID: run.BuildID, Kind: RequestApprove, Actor: "alice", Comment: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	if q.Holder != "replica-1" || q.Kind != RequestApprove || q.Actor != "alice" || q.Comment != "ok" || q.Outcome != RequestPending || !q.Taken.IsZero() {
		t.Fatalf("recorded request %+v", q)
	}
	if got, err := s.TakeRunRequests(ctx, "replica-2"); err != nil || len(got) != 0 {
		t.Fatalf("another holder took %+v, %v", got, err)
	}
	got, err := s.TakeRunRequests(ctx, "replica-1")
	if err != nil || len(got) != 1 || got[0].ID != q.ID || got[0].Pipeline != testPipeline || got[0].BuildID != run.BuildID || got[0].Taken.IsZero() {
		t.Fatalf("holder took %+v, %v", got, err)
	}
	if again, err := s.TakeRunRequests(ctx, "replica-1"); err != nil || len(again) != 0 {
		t.Fatalf("taken twice: %+v, %v", again, err)
	}
	if err := s.FinishRunRequest(ctx, got[0], RequestNotApprover, "alice may not approve stage prod"); err != nil {
		t.Fatal(err)
	}
	// The first outcome stands.
	if err := s.FinishRunRequest(ctx, got[0], RequestDone, ""); err != nil {
		t.Fatal(err)
	}
	done, err := s.GetRunRequest(ctx, q.ID)
	if err != nil || done.Outcome != RequestNotApprover || done.Detail != "alice may not approve stage prod" || done.Finished.IsZero() {
		t.Fatalf("finished request %+v, %v", done, err)
	}
	if _, err := s.GetRunRequest(ctx, q.ID+100); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown request: %v, want ErrNotFound", err)
	}
}

// A run that has ended takes no requests; one that does not exist is not found.
func TestRunRequestRefusedForEndedRun(t *testing.T) {
	ctx := testCtx(t)
	s, _ := openTest(t)
	run := heldRun(t, s, "replica-1")
	if _, err := s.TransitionRun(ctx, testPipeline, run.BuildID, RunQueued, RunCancelled, "by hand"); err != nil {
		t.Fatal(err)
	}
	_, err := s.RequestRun(ctx, NewRunRequest{Pipeline: testPipeline, BuildID: run.BuildID, Kind: RequestCancel, Actor: "alice"})
	if !errors.Is(err, ErrRunEnded) || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("request for an ended run: %v, want ErrRunEnded naming its status", err)
	}
	if _, err := s.RequestRun(ctx, NewRunRequest{Pipeline: testPipeline, BuildID: 99, Kind: RequestCancel, Actor: "alice"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("request for no run: %v, want ErrNotFound", err)
	}
	if _, err := s.RequestRun(ctx, NewRunRequest{Pipeline: testPipeline, BuildID: run.BuildID, Kind: "restart", Actor: "alice"}); err == nil {
		t.Fatal("an unknown kind of request was recorded")
	}
}

// When a run ends, the requests its holder has not taken end with it; one the holder took
// is the holder's to finish.
func TestRunRequestsEndWithTheRun(t *testing.T) {
	ctx := testCtx(t)
	s, _ := openTest(t)
	run := heldRun(t, s, "replica-1")
	taken, untaken := takenAndUntaken(ctx, t, s, run, RequestCancel)
	if _, err := s.TransitionRun(ctx, testPipeline, run.BuildID, RunQueued, RunCancelled, "cancelled by request of alice"); err != nil {
		t.Fatal(err)
	}
	if q, err := s.GetRunRequest(ctx, untaken.ID); err != nil || q.Outcome != RequestRunEnded || !strings.Contains(q.Detail, "ended cancelled") {
		t.Fatalf("untaken request after the run ended: %+v, %v", q, err)
	}
	if q, err := s.GetRunRequest(ctx, taken.ID); err != nil || q.Outcome != RequestPending {
		t.Fatalf("taken request after the run ended: %+v, %v; want it left to its holder", q, err)
	}
}

// A run whose holder died is marked interrupted with its requests, taken or not: none is
// left waiting for a process that is gone.
func TestRunRequestsEndWhenTheRunIsInterrupted(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	s, _ := openTest(t, WithClock(clk.now))
	ctx := testCtx(t)
	if err := s.BeatHolder(ctx, "replica-1", "slipway serve on node-1 (pid 7)", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	run := heldRun(t, s, "replica-1")
	taken, untaken := takenAndUntaken(ctx, t, s, run, RequestApprove)
	clk.advance(31 * time.Second)
	if stale, err := s.MarkStaleRuns(ctx); err != nil || len(stale) != 1 {
		t.Fatalf("marked %+v, %v", stale, err)
	}
	for _, id := range []int64{taken.ID, untaken.ID} {
		q, err := s.GetRunRequest(ctx, id)
		if err != nil || q.Outcome != RequestRunEnded || !strings.Contains(q.Detail, "interrupted") || q.Finished.IsZero() {
			t.Fatalf("request %d after the run was interrupted: %+v, %v", id, q, err)
		}
	}
	if got, err := s.TakeRunRequests(ctx, "replica-1"); err != nil || len(got) != 0 {
		t.Fatalf("the interrupted run's requests are still to take: %+v, %v", got, err)
	}
}

// takenAndUntaken records a request of kind by alice for run, which replica-1 takes, and then
// a cancel by bob that nobody has taken yet.
func takenAndUntaken(ctx context.Context, t *testing.T, s *DB, run Run, kind RequestKind) (taken, untaken RunRequest) {
	t.Helper()
	taken, err := s.RequestRun(ctx, NewRunRequest{Pipeline: testPipeline, BuildID: run.BuildID, Kind: kind, Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.TakeRunRequests(ctx, "replica-1"); err != nil || len(got) != 1 {
		t.Fatalf("took %+v, %v", got, err)
	}
	untaken, err = s.RequestRun(ctx, NewRunRequest{Pipeline: testPipeline, BuildID: run.BuildID, Kind: RequestCancel, Actor: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	return taken, untaken
}
