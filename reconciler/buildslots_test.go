package reconciler

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/builder"
	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/reconciler/scriptrun"
	"github.com/slipwayhq/slipway/reconciler/scriptrun/localexec"
	"github.com/slipwayhq/slipway/sources"
	"github.com/slipwayhq/slipway/store"
)

// buildBound is what startBuildBoundRunner starts: a real Runner whose builds and scripts
// share slots, with room for places runs (4 if 0). Scripts run on the local executor, as
// processes, or on executor kubernetes, which is cluster; checkouts come from src
// (emptyCheckout if nil) into dataDir (a new temporary folder if "").
type buildBound struct {
	slots   *BuildSlots
	builder ImageBuilder
	places  int
	cluster *clusterScripts
	src     Sources
	dataDir string
	tags    TagPruner
}

func startBuildBoundRunner(t *testing.T, st store.Store, o buildBound) (context.Context, *Dispatcher) {
	t.Helper()
	if o.places == 0 {
		o.places = 4
	}
	if o.src == nil {
		o.src = emptyCheckout{}
	}
	if o.dataDir == "" {
		o.dataDir = t.TempDir()
	}
	cfg := &config.Config{DataDir: o.dataDir, Executor: config.Executor{Local: &config.LocalExecutor{Enabled: true},
		Kubernetes: &config.KubernetesExecutor{Cluster: "c", Namespace: "scripts"}},
		Registry:     config.Registry{Default: "registry.test"},
		Repositories: []config.Repository{{Name: testRef.Repository, Policy: config.Grants{Push: []string{"*"}}}}}
	executors := Executors{pipeline.ExecutorLocal: localexec.New()}
	if o.cluster != nil {
		executors[pipeline.ExecutorKubernetes] = o.cluster
	}
	runner := NewRunner(RunnerOptions{Store: st, Sources: o.src, Config: cfg, Builder: o.builder, Tags: o.tags,
		Executors: executors, BuildSlots: o.slots, Log: logrus.NewEntry(logrus.New())})
	t.Cleanup(runner.Close)
	ctx, cancel := context.WithCancel(context.Background())
	d, err := StartDispatcher(ctx, DispatcherOptions{Executor: runner, Claims: st, Description: "test",
		MaxInFlight: o.places, Log: logrus.NewEntry(logrus.New())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); d.Wait() })
	return ctx, d
}

// clusterScripts stands in for executor kubernetes: a script "hold" runs until open is
// called, any other ends at once; both exit 0.
type clusterScripts struct {
	release chan struct{}
	opened  sync.Once
	mu      sync.Mutex
	running int
}

// newClusterScripts makes one whose held scripts go on when the test ends, if not before.
func newClusterScripts(t *testing.T) *clusterScripts {
	c := &clusterScripts{release: make(chan struct{})}
	t.Cleanup(c.open)
	return c
}

func (c *clusterScripts) open() { c.opened.Do(func() { close(c.release) }) }

// holdASlot takes a build slot until the returned release, or the end of the test.
func holdASlot(ctx context.Context, t *testing.T, slots *BuildSlots) (release func()) {
	t.Helper()
	held, err := slots.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(held) }
	t.Cleanup(release)
	return release
}

func (c *clusterScripts) Run(ctx context.Context, s scriptrun.Spec) (scriptrun.Result, error) {
	c.mu.Lock()
	c.running++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running--
		c.mu.Unlock()
	}()
	if s.Script == "hold" {
		select {
		case <-c.release:
		case <-ctx.Done():
			return scriptrun.Result{}, ctx.Err()
		}
	}
	return scriptrun.Result{}, nil
}

func (c *clusterScripts) Running() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running
}

// clusterScript is a script task on executor kubernetes.
func clusterScript(name, script string) string {
	return "      - name: " + name + "\n        type: script\n        executor: kubernetes\n        image: busybox\n        script: " + script + "\n"
}

// submitTask submits a run of pipeline name, of one task (task's YAML, indented as a list
// item of a stage's tasks).
func submitTask(ctx context.Context, t *testing.T, d *Dispatcher, name, task string) store.Run {
	t.Helper()
	return submitPipeline(ctx, t, d, "name: "+name+"\nstages:\n  - name: build\n    tasks:\n"+task)
}

