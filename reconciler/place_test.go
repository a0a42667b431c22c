package reconciler

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/sources"
	"github.com/slipwayhq/slipway/store"
)

// startOnePlaceRunner starts a dispatcher of a real Runner on rs (the store, or one
// wrapping it) with one place for runs in flight; claims go to st.
func startOnePlaceRunner(t *testing.T, rs, st store.Store) (context.Context, *Dispatcher) {
	t.Helper()
	runner := NewRunner(RunnerOptions{Store: rs, Sources: emptyCheckout{}, Config: &config.Config{DataDir: t.TempDir()},
		Log: logrus.NewEntry(logrus.New())})
	ctx, cancel := context.WithCancel(context.Background())
	d, err := StartDispatcher(ctx, DispatcherOptions{Executor: runner, Claims: st, Description: "test",
		MaxInFlight: 1, Log: logrus.NewEntry(logrus.New())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); d.Wait() })
	return ctx, d
}

// slowTaskEnd holds the write that ends the tasks of one pipeline until release closes.
type slowTaskEnd struct {
	store.Store
	pipeline string
	entered  chan struct{}
	release  chan struct{}
}

func (s *slowTaskEnd) EndTask(ctx context.Context, ref store.PipelineRef, buildID int64, name string, end store.TaskEnd) (store.Task, error) {
	if ref.Name == s.pipeline && end.To.Final() {
		s.entered <- struct{}{}
		<-s.release
	}
	return s.Store.EndTask(ctx, ref, buildID, name, end)
}

// TestTheRunsEndNeedsNoPlace: with one place for runs in flight, a run whose last task has
// done its work gives the place up while its end is recorded, so a slow store write does
// not hold another pipeline's run back.
func TestTheRunsEndNeedsNoPlace(t *testing.T) {
	st := testStore(t)
	slow := &slowTaskEnd{Store: st, pipeline: "app", entered: make(chan struct{}, 1), release: make(chan struct{})}
	ctx, d := startOnePlaceRunner(t, slow, st)
	var released sync.Once
	open := func() { released.Do(func() { close(slow.release) }) }
	t.Cleanup(open) // before the dispatcher's: a failed test must not leave the run stuck
	submit := func(name string) store.Run {
		ps, diags := pipeline.Parse("p.yaml", []byte("name: "+name+`
stages:
  - name: check
    tasks:
      - name: smoke
        type: script
        image: busybox
        script: "true"
`))
		if err := diags.Err(); err != nil {
			t.Fatal(err)
		}
		run, err := d.Submit(ctx, RunJob(&Checkout{Repo: sources.Repo{Name: testRef.Repository}}, ps[0], store.TriggerPush, 0))
		if err != nil {
			t.Fatal(err)
		}
		return run
	}
	held := submit("app")
	select {
	case <-slow.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first run's task never ended")
	}
	other := submit("other")
	select {
	case <-d.Done(other.Pipeline, other.BuildID):
	case <-time.After(10 * time.Second):
		t.Fatal("the second run waited for the place of a run that only records its end")
	}
	open()
	select {
	case <-d.Done(held.Pipeline, held.BuildID):
	case <-time.After(10 * time.Second):
		t.Fatal("the first run never ended")
	}
	if got, _ := st.GetRun(context.Background(), held.Pipeline, held.BuildID); !got.Status.Final() {
		t.Fatalf("first run %s, want it ended", got.Status)
	}
}

// refusedTaskEnd refuses every move of a task to its end, as the store does when someone
// else moved the task first.
type refusedTaskEnd struct{ store.Store }

func (s refusedTaskEnd) EndTask(ctx context.Context, ref store.PipelineRef, buildID int64, name string, end store.TaskEnd) (store.Task, error) {
	if end.To.Final() {
		return store.Task{}, &store.TransitionError{What: name, From: string(end.From), To: string(end.To), Current: "cancelled"}
	}
	return s.Store.EndTask(ctx, ref, buildID, name, end)
}

// TestATaskEndNotRecordedKeepsItsLines: the task's last lines ride with its end; when the
// end cannot be recorded, the lines are stored on their own.
func TestATaskEndNotRecordedKeepsItsLines(t *testing.T) {
	st := testStore(t)
	ctx := context.Background()
	run, err := st.CreateRun(ctx, store.NewRun{Pipeline: testRef, Trigger: store.TriggerManual,
		Tasks: []store.NewTask{{Stage: "check", Name: "smoke", Type: "script"}}})
	if err != nil {
		t.Fatal(err)
	}
	runner := NewRunner(RunnerOptions{Store: refusedTaskEnd{st}, Sources: emptyCheckout{}, Config: &config.Config{DataDir: t.TempDir()},
		Log: logrus.NewEntry(logrus.New())})
	runner.endTask(ctx, run, "check", "smoke", store.TaskEnd{From: store.TaskRunning, To: store.TaskFailed,
		Logs: []store.LogLine{{Stream: store.StreamSystem, Text: "why it failed"}}})
	lines, err := st.ReadLogs(ctx, run.Pipeline, run.BuildID, store.LogQuery{Tasks: []string{"smoke"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 1 || lines[0].Text != "why it failed" {
		t.Fatalf("lines %+v, want the task's last line kept", lines)
	}
}

// A run gives its place up only if it is idle when asked under the place's lock: a sibling
// task counts itself before it takes the place under that lock, so it either keeps the run
// from giving the place up or waits for one; it never works on a place given up behind it.
func TestAPlaceIsGivenUpOnlyIfIdleUnderItsLock(t *testing.T) {
	d := &Dispatcher{inFlight: make(chan struct{}, 1)}
	d.inFlight <- struct{}{}
	p := &place{d: d, held: true}
	asked := 0
	p.releaseIf(func() bool {
		asked++
		if p.mu.TryLock() {
			p.mu.Unlock()
			t.Fatal("idle was asked without the place's lock held")
		}
		return false
	})
	if asked != 1 || !p.held || len(d.inFlight) != 1 {
		t.Fatalf("not idle: asked %d, held %v, in flight %d; want the place kept", asked, p.held, len(d.inFlight))
	}

	s := &RunState{place: p}
	s.running, s.builds = 2, 1 // one task waits for a build slot, its sibling works
	s.yieldIfIdle()
	if !p.held {
		t.Fatal("the run gave its place up while a sibling task works")
	}
	s.running = 1
	s.yieldIfIdle()
	if p.held || len(d.inFlight) != 0 {
		t.Fatalf("every running task waits for a build slot, yet held %v, in flight %d", p.held, len(d.inFlight))
	}
}
