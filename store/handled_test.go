package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// A cron tick's claim and its run are one transaction: the run is on record exactly when
// the tick is, a lost claim records nothing and uses up no BUILD_ID, and the tasks come
// with the run.
func TestCreateRunsRecordsTheTickWithItsRun(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	const sched = "CRON_TZ=UTC */1 * * * *"
	t1 := time.Date(2026, 12, 1, 10, 1, 0, 0, time.UTC)
	nr := NewRun{Pipeline: testPipeline, Commit: "c1", Branch: "main", Trigger: TriggerCron,
		Tasks: []NewTask{{Stage: "deploy", Name: "apply", Type: "deploy-yaml"}, {Stage: "deploy", Name: "check", Type: "script"}}}

	runs, err := s.CreateRuns(ctx, []NewRun{nr}, Handled{Tick: &TickClaim{Pipeline: testPipeline, Schedule: sched, Tick: t1}})
	if err != nil || len(runs) != 1 || runs[0].BuildID != 1 || runs[0].Status != RunQueued {
		t.Fatalf("first claim: %+v, %v", runs, err)
	}
	if got, ok, err := s.LastScheduleTick(ctx, testPipeline, sched); err != nil || !ok || !got.Equal(t1) {
		t.Fatalf("tick recorded with the run: %v %v %v", got, ok, err)
	}
	tasks, err := s.ListTasks(ctx, testPipeline, 1)
	if err != nil || len(tasks) != 2 || tasks[0].Name != "apply" || tasks[1].Status != TaskPending {
		t.Fatalf("tasks recorded with the run: %+v, %v", tasks, err)
	}

	// A second process claiming the same tick from the same base loses: no run, no BUILD_ID.
	_, err = s.CreateRuns(ctx, []NewRun{nr}, Handled{Tick: &TickClaim{Pipeline: testPipeline, Schedule: sched, Tick: t1}})
	if !errors.Is(err, ErrHandledElsewhere) {
		t.Fatalf("the same tick again: %v, want ErrHandledElsewhere", err)
	}
	t2 := t1.Add(time.Minute)
	runs, err = s.CreateRuns(ctx, []NewRun{nr}, Handled{Tick: &TickClaim{Pipeline: testPipeline, Schedule: sched, From: t1, Tick: t2}})
	if err != nil || runs[0].BuildID != 2 {
		t.Fatalf("the next tick: %+v, %v; want BUILD_ID 2 (the lost claim used none)", runs, err)
	}
	if all, _ := s.ListRuns(ctx, testPipeline, 0); len(all) != 2 {
		t.Fatalf("%d runs recorded, want 2", len(all))
	}
}

// A batch that fails part-way records nothing: not the claim, not the runs before the
// failing one. Whoever looks next finds the head unhandled and starts the runs itself.
func TestCreateRunsIsAllOrNothing(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	other := PipelineRef{Repository: testPipeline.Repository, Name: "other"}
	ok := NewRun{Pipeline: testPipeline, Commit: "c2", Branch: "main", Trigger: TriggerPush}
	bad := NewRun{Pipeline: other, Commit: "c2", Branch: "main", Trigger: TriggerManual, ParentBuildID: 41} // no such parent
	head := &HeadClaim{Repository: testPipeline.Repository, Branch: "main", To: "c2"}

	if _, err := s.CreateRuns(ctx, []NewRun{ok, bad}, Handled{Head: head}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("batch with a bad run: %v, want ErrNotFound", err)
	}
	if got, err := s.HandledHead(ctx, head.Repository, "main"); err != nil || got != "" {
		t.Fatalf("head after the failed batch: %q, %v; want none", got, err)
	}
	if all, err := s.ListRuns(ctx, testPipeline, 0); err != nil || len(all) != 0 {
		t.Fatalf("runs after the failed batch: %+v, %v; want none", all, err)
	}
	// Done again without the bad run, it records both, and BUILD_ID 1 was never used.
	runs, err := s.CreateRuns(ctx, []NewRun{ok}, Handled{Head: head})
	if err != nil || runs[0].BuildID != 1 {
		t.Fatalf("batch again: %+v, %v", runs, err)
	}
	if got, _ := s.HandledHead(ctx, head.Repository, "main"); got != "c2" {
		t.Fatalf("head %q, want c2", got)
	}
}