// submitPipeline submits a run of the pipeline in src.
func submitPipeline(ctx context.Context, t *testing.T, d *Dispatcher, src string) store.Run {
	t.Helper()
	ps, diags := pipeline.Parse("p.yaml", []byte(src))
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
	ctx, d := startBuildBoundRunner(t, st, buildBound{slots: slots})
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
	if running, waiting := d.InFlight(); running != 1 || waiting != 0 {
		t.Fatalf("%d runs in flight, %d waiting for a place; want 1 and 0: the run waiting for a build slot gives its place up", running, waiting)
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
	ctx, d := startBuildBoundRunner(t, st, buildBound{slots: slots, builder: b})
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

// TestARunWaitingForABuildSlotHoldsNoPlace: with one place for runs in flight and one build
// slot (held elsewhere), a run whose script waits for the slot gives its place up, so a run
// that needs no slot starts meanwhile. Once the slot is free the script runs without a
// place, and the run's next task waits for the place until the other run has ended: the
// bound of one run in flight holds throughout, and the slot is given back.
func TestARunWaitingForABuildSlotHoldsNoPlace(t *testing.T) {
	st := testStore(t)
	slots := NewBuildSlots(1)
	cs := newClusterScripts(t)
	ctx, d := startBuildBoundRunner(t, st, buildBound{slots: slots, places: 1, cluster: cs})
	held := holdASlot(ctx, t, slots)
	ran := filepath.Join(t.TempDir(), "ran")
	builds := submitTask(ctx, t, d, "builds", localScript("touch "+ran)+
		"  - name: after\n    tasks:\n"+clusterScript("next", "\"true\""))
	waitFor(t, "the script to wait for a build slot", func() bool { return waitingLines(t, st, builds, "smoke") > 0 })
	deploys := submitTask(ctx, t, d, "deploys", clusterScript("hold", "hold"))
	waitFor(t, "the other run to start while the first waits for a build slot", func() bool { return cs.Running() == 1 })
	if running, _ := d.InFlight(); running != 1 {
		t.Fatalf("%d runs in flight, want the one that needs no build slot", running)
	}

	held()
	waitFor(t, "the first run's next task to wait for the place", func() bool {
		_, waiting := d.InFlight()
		return waiting == 1 && exists(ran)
	})
	cs.open()
	for _, run := range []store.Run{deploys, builds} {
		if got := waitEnded(t, st, d, run); got.Status != store.RunSucceeded {
			t.Fatalf("run %s: %s (%s), want succeeded", run.Pipeline.Name, got.Status, got.Reason)
		}
	}
	if peak := d.PeakInFlight(); peak != 1 {
		t.Fatalf("peak of runs in flight %d, want 1 (runs.maxInFlight)", peak)
	}
	if running, waiting := d.InFlight(); running != 0 || waiting != 0 || slots.InUse() != 0 {
		t.Fatalf("after the runs: %d in flight, %d waiting for a place, %d build slots in use; want none", running, waiting, slots.InUse())
	}
}

// TestClusterScriptsTakeNoBuildSlot: a script on executor kubernetes runs on the cluster's
// cores, so it runs while every build slot is held, and says nothing of waiting for one.
func TestClusterScriptsTakeNoBuildSlot(t *testing.T) {
	st := testStore(t)
	slots := NewBuildSlots(1)
	cs := newClusterScripts(t)
	ctx, d := startBuildBoundRunner(t, st, buildBound{slots: slots, cluster: cs})
	holdASlot(ctx, t, slots)
	run := submitTask(ctx, t, d, "cluster", clusterScript("smoke", "\"true\""))
	if got := waitEnded(t, st, d, run); got.Status != store.RunSucceeded {
		t.Fatalf("run: %s (%s), want succeeded while the only build slot is held", got.Status, got.Reason)
	}
	if n := waitingLines(t, st, run, "smoke"); n != 0 {
		t.Fatalf("the cluster's script said %d times that it waits for a build slot", n)
	}
}

// TestUnderBuildSlotGivesTheSlotBack: however the work ends (an error, a panic) or the
// wait for the slot ends (cancelled), the slot is free again and the task no longer counts
// as building; the work never runs without a slot.
func TestUnderBuildSlotGivesTheSlotBack(t *testing.T) {
	slots := NewBuildSlots(1)
	rc := &runContext{state: &RunState{}, log: logrus.NewEntry(logrus.New()), preview: true}
	tl := rc.taskLog("smoke")
	boom := errors.New("boom")
	check := func(what string) {
		t.Helper()
		if slots.InUse() != 0 || rc.state.builds != 0 {
			t.Fatalf("after %s: %d slots in use, %d tasks building; want none", what, slots.InUse(), rc.state.builds)
		}
	}
	if _, err := underBuildSlot(context.Background(), rc, slots, tl, func() (int, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the work's", err)
	}
	check("an error")
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the work's panic was lost")
			}
		}()
		_, _ = underBuildSlot(context.Background(), rc, slots, tl, func() (int, error) { panic("boom") })
	}()
	check("a panic")

	held, err := slots.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(boom)
	ran := false
	if _, err := underBuildSlot(ctx, rc, slots, tl, func() (int, error) { ran = true; return 0, nil }); !errors.Is(err, boom) || ran {
		t.Fatalf("cancelled wait: err = %v, ran %v; want the cause and no work", err, ran)
	}
	held()
	check("a cancelled wait")
}

