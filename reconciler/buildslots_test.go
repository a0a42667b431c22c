package reconciler

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/builder"
	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/reconciler/scriptrun/localexec"
	"github.com/slipwayhq/slipway/sources"
	"github.com/slipwayhq/slipway/store"
)

// startBuildBoundRunner starts a dispatcher with room for 4 runs over a real Runner whose
// builds and scripts share slots; scripts run on the local executor, as processes.
func startBuildBoundRunner(t *testing.T, st store.Store, slots *BuildSlots, b ImageBuilder) (context.Context, *Dispatcher) {
	t.Helper()
	cfg := &config.Config{DataDir: t.TempDir(), Executor: config.Executor{Local: &config.LocalExecutor{Enabled: true}},
		Registry:     config.Registry{Default: "registry.test"},
		Repositories: []config.Repository{{Name: testRef.Repository, Policy: config.Grants{Push: []string{"*"}}}}}
	runner := NewRunner(RunnerOptions{Store: st, Sources: emptyCheckout{}, Config: cfg, Builder: b,
		Executors: Executors{pipeline.ExecutorLocal: localexec.New()}, BuildSlots: slots, Log: logrus.NewEntry(logrus.New())})
	t.Cleanup(runner.Close)
	ctx, cancel := context.WithCancel(context.Background())
	d, err := StartDispatcher(ctx, DispatcherOptions{Executor: runner, Claims: st, Description: "test",
		MaxInFlight: 4, Log: logrus.NewEntry(logrus.New())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); d.Wait() })
	return ctx, d
}

