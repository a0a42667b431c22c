package store

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// interruptOne leaves a run of a holder that stopped beating and marks it interrupted.
func interruptOne(t *testing.T, s *DB, clk *fakeClock) Run {
	t.Helper()
	ctx := testCtx(t)
	if err := s.BeatHolder(ctx, "replica-1", "slipway serve on node-1 (pid 7)", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	run, err := s.CreateRun(ctx, NewRun{Pipeline: testPipeline, Commit: "c0ffee", Branch: "main", Trigger: TriggerPush, Holder: "replica-1"})
	if err != nil {
		t.Fatal(err)
	}
	if stale, err := s.MarkStaleRuns(ctx); err != nil || len(stale) != 0 {
		t.Fatalf("a beating holder's run was marked: %v %v", stale, err)
	}
	clk.advance(31 * time.Second)
	stale, err := s.MarkStaleRuns(ctx)
	if err != nil || len(stale) != 1 || stale[0].Status != RunInterrupted || stale[0].BuildID != run.BuildID {
		t.Fatalf("marked %+v, %v; want the run interrupted", stale, err)
	}
	if !strings.Contains(stale[0].Reason, "slipway serve on node-1 (pid 7)") {
		t.Fatalf("reason %q does not name the process that stopped", stale[0].Reason)
	}
	return stale[0]
}

// An interrupted run is retried once at most: the retry run's creation decides it in the
// same transaction, so a second retry (another replica's) is refused and costs no
// BUILD_ID; a refused retry cannot be made afterwards.
func TestRetryInterruptedOnce(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	s, _ := openTest(t, WithClock(clk.now))
	ctx := testCtx(t)
	run := interruptOne(t, s, clk)
	pending, err := s.PendingInterruptions(ctx, 10)
	if err != nil || len(pending) != 1 || pending[0].Run.BuildID != run.BuildID || pending[0].Holder != "replica-1" {
		t.Fatalf("pending interruptions: %+v, %v", pending, err)
	}
	nr := NewRun{Pipeline: testPipeline, Commit: run.Commit, Branch: run.Branch, Trigger: TriggerRetry, ParentBuildID: run.BuildID, Holder: "replica-2"}
	retry, err := s.CreateRun(ctx, nr)
	if err != nil {
		t.Fatal(err)
	}
	if retry.ParentBuildID != run.BuildID || retry.Trigger != TriggerRetry || retry.Commit != "c0ffee" {
		t.Fatalf("retry run: %+v", retry)
	}
	if _, err := s.CreateRun(ctx, nr); !errors.Is(err, ErrRetryDecided) {
		t.Fatalf("second retry: %v, want ErrRetryDecided", err)
	}
	if err := s.RefuseRetry(ctx, testPipeline, run.BuildID, "no"); !errors.Is(err, ErrRetryDecided) {
		t.Fatalf("refusing a retried run: %v, want ErrRetryDecided", err)
	}
	in, err := s.GetInterruption(ctx, testPipeline, run.BuildID)
	if err != nil || in.Outcome != InterruptionRetried || in.RetryBuildID != retry.BuildID {
		t.Fatalf("interruption after the retry: %+v, %v", in, err)
	}
	if pending, err := s.PendingInterruptions(ctx, 10); err != nil || len(pending) != 0 {
		t.Fatalf("still pending: %+v, %v", pending, err)
	}
	// The refused retry took no BUILD_ID.
	if next := mustRun(t, s, testPipeline); next.BuildID != retry.BuildID+1 {
		t.Fatalf("BUILD_ID after a refused retry: %d, want %d", next.BuildID, retry.BuildID+1)
	}
	// A run that was not interrupted cannot be retried.
	if _, err := s.CreateRun(ctx, NewRun{Pipeline: testPipeline, Trigger: TriggerRetry, ParentBuildID: retry.BuildID}); !errors.Is(err, ErrRetryDecided) {
		t.Fatalf("retry of a run that was not interrupted: %v, want ErrRetryDecided", err)
	}
	if _, err := s.CreateRun(ctx, NewRun{Pipeline: testPipeline, Trigger: TriggerRetry}); err == nil {
		t.Fatal("a retry without a parent was created")
	}
}

func TestRefuseRetry(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	s, _ := openTest(t, WithClock(clk.now))
	ctx := testCtx(t)
	run := interruptOne(t, s, clk)
	if err := s.RefuseRetry(ctx, testPipeline, run.BuildID, "the pipeline does not set retryInterrupted"); err != nil {
		t.Fatal(err)
	}
	in, err := s.GetInterruption(ctx, testPipeline, run.BuildID)
	if err != nil || in.Outcome != InterruptionNotRetried || in.Run.Status != RunInterrupted ||
		!strings.HasSuffix(in.Run.Reason, "; not retried: the pipeline does not set retryInterrupted") {
		t.Fatalf("interruption after the refusal: %+v, %v", in, err)
	}
	if _, err := s.CreateRun(ctx, NewRun{Pipeline: testPipeline, Trigger: TriggerRetry, ParentBuildID: run.BuildID}); !errors.Is(err, ErrRetryDecided) {
		t.Fatalf("retry after the refusal: %v, want ErrRetryDecided", err)
	}
}

// Replicas (separate handles) sweeping and retrying at once: each dead run is marked
// once and retried once.
func TestInterruptionsAcrossReplicas(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	s, loc := openTest(t, WithClock(clk.now))
	ctx := testCtx(t)
	const runs, replicas = 4, 3
	for range runs {
		if _, err := s.CreateRun(ctx, NewRun{Pipeline: testPipeline, Commit: "c", Trigger: TriggerPush, Holder: "dead"}); err != nil {
			t.Fatal(err)
		}
	}
	handles := []*DB{s}
	for range replicas - 1 {
		handles = append(handles, openAt(t, loc, WithClock(clk.now)))
	}
	var mu sync.Mutex
	marked := map[int64]int{}
	retried := map[int64]int{}
	var wg sync.WaitGroup
	for _, h := range handles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stale, err := h.MarkStaleRuns(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			for _, r := range stale {
				marked[r.BuildID]++
			}
			mu.Unlock()
			for b := int64(1); b <= runs; b++ {
				_, err := h.CreateRun(ctx, NewRun{Pipeline: testPipeline, Commit: "c", Trigger: TriggerRetry, ParentBuildID: b})
				switch {
				case err == nil:
					mu.Lock()
					retried[b]++
					mu.Unlock()
				case errors.Is(err, ErrRetryDecided):
				default:
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	for b := int64(1); b <= runs; b++ {
		if marked[b] != 1 || retried[b] != 1 {
			t.Errorf("run %d marked %d times, retried %d times; want once each", b, marked[b], retried[b])
		}
	}
	// BUILD_IDs stay gap-free: the refused retries took none.
	all, err := s.ListRuns(ctx, testPipeline, 0)
	if err != nil || len(all) != 2*runs || all[0].BuildID != 2*runs {
		t.Fatalf("%d runs, newest #%d (%v); want %d gap-free", len(all), all[0].BuildID, err, 2*runs)
	}
}