// TestASiblingsEndGivesThePlaceUp: in a parallel stage, a task waiting for a build slot
// leaves its run's place to a sibling that works; when that sibling ends, the place goes
// to another run, since the task left only waits for the slot.
func TestASiblingsEndGivesThePlaceUp(t *testing.T) {
	st := testStore(t)
	slots := NewBuildSlots(1)
	cs := newClusterScripts(t)
	ctx, d := startBuildBoundRunner(t, st, buildBound{slots: slots, places: 1, cluster: cs})
	holdASlot(ctx, t, slots)
	ran := filepath.Join(t.TempDir(), "ran")
	builds := submitPipeline(ctx, t, d, "name: builds\nstages:\n  - name: both\n    parallel: true\n    tasks:\n"+
		localScript("touch "+ran)+clusterScript("hold", "hold"))
	waitFor(t, "one task to wait for a build slot while its sibling works", func() bool {
		return waitingLines(t, st, builds, "smoke") > 0 && cs.Running() == 1
	})
	if running, _ := d.InFlight(); running != 1 {
		t.Fatalf("%d runs in flight, want the run whose sibling task works to keep its place", running)
	}
	cs.open()
	other := submitTask(ctx, t, d, "other", clusterScript("quick", `"true"`))
	if got := waitEnded(t, st, d, other); got.Status != store.RunSucceeded {
		t.Fatalf("the other run: %s (%s), want succeeded while the first waits only for a build slot", got.Status, got.Reason)
	}
	if exists(ran) {
		t.Fatal("the script ran while the only build slot was held")
	}
}

// fileCheckout checks out a commit of one file, "app.txt", and counts the checkouts made
// into runs' own workspaces (workspaces/run-*, where the shared ones are commit-*).
type fileCheckout struct {
	emptyCheckout
	workspaces string
	mu         sync.Mutex
	own        int
}

func (c *fileCheckout) Checkout(_ context.Context, _ sources.Repo, _, dir string) error {
	if filepath.Dir(dir) == c.workspaces && strings.HasPrefix(filepath.Base(dir), "run-") {
		c.mu.Lock()
		c.own++
		c.mu.Unlock()
	}
	return os.WriteFile(filepath.Join(dir, "app.txt"), []byte("commit"), 0o600)
}

func (c *fileCheckout) owned() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.own
}

