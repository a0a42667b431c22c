package store

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRunLifecycle(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	s, _ := openTest(t, WithClock(clock.now))
	ctx := testCtx(t)

	r, err := s.CreateRun(ctx, NewRun{Pipeline: testPipeline, Commit: "abc123", Branch: "main", Tag: "v1.0.0", Trigger: TriggerPush})
	if err != nil {
		t.Fatal(err)
	}
	want := Run{Pipeline: testPipeline, BuildID: 1, Commit: "abc123", Branch: "main", Tag: "v1.0.0",
		Trigger: TriggerPush, Status: RunQueued, CreatedAt: clock.t}
	if r != want {
		t.Fatalf("created %+v\nwant    %+v", r, want)
	}

	clock.advance(time.Second)
	r, err = s.TransitionRun(ctx, testPipeline, 1, RunQueued, RunRunning, "")
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != RunRunning || !r.StartedAt.Equal(clock.t) || !r.FinishedAt.IsZero() {
		t.Fatalf("after start: %+v", r)
	}
	started := clock.t
	clock.advance(90 * time.Second)
	r, err = s.TransitionRun(ctx, testPipeline, 1, RunRunning, RunFailed, "health wait: deployment web: ImagePullBackOff")
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != RunFailed || !r.StartedAt.Equal(started) || !r.FinishedAt.Equal(clock.t) || r.Reason != "health wait: deployment web: ImagePullBackOff" {
		t.Fatalf("after failure: %+v", r)
	}
	got, err := s.GetRun(ctx, testPipeline, 1)
	if err != nil || got != r {
		t.Fatalf("GetRun = %+v, %v; want %+v", got, err, r)
	}

	// A re-run names its parent; a parent that does not exist is refused.
	rerun, err := s.CreateRun(ctx, NewRun{Pipeline: testPipeline, Commit: "abc123", Trigger: TriggerManual, ParentBuildID: 1})
	if err != nil || rerun.BuildID != 2 || rerun.ParentBuildID != 1 {
		t.Fatalf("re-run: %+v, %v", rerun, err)
	}
	if _, err := s.CreateRun(ctx, NewRun{Pipeline: testPipeline, Trigger: TriggerRollback, ParentBuildID: 99}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("re-run of missing parent: %v, want ErrNotFound", err)
	}
	if _, err := s.CreateRun(ctx, NewRun{Pipeline: testPipeline, Trigger: "webhook"}); err == nil {
		t.Fatal("unknown trigger accepted")
	}
	if _, err := s.CreateRun(ctx, NewRun{Pipeline: PipelineRef{Name: "x"}, Trigger: TriggerPush}); err == nil {
		t.Fatal("pipeline without repository accepted")
	}
	// Refused creations allocate nothing.
	if r := mustRun(t, s, testPipeline); r.BuildID != 3 {
		t.Fatalf("after refused creations BUILD_ID %d, want 3", r.BuildID)
	}
}

