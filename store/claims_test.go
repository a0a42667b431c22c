package store

import (
	"errors"
	"testing"
	"time"
)

func TestClaimPipelineOneHolderAtATime(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	s, _ := openTest(t, WithClock(clk.now))
	ctx := testCtx(t)
	for _, h := range []string{"daemon", "cli"} {
		if err := s.BeatHolder(ctx, h, "slipway "+h, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.ClaimPipeline(ctx, testPipeline, "daemon", 7); err != nil {
		t.Fatalf("first claim: %v", err)
	}
	if err := s.ClaimPipeline(ctx, testPipeline, "daemon", 8); err != nil {
		t.Fatalf("the holder claims again for its next run: %v", err)
	}
	err := s.ClaimPipeline(ctx, testPipeline, "cli", 9)
	var claimed *ClaimedError
	if !errors.As(err, &claimed) || !errors.Is(err, ErrClaimed) {
		t.Fatalf("second holder: want a ClaimedError, got %v", err)
	}
	if claimed.Holder != "daemon" || claimed.BuildID != 8 || claimed.Description != "slipway daemon" {
		t.Errorf("claimed by %+v, want daemon's BUILD_ID 8", claimed)
	}
	other := PipelineRef{Repository: "git.example/team/other", Name: "deploy"}
	if err := s.ClaimPipeline(ctx, other, "cli", 1); err != nil {
		t.Errorf("the same name in another repository is another pipeline: %v", err)
	}

	if err := s.ReleasePipeline(ctx, testPipeline, "cli"); err != nil {
		t.Fatal(err)
	}
	if err := s.ClaimPipeline(ctx, testPipeline, "cli", 9); !errors.Is(err, ErrClaimed) {
		t.Errorf("releasing another holder's claim must not free it: %v", err)
	}
	if err := s.ReleasePipeline(ctx, testPipeline, "daemon"); err != nil {
		t.Fatal(err)
	}
	if err := s.ClaimPipeline(ctx, testPipeline, "cli", 9); err != nil {
		t.Errorf("after release: %v", err)
	}
}

func TestClaimOfAHolderThatStoppedBeatingIsFree(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	s, _ := openTest(t, WithClock(clk.now))
	ctx := testCtx(t)
	if err := s.BeatHolder(ctx, "crashed", "", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.ClaimPipeline(ctx, testPipeline, "crashed", 3); err != nil {
		t.Fatal(err)
	}
	clk.advance(29 * time.Second)
	if err := s.BeatHolder(ctx, "new", "", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.ClaimPipeline(ctx, testPipeline, "new", 4); !errors.Is(err, ErrClaimed) {
		t.Fatalf("within the ttl the claim holds: %v", err)
	}
	clk.advance(2 * time.Second)
	if err := s.BeatHolder(ctx, "new", "", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.ClaimPipeline(ctx, testPipeline, "new", 4); err != nil {
		t.Fatalf("past the ttl the claim is free: %v", err)
	}
	if err := s.RemoveHolder(ctx, "new"); err != nil {
		t.Fatal(err)
	}
	if err := s.BeatHolder(ctx, "third", "", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.ClaimPipeline(ctx, testPipeline, "third", 5); err != nil {
		t.Fatalf("a removed holder's claims are gone: %v", err)
	}
}

func TestMarkStaleRunsLeavesLiveHoldersRuns(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	s, _ := openTest(t, WithClock(clk.now))
	ctx := testCtx(t)
	if err := s.BeatHolder(ctx, "cli", "", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	live, err := s.CreateRun(ctx, NewRun{Pipeline: testPipeline, Commit: "c1", Trigger: TriggerManual, Holder: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := s.CreateRun(ctx, NewRun{Pipeline: testPipeline, Commit: "c2", Trigger: TriggerPush, Holder: "killed"})
	if err != nil {
		t.Fatal(err)
	}
	old := mustRun(t, s, testPipeline) // written before holders existed
	stale, err := s.MarkStaleRuns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]bool{}
	for _, r := range stale {
		got[r.BuildID] = true
	}
	if got[live.BuildID] || !got[gone.BuildID] || !got[old.BuildID] || len(stale) != 2 {
		t.Fatalf("stale runs %v: want #%d and #%d, not the live holder's #%d", got, gone.BuildID, old.BuildID, live.BuildID)
	}
	clk.advance(time.Minute)
	stale, err = s.MarkStaleRuns(ctx)
	if err != nil || len(stale) != 1 || stale[0].BuildID != live.BuildID {
		t.Fatalf("once its holder stops beating, its run is stale: %v %v", stale, err)
	}
}

// A run recorded ended takes the claim made for it along in the same commit; a claim the
// holder made for its next run stays.
func TestRunEndReleasesItsClaim(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	beatHolders(t, s, "daemon", "other")
	first, second := mustRun(t, s, testPipeline), mustRun(t, s, testPipeline)
	if err := s.ClaimPipeline(ctx, testPipeline, "daemon", first.BuildID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TransitionRun(ctx, testPipeline, first.BuildID, RunQueued, RunRunning, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.ClaimPipeline(ctx, testPipeline, "other", second.BuildID); !errors.Is(err, ErrClaimed) {
		t.Fatalf("claimed while the first run runs: %v, want ErrClaimed", err)
	}
	if _, err := s.TransitionRun(ctx, testPipeline, first.BuildID, RunRunning, RunSucceeded, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.ClaimPipeline(ctx, testPipeline, "other", second.BuildID); err != nil {
		t.Fatalf("the first run's end left its claim: %v", err)
	}
	// The end of a run the claim is not for leaves the claim alone.
	if _, err := s.TransitionRun(ctx, testPipeline, first.BuildID, RunSucceeded, RunSucceeded, ""); err == nil {
		t.Fatal("succeeded → succeeded accepted")
	}
	third := mustRun(t, s, testPipeline)
	if _, err := s.TransitionRun(ctx, testPipeline, third.BuildID, RunQueued, RunCancelled, "not wanted"); err != nil {
		t.Fatal(err)
	}
	if err := s.ClaimPipeline(ctx, testPipeline, "daemon", third.BuildID); !errors.Is(err, ErrClaimed) {
		t.Fatalf("another run's end freed the claim for BUILD_ID %d: %v", second.BuildID, err)
	}
}

// A run starts with one write: the claim and the move to running commit together, and a
// start refused (another holder runs the pipeline, or the run left the queue) changes
// nothing.
func TestStartRunClaimsAndStartsInOneWrite(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	beatHolders(t, s, "daemon", "other")
	first, second := mustRun(t, s, testPipeline), mustRun(t, s, testPipeline)
	started, err := s.StartRun(ctx, testPipeline, first.BuildID, "daemon")
	if err != nil {
		t.Fatal(err)
	}
	if started.Status != RunRunning || started.StartedAt.IsZero() {
		t.Fatalf("started run %s, started at %v: want running with its start time", started.Status, started.StartedAt)
	}
	err = s.ClaimPipeline(ctx, testPipeline, "other", second.BuildID)
	var claimed *ClaimedError
	if !errors.As(err, &claimed) || claimed.Holder != "daemon" || claimed.BuildID != first.BuildID {
		t.Fatalf("claim while the first run runs: %v, want daemon's claim for BUILD_ID %d", err, first.BuildID)
	}

	// Another holder's start is refused and leaves its run queued.
	_, err = s.StartRun(ctx, testPipeline, second.BuildID, "other")
	if !errors.As(err, &claimed) || !errors.Is(err, ErrClaimed) || claimed.Holder != "daemon" {
		t.Fatalf("start while another holder runs the pipeline: %v, want a ClaimedError naming daemon", err)
	}
	if got, err := s.GetRun(ctx, testPipeline, second.BuildID); err != nil || got.Status != RunQueued || !got.StartedAt.IsZero() {
		t.Fatalf("refused run: %+v, %v; want it left queued", got, err)
	}

	// The run's end ends the claim StartRun made; then the other holder starts its run.
	if _, err := s.TransitionRun(ctx, testPipeline, first.BuildID, RunRunning, RunSucceeded, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StartRun(ctx, testPipeline, second.BuildID, "other"); err != nil {
		t.Fatalf("start once the first run ended: %v", err)
	}
	if _, err := s.TransitionRun(ctx, testPipeline, second.BuildID, RunRunning, RunFailed, "x"); err != nil {
		t.Fatal(err)
	}

	// A run that left the queue is not started, and its start takes no claim.
	third := mustRun(t, s, testPipeline)
	if _, err := s.TransitionRun(ctx, testPipeline, third.BuildID, RunQueued, RunCancelled, "not wanted"); err != nil {
		t.Fatal(err)
	}
	var moved *TransitionError
	if _, err := s.StartRun(ctx, testPipeline, third.BuildID, "other"); !errors.As(err, &moved) || moved.Current != string(RunCancelled) {
		t.Fatalf("start of a cancelled run: %v, want a TransitionError from cancelled", err)
	}
	if err := s.ClaimPipeline(ctx, testPipeline, "daemon", 99); err != nil {
		t.Fatalf("a refused start kept its claim: %v", err)
	}
	if _, err := s.StartRun(ctx, PipelineRef{Repository: "git.example/team/app", Name: "nope"}, 1, "daemon"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("start of a run of an unknown pipeline: %v, want ErrNotFound", err)
	}
}

// beatHolders records the holders alive for a minute, as their processes' beats do.
func beatHolders(t *testing.T, s *DB, holders ...string) {
	t.Helper()
	for _, h := range holders {
		if err := s.BeatHolder(testCtx(t), h, "slipway "+h, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
}