// TestAScriptCopiesTheCommitOnceItHasItsSlot: a run reads the commit's shared checkout
// until its first script has a build slot; only then is the run's own copy made (none
// while it waits), the script writes there, and the run's next script reads what it wrote.
// A run that only builds images never makes one.
func TestAScriptCopiesTheCommitOnceItHasItsSlot(t *testing.T) {
	st := testStore(t)
	slots := NewBuildSlots(1)
	data := t.TempDir()
	src := &fileCheckout{workspaces: filepath.Join(data, "workspaces")}
	b := &blockingBuilder{started: make(chan struct{}), release: make(chan struct{})}
	close(b.release)
	ctx, d := startBuildBoundRunner(t, st, buildBound{slots: slots, builder: b, src: src, dataDir: data})
	held := holdASlot(ctx, t, slots)
	scripts := submitPipeline(ctx, t, d, "name: scripts\nstages:\n  - name: write\n    tasks:\n"+localScript("cat app.txt > seen; echo more >> app.txt")+
		"  - name: read\n    tasks:\n"+
		"      - name: again\n        type: script\n        executor: local\n        script: grep -q more app.txt\n")
	waitFor(t, "the script to wait for a build slot", func() bool { return waitingLines(t, st, scripts, "smoke") > 0 })
	if n := src.owned(); n != 0 {
		t.Fatalf("%d copies of the commit made for a run waiting for a build slot, want none", n)
	}
	held()
	if got := waitEnded(t, st, d, scripts); got.Status != store.RunSucceeded {
		t.Fatalf("the scripts' run: %s (%s), want succeeded", got.Status, got.Reason)
	}
	if n := src.owned(); n != 1 {
		t.Fatalf("%d copies of the commit for one run of two scripts, want 1", n)
	}
	image := submitTask(ctx, t, d, "image", "      - name: image\n        type: build-image\n        image: app\n        tag: v${BUILD_ID}\n")
	if got := waitEnded(t, st, d, image); got.Status != store.RunSucceeded {
		t.Fatalf("the image's run: %s (%s), want succeeded", got.Status, got.Reason)
	}
	if n := src.owned(); n != 1 {
		t.Fatalf("a run that only builds made a copy of the commit (%d in all)", n)
	}
	if left, _ := filepath.Glob(filepath.Join(src.workspaces, "run-*")); len(left) != 0 {
		t.Fatalf("workspaces left after the runs: %v", left)
	}
}

// countedRetention counts the retentions asked for; it deletes nothing.
type countedRetention struct{ n atomic.Int32 }

func (c *countedRetention) RetainTags(context.Context, string, string, int, map[string]bool, map[string]string) (builder.RetentionResult, error) {
	c.n.Add(1)
	return builder.RetentionResult{}, nil
}

// TestRetentionTakesAPlaceAgain: a build with keep that waited for a build slot (and so
// gave its run's place up) deletes its old tags only once its run holds a place again.
func TestRetentionTakesAPlaceAgain(t *testing.T) {
	st := testStore(t)
	slots := NewBuildSlots(1)
	cs := newClusterScripts(t)
	b := &blockingBuilder{started: make(chan struct{}), release: make(chan struct{})}
	close(b.release)
	retention := &countedRetention{}
	ctx, d := startBuildBoundRunner(t, st, buildBound{slots: slots, builder: b, places: 1, cluster: cs, tags: retention})
	held := holdASlot(ctx, t, slots)
	image := submitTask(ctx, t, d, "image", "      - name: image\n        type: build-image\n        image: app\n        tag: v${BUILD_ID}\n        keep: 2\n")
	waitFor(t, "the build to wait for a build slot", func() bool { return waitingLines(t, st, image, "image") > 0 })
	other := submitTask(ctx, t, d, "other", clusterScript("hold", "hold"))
	waitFor(t, "the other run to take the place", func() bool { return cs.Running() == 1 })
	held()
	waitFor(t, "the built run to wait for a place", func() bool {
		_, waiting := d.InFlight()
		return waiting == 1
	})
	if n := retention.n.Load(); n != 0 {
		t.Fatalf("retention ran %d times without a place", n)
	}
	cs.open()
	for _, run := range []store.Run{other, image} {
		if got := waitEnded(t, st, d, run); got.Status != store.RunSucceeded {
			t.Fatalf("run %s: %s (%s), want succeeded", run.Pipeline.Name, got.Status, got.Reason)
		}
	}
	if n := retention.n.Load(); n != 1 {
		t.Fatalf("retention ran %d times, want once", n)
	}
}