// The head and the tag are compare-and-sets too; a push whose path filters match no
// pipeline records its head with no run.
func TestCreateRunsHeadAndTagClaims(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	repo := testPipeline.Repository
	if _, err := s.CreateRuns(ctx, nil, Handled{Head: &HeadClaim{Repository: repo, Branch: "main", To: "c1"}}); err != nil {
		t.Fatalf("a head with no runs: %v", err)
	}
	if got, _ := s.HandledHead(ctx, repo, "main"); got != "c1" {
		t.Fatalf("head %q, want c1", got)
	}
	push := NewRun{Pipeline: testPipeline, Commit: "c2", Branch: "main", Trigger: TriggerPush}
	// From a stale base (another process moved the head to c1 meanwhile): nothing recorded.
	if _, err := s.CreateRuns(ctx, []NewRun{push}, Handled{Head: &HeadClaim{Repository: repo, Branch: "main", To: "c2"}}); !errors.Is(err, ErrHandledElsewhere) {
		t.Fatalf("head from none while c1 is recorded: %v, want ErrHandledElsewhere", err)
	}
	if _, err := s.CreateRuns(ctx, []NewRun{push}, Handled{Head: &HeadClaim{Repository: repo, Branch: "main", From: "c0", To: "c2"}}); !errors.Is(err, ErrHandledElsewhere) {
		t.Fatalf("head from c0 while c1 is recorded: %v, want ErrHandledElsewhere", err)
	}
	if runs, err := s.CreateRuns(ctx, []NewRun{push}, Handled{Head: &HeadClaim{Repository: repo, Branch: "main", From: "c1", To: "c2"}}); err != nil || runs[0].BuildID != 1 {
		t.Fatalf("head from c1: %+v, %v", runs, err)
	}

	tag := &TagRef{Repository: repo, Tag: "v1.0.0", Commit: "c2"}
	release := NewRun{Pipeline: testPipeline, Commit: "c2", Tag: "v1.0.0", Trigger: TriggerPush}
	if _, err := s.CreateRuns(ctx, []NewRun{release}, Handled{Tag: tag}); err != nil {
		t.Fatal(err)
	}
	refs, err := s.ListTagRefs(ctx, repo)
	if err != nil || refs["v1.0.0"].State != TagHandled || refs["v1.0.0"].Commit != "c2" {
		t.Fatalf("tag recorded with its run: %+v, %v", refs, err)
	}
	if _, err := s.CreateRuns(ctx, []NewRun{release}, Handled{Tag: tag}); !errors.Is(err, ErrHandledElsewhere) {
		t.Fatalf("the same tag again: %v, want ErrHandledElsewhere", err)
	}
	if all, _ := s.ListRuns(ctx, testPipeline, 0); len(all) != 2 {
		t.Fatalf("%d runs, want 2 (one push, one tag)", len(all))
	}
}

// Replicas (separate connections to one store) racing for the same ticks and heads create
// each one's run once, and the BUILD_IDs stay gap-free.
func TestCreateRunsRacingReplicasCreateEachRunOnce(t *testing.T) {
	_, loc := openTest(t)
	const replicas, rounds = 4, 8
	stores := make([]*DB, replicas)
	for i := range stores {
		stores[i] = openAt(t, loc)
	}
	ctx := testCtx(t)
	const sched = "CRON_TZ=UTC */1 * * * *"
	base := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	repo := testPipeline.Repository
	for round := 1; round <= rounds; round++ {
		var from time.Time
		if round > 1 {
			from = base.Add(time.Duration(round-1) * time.Minute)
		}
		tick := base.Add(time.Duration(round) * time.Minute)
		prevHead, head := "", fmt.Sprintf("c%d", round)
		if round > 1 {
			prevHead = fmt.Sprintf("c%d", round-1)
		}
		var wg sync.WaitGroup
		won := make([]int, 2)
		var mu sync.Mutex
		errs := make(chan error, 2*replicas)
		for _, s := range stores {
			wg.Add(2)
			go func() {
				defer wg.Done()
				_, err := s.CreateRuns(ctx, []NewRun{{Pipeline: testPipeline, Commit: head, Trigger: TriggerCron}},
					Handled{Tick: &TickClaim{Pipeline: testPipeline, Schedule: sched, From: from, Tick: tick}})
				switch {
				case err == nil:
					mu.Lock()
					won[0]++
					mu.Unlock()
				case !errors.Is(err, ErrHandledElsewhere):
					errs <- err
				}
			}()
			go func() {
				defer wg.Done()
				_, err := s.CreateRuns(ctx, []NewRun{{Pipeline: testPipeline, Commit: head, Branch: "main", Trigger: TriggerPush}},
					Handled{Head: &HeadClaim{Repository: repo, Branch: "main", From: prevHead, To: head}})
				switch {
				case err == nil:
					mu.Lock()
					won[1]++
					mu.Unlock()
				case !errors.Is(err, ErrHandledElsewhere):
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v", round, err)
		}
		if won[0] != 1 || won[1] != 1 {
			t.Fatalf("round %d: the tick was won %d times and the head %d times, want once each", round, won[0], won[1])
		}
	}
	all, err := stores[0].ListRuns(ctx, testPipeline, 0)
	if err != nil || len(all) != 2*rounds {
		t.Fatalf("%d runs (%v), want %d", len(all), err, 2*rounds)
	}
	for i, r := range all {
		if want := int64(2*rounds - i); r.BuildID != want {
			t.Fatalf("BUILD_IDs not gap-free: run %d has %d, want %d", i, r.BuildID, want)
		}
	}
}