func TestListRunsNewestFirst(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	other := PipelineRef{Repository: "git.example/team/other", Name: "deploy"}
	for i := 0; i < 5; i++ {
		mustRun(t, s, testPipeline)
		mustRun(t, s, other)
	}
	runs, err := s.ListRuns(ctx, testPipeline, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 || runs[0].BuildID != 5 || runs[1].BuildID != 4 || runs[2].BuildID != 3 {
		t.Fatalf("ListRuns(limit 3) = %v", runs)
	}
	for _, r := range runs {
		if r.Pipeline != testPipeline {
			t.Fatalf("run of %s listed for %s", r.Pipeline, testPipeline)
		}
	}
	if all, err := s.ListRuns(ctx, testPipeline, 0); err != nil || len(all) != 5 {
		t.Fatalf("ListRuns(no limit) = %d runs, %v", len(all), err)
	}
	if none, err := s.ListRuns(ctx, PipelineRef{Repository: "nope", Name: "nope"}, 10); err != nil || len(none) != 0 {
		t.Fatalf("ListRuns(unknown) = %v, %v", none, err)
	}
	ps, err := s.ListPipelines(ctx)
	if err != nil || len(ps) != 2 || ps[0].Ref != testPipeline || ps[1].Ref != other || ps[0].LastBuildID != 5 {
		t.Fatalf("ListPipelines = %+v, %v", ps, err)
	}
	if _, err := s.GetRun(ctx, testPipeline, 6); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetRun(6) = %v, want ErrNotFound", err)
	}
	if _, err := s.GetPipeline(ctx, PipelineRef{Repository: "nope", Name: "nope"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetPipeline(unknown) = %v, want ErrNotFound", err)
	}
	p, err := s.EnsurePipeline(ctx, PipelineRef{Repository: "git.example/new", Name: "ci"})
	if err != nil || p.LastBuildID != 0 || p.CreatedAt.IsZero() {
		t.Fatalf("EnsurePipeline(new) = %+v, %v", p, err)
	}
	if again, err := s.EnsurePipeline(ctx, p.Ref); err != nil || again != p {
		t.Fatalf("EnsurePipeline(existing) = %+v, %v; want %+v", again, err, p)
	}
}

func TestRunTransitionsRefused(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	mustRun(t, s, testPipeline)
	if _, err := s.TransitionRun(ctx, testPipeline, 1, RunQueued, RunRunning, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TransitionRun(ctx, testPipeline, 1, RunRunning, RunSucceeded, ""); err != nil {
		t.Fatal(err)
	}

	// Illegal whatever the current state.
	illegal := [][2]RunStatus{
		{RunSucceeded, RunRunning}, {RunFailed, RunQueued}, {RunQueued, RunSucceeded},
		{RunQueued, RunTimedOut}, {RunRunning, RunRunning}, {RunSuperseded, RunRunning}, {RunRunning, "done"},
	}
	for _, m := range illegal {
		_, err := s.TransitionRun(ctx, testPipeline, 1, m[0], m[1], "")
		var te *TransitionError
		if !errors.As(err, &te) || !te.Illegal || !errors.Is(err, ErrIllegalTransition) || errors.Is(err, ErrStatusConflict) {
			t.Errorf("%s → %s: %v, want an illegal-transition error", m[0], m[1], err)
		}
	}

	// Legal, but the run is no longer where the caller thinks: a lost race.
	_, err := s.TransitionRun(ctx, testPipeline, 1, RunRunning, RunFailed, "late")
	var te *TransitionError
	if !errors.As(err, &te) || te.Current != string(RunSucceeded) || !errors.Is(err, ErrStatusConflict) {
		t.Fatalf("stale running → failed: %v, want a conflict naming succeeded", err)
	}
	if r, _ := s.GetRun(ctx, testPipeline, 1); r.Status != RunSucceeded || r.Reason != "" {
		t.Fatalf("refused move changed the run: %+v", r)
	}
	if _, err := s.TransitionRun(ctx, testPipeline, 42, RunQueued, RunRunning, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("transition of missing run: %v, want ErrNotFound", err)
	}
}

// Exactly one of many goroutines wins the same compare-and-set.
func TestRunTransitionCompareAndSet(t *testing.T) {
	s, path := openTest(t)
	b := openAt(t, path)
	mustRun(t, s, testPipeline)
	const racers = 8
	results := make(chan error, racers)
	for i := 0; i < racers; i++ {
		st := Store(s)
		if i%2 == 1 {
			st = b
		}
		go func() {
			_, err := st.TransitionRun(testCtx(t), testPipeline, 1, RunQueued, RunRunning, "")
			results <- err
		}()
	}
	wins := 0
	for i := 0; i < racers; i++ {
		err := <-results
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, ErrStatusConflict):
			t.Fatalf("loser got %v, want ErrStatusConflict", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d goroutines won queued → running, want exactly 1", wins)
	}
}

func TestMarkStaleRuns(t *testing.T) {
	s, path := openTest(t)
	ctx := testCtx(t)
	queued := mustRun(t, s, testPipeline)  // 1: left queued
	running := mustRun(t, s, testPipeline) // 2: left running mid-task
	done := mustRun(t, s, testPipeline)    // 3: finished before the crash
	other := mustRun(t, s, PipelineRef{Repository: "r", Name: "p"})
	for _, r := range []Run{running, done, other} {
		if _, err := s.TransitionRun(ctx, r.Pipeline, r.BuildID, RunQueued, RunRunning, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.TransitionRun(ctx, testPipeline, done.BuildID, RunRunning, RunSucceeded, "ok"); err != nil {
		t.Fatal(err)
	}
	for _, nt := range []NewTask{{Stage: "Build", Name: "image", Type: "build-image"}, {Stage: "Deploy", Name: "web", Type: "deploy-yaml"}} {
		if _, err := s.AddTask(ctx, testPipeline, running.BuildID, nt); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.TransitionTask(ctx, testPipeline, running.BuildID, "image", TaskPending, TaskRunning, ""); err != nil {
		t.Fatal(err)
	}
	_ = s.Close() // the "crash"

	s = openAt(t, path)
	stale, err := s.MarkStaleRuns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(stale) != 3 {
		t.Fatalf("marked %d runs, want 3 (queued, running, other pipeline's running): %+v", len(stale), stale)
	}
	for _, ref := range []Run{queued, running, other} {
		r, err := s.GetRun(ctx, ref.Pipeline, ref.BuildID)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != RunInterrupted || !strings.HasPrefix(r.Reason, InterruptedReason) || r.FinishedAt.IsZero() {
			t.Errorf("run %s #%d after recovery: %+v", ref.Pipeline, ref.BuildID, r)
		}
		in, err := s.GetInterruption(ctx, ref.Pipeline, ref.BuildID)
		if err != nil || in.Outcome != InterruptionPending || in.Run.BuildID != ref.BuildID {
			t.Errorf("interruption of %s #%d: %+v, %v", ref.Pipeline, ref.BuildID, in, err)
		}
	}
	// The record names what was running: the task that may be half done.
	if in, _ := s.GetInterruption(ctx, testPipeline, running.BuildID); !slices.Equal(in.Tasks, []string{"image"}) ||
		!strings.HasSuffix(in.Run.Reason, "while running image") {
		t.Errorf("interruption of the running run: tasks %v, reason %q", in.Tasks, in.Run.Reason)
	}
	if in, _ := s.GetInterruption(ctx, testPipeline, queued.BuildID); len(in.Tasks) != 0 ||
		!strings.HasSuffix(in.Run.Reason, "before any task started") {
		t.Errorf("interruption of the queued run: tasks %v, reason %q", in.Tasks, in.Run.Reason)
	}
	if _, err := s.GetInterruption(ctx, testPipeline, done.BuildID); !errors.Is(err, ErrNotFound) {
		t.Errorf("interruption of a finished run: %v, want ErrNotFound", err)
	}
	if r, _ := s.GetRun(ctx, testPipeline, done.BuildID); r.Status != RunSucceeded || r.Reason != "ok" {
		t.Errorf("finished run changed by recovery: %+v", r)
	}
	tasks, err := s.ListTasks(ctx, testPipeline, running.BuildID)
	if err != nil {
		t.Fatal(err)
	}
	if tasks[0].Status != TaskFailed || tasks[0].Reason != InterruptedReason || tasks[1].Status != TaskCancelled {
		t.Errorf("tasks after recovery: %+v", tasks)
	}
	if again, err := s.MarkStaleRuns(ctx); err != nil || len(again) != 0 {
		t.Fatalf("second recovery: %v, %v; want nothing to do", again, err)
	}
}

// Why queued runs wait is recorded for all of them in one write; a run that left the
// queue meanwhile keeps its own reason.
func TestNoteQueuedRunsNotesTheQueuedOnesInOneWrite(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	other := PipelineRef{Repository: testPipeline.Repository, Name: "other"}
	a, b, started := mustRun(t, s, testPipeline), mustRun(t, s, other), mustRun(t, s, testPipeline)
	if _, err := s.TransitionRun(ctx, testPipeline, started.BuildID, RunQueued, RunRunning, "started"); err != nil {
		t.Fatal(err)
	}
	writes, _ := s.WriteStats()
	if err := s.NoteQueuedRuns(ctx, []Run{a, b, started}, "waiting for a place"); err != nil {
		t.Fatal(err)
	}
	if after, _ := s.WriteStats(); after != writes+1 {
		t.Fatalf("%d writes for three runs' reasons, want 1", after-writes)
	}
	for _, want := range []struct {
		run    Run
		reason string
	}{{a, "waiting for a place"}, {b, "waiting for a place"}, {started, "started"}} {
		got, err := s.GetRun(ctx, want.run.Pipeline, want.run.BuildID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Reason != want.reason {
			t.Errorf("%s #%d: reason %q, want %q", got.Pipeline.Name, got.BuildID, got.Reason, want.reason)
		}
	}
	// A run no longer on record is skipped; the others are noted.
	if err := s.NoteQueuedRuns(ctx, []Run{{Pipeline: testPipeline, BuildID: 99}, a}, "again"); err != nil {
		t.Fatalf("a run not on record among others: %v", err)
	}
	if got, err := s.GetRun(ctx, a.Pipeline, a.BuildID); err != nil || got.Reason != "again" {
		t.Fatalf("beside a run not on record: reason %q (%v), want %q", got.Reason, err, "again")
	}
}