// submitTask submits a run of pipeline name, of one task (task's YAML, indented as a list
// item of a stage's tasks).
func submitTask(ctx context.Context, t *testing.T, d *Dispatcher, name, task string) store.Run {
	t.Helper()
	ps, diags := pipeline.Parse("p.yaml", []byte("name: "+name+"\nstages:\n  - name: build\n    tasks:\n"+task))
	if err := diags.Err(); err != nil {
		t.Fatal(err)
	}
	run, err := d.Submit(ctx, RunJob(&Checkout{Repo: sources.Repo{Name: testRef.Repository}}, ps[0], store.TriggerManual, 0))
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// localScript is a script task on the local executor.
func localScript(script string) string {
	return "      - name: smoke\n        type: script\n        executor: local\n        script: '" + script + "'\n"
}

// waitingLines are the lines of the run's task that say it waits for a build slot.
func waitingLines(t *testing.T, st store.Store, run store.Run, task string) int {
	t.Helper()
	lines, err := st.ReadLogs(context.Background(), run.Pipeline, run.BuildID, store.LogQuery{Tasks: []string{task}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l.Text, "waiting for a build slot") {
			n++
		}
	}
	return n
}

func waitEnded(t *testing.T, st store.Store, d *Dispatcher, run store.Run) store.Run {
	t.Helper()
	select {
	case <-d.Done(run.Pipeline, run.BuildID):
	case <-time.After(10 * time.Second):
		t.Fatalf("run %s #%d never ended", run.Pipeline.Name, run.BuildID)
	}
	got, err := st.GetRun(context.Background(), run.Pipeline, run.BuildID)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// TestBuildSlotsBoundScriptsAcrossRuns: with runs.maxBuildsInFlight 1, two pipelines' runs
// are in flight together but their scripts (real processes) execute one after the other:
// the second waits, says so once, and starts when the first has ended; both succeed.
func TestBuildSlotsBoundScriptsAcrossRuns(t *testing.T) {
	st := testStore(t)
	slots := NewBuildSlots(1)
	ctx, d := startBuildBoundRunner(t, st, slots, nil)
	dir := t.TempDir()
	started, release := filepath.Join(dir, "first-started"), filepath.Join(dir, "release")
	t.Cleanup(func() { _ = os.WriteFile(release, nil, 0o600) }) // a failed test leaves no script waiting
	first := submitTask(ctx, t, d, "first",
		localScript("touch "+started+"; while [ ! -e "+release+" ]; do sleep 0.02; done"))
	waitFor(t, "the first script to start", func() bool { return exists(started) })
	secondRan := filepath.Join(dir, "second-ran")
	second := submitTask(ctx, t, d, "second", localScript("touch "+secondRan))
	waitFor(t, "the second script to wait for a build slot", func() bool { return waitingLines(t, st, second, "smoke") > 0 })
	if exists(secondRan) {
		t.Fatal("the second script ran while the first held the only build slot")
	}
	if running, _ := d.InFlight(); running != 2 {
		t.Fatalf("%d runs in flight, want both: the wait is for a build slot, not a place", running)
	}
	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, run := range []store.Run{first, second} {
		if got := waitEnded(t, st, d, run); got.Status != store.RunSucceeded {
			t.Fatalf("run %s: %s (%s), want succeeded", run.Pipeline.Name, got.Status, got.Reason)
		}
	}
	if !exists(secondRan) {
		t.Fatal("the second script never ran")
	}
	if n := waitingLines(t, st, second, "smoke"); n != 1 {
		t.Fatalf("the second task said %d times that it waits for a build slot, want once", n)
	}
	if slots.Peak() != 1 || slots.InUse() != 0 {
		t.Fatalf("build slots: peak %d, %d in use after the runs; want 1 and 0", slots.Peak(), slots.InUse())
	}
}

// blockingBuilder is an image builder whose build holds until release closes.
type blockingBuilder struct {
	started chan struct{}
	release chan struct{}
}

func (b *blockingBuilder) Build(ctx context.Context, req builder.Request) (builder.Result, error) {
	close(b.started)
	select {
	case <-b.release:
	case <-ctx.Done():
		return builder.Result{}, ctx.Err()
	}
	image := req.Registry + "/" + req.Image + ":" + req.Tag
	return builder.Result{Image: image, Digest: "sha256:" + strings.Repeat("0", 64), Tags: []string{req.Tag}}, nil
}

// TestATaskWaitingForABuildSlotCanBeCancelled: an image build holds the only build slot; a
// script task of another run waits for it, and cancelling that run ends the task cancelled
// without its script having run. The build then ends as usual.
func TestATaskWaitingForABuildSlotCanBeCancelled(t *testing.T) {
	st := testStore(t)
	slots := NewBuildSlots(1)
	b := &blockingBuilder{started: make(chan struct{}), release: make(chan struct{})}
	ctx, d := startBuildBoundRunner(t, st, slots, b)
	building := submitTask(ctx, t, d, "image", "      - name: image\n        type: build-image\n        image: app\n        tag: v${BUILD_ID}\n")
	select {
	case <-b.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the build never started")
	}
	ran := filepath.Join(t.TempDir(), "ran")
	waiting := submitTask(ctx, t, d, "check", localScript("touch "+ran))
	waitFor(t, "the script to wait for a build slot", func() bool { return waitingLines(t, st, waiting, "smoke") > 0 })
	if err := d.Cancel(ctx, waiting.Pipeline, waiting.BuildID, "not needed"); err != nil {
		t.Fatal(err)
	}
	if got := waitEnded(t, st, d, waiting); got.Status != store.RunCancelled {
		t.Fatalf("the waiting run ended %s (%s), want cancelled", got.Status, got.Reason)
	}
	tasks, err := st.ListTasks(ctx, waiting.Pipeline, waiting.BuildID)
	if err != nil || len(tasks) != 1 || tasks[0].Status != store.TaskCancelled {
		t.Fatalf("tasks %+v, %v; want the one task cancelled", tasks, err)
	}
	if exists(ran) {
		t.Fatal("the cancelled task's script ran")
	}
	close(b.release)
	if got := waitEnded(t, st, d, building); got.Status != store.RunSucceeded {
		t.Fatalf("the build's run ended %s (%s), want succeeded", got.Status, got.Reason)
	}
	if slots.Peak() != 1 || slots.InUse() != 0 {
		t.Fatalf("build slots: peak %d, %d in use after the runs; want 1 and 0", slots.Peak(), slots.InUse())
	}
}
