package reconciler

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/reconciler/scriptrun"
	"github.com/slipwayhq/slipway/store"
)

// errOutage is what a write fails with when the database stays unreachable past the
// store's own retries.
var errOutage = errors.New("dial tcp 10.0.0.5:5432: connect: connection refused")

// heardEvents is an Observer that keeps every event and lets a test wait for one.
type heardEvents struct {
	mu      sync.Mutex
	events  []Event
	changed chan struct{}
}

func newHeardEvents() *heardEvents { return &heardEvents{changed: make(chan struct{}, 1)} }

func (h *heardEvents) RunEvent(e Event) {
	h.mu.Lock()
	h.events = append(h.events, e)
	h.mu.Unlock()
	select {
	case h.changed <- struct{}{}:
	default:
	}
}

// count is how many events so far match.
func (h *heardEvents) count(match func(Event) bool) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, e := range h.events {
		if match(e) {
			n++
		}
	}
	return n
}

// await waits until an event matches.
func (h *heardEvents) await(t *testing.T, what string, match func(Event) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for h.count(match) == 0 {
		select {
		case <-h.changed:
		case <-deadline:
			t.Fatalf("never heard %s", what)
		}
	}
}

// scriptDispatcher starts a dispatcher over a real Runner on rs (the store, or one wrapping
// it), whose script tasks run script and whose events go to obs; claims go to o.Claims.
func scriptDispatcher(t *testing.T, rs store.Store, script quietScript, obs Observer, o DispatcherOptions) (context.Context, *Dispatcher) {
	t.Helper()
	runner := NewRunner(RunnerOptions{Store: rs, Sources: emptyCheckout{},
		Config:    &config.Config{DataDir: t.TempDir(), Executor: config.Executor{Local: &config.LocalExecutor{Enabled: true}}},
		Executors: Executors{"local": script}, Observer: obs, Log: logrus.NewEntry(logrus.New())})
	t.Cleanup(runner.Close)
	ctx, cancel := context.WithCancel(context.Background())
	o.Executor, o.Description, o.Log = runner, "test", logrus.NewEntry(logrus.New())
	d, err := StartDispatcher(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); d.Wait() })
	return ctx, d
}

// submitScript submits a run of pipeline name, one script task.
func submitScript(ctx context.Context, t *testing.T, d *Dispatcher, name string) store.Run {
	t.Helper()
	return submitTask(ctx, t, d, name, "      - name: smoke\n        type: script\n        script: \"true\"\n")
}

func awaitRunDone(t *testing.T, d *Dispatcher, run store.Run) {
	t.Helper()
	select {
	case <-d.Done(run.Pipeline, run.BuildID):
	case <-time.After(10 * time.Second):
		t.Fatalf("%s BUILD_ID %d never ended", run.Pipeline.Name, run.BuildID)
	}
}

// failingStart is a store whose StartRun fails, without writing, for the pipeline named
// while fails is above zero (below zero: always), then works; each failure is told on
// failed, when set.
type failingStart struct {
	store.Store
	pipeline string
	mu       sync.Mutex
	fails    int
	calls    int
	failed   chan struct{}
}

func (f *failingStart) StartRun(ctx context.Context, ref store.PipelineRef, buildID int64, holder string) (store.Run, error) {
	f.mu.Lock()
	f.calls++
	fail := ref.Name == f.pipeline && f.fails != 0
	if fail && f.fails > 0 {
		f.fails--
	}
	f.mu.Unlock()
	if !fail {
		return f.Store.StartRun(ctx, ref, buildID, holder)
	}
	if f.failed != nil {
		select {
		case f.failed <- struct{}{}:
		default:
		}
	}
	return store.Run{}, errOutage
}

// TestAStartTheStoreCouldNotRecordIsTriedAgain: a start that failed because the store
// could not be written leaves the run queued, and the dispatcher tries it again until it
// starts; the run is not forgotten, queued, until a restart.
func TestAStartTheStoreCouldNotRecordIsTriedAgain(t *testing.T) {
	st := testStore(t)
	fs := &failingStart{Store: st, pipeline: testRef.Name, fails: 2}
	ctx, run := runOneScript(t, fs, quietScript{})
	got, err := st.GetRun(ctx, run.Pipeline, run.BuildID)
	if err != nil || got.Status != store.RunSucceeded {
		t.Fatalf("run %s (%q), %v; want it succeeded", got.Status, got.Reason, err)
	}
	if fs.calls != 3 {
		t.Fatalf("%d starts, want 3: two refused, one made", fs.calls)
	}
	runs, err := st.ListRuns(ctx, run.Pipeline, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if !r.Status.Final() {
			t.Fatalf("BUILD_ID %d left %s", r.BuildID, r.Status)
		}
	}
}

// TestAStartThatKeepsFailingGivesItsPlaceAndEndsWhenCancelled: while its start is tried
// again, a run holds no place among the runs in flight, so another pipeline's run goes on;
// cancelled meanwhile, it ends cancelled as a queued run does.
func TestAStartThatKeepsFailingGivesItsPlaceAndEndsWhenCancelled(t *testing.T) {
	st := testStore(t)
	fs := &failingStart{Store: st, pipeline: testRef.Name, fails: -1, failed: make(chan struct{}, 1)}
	ctx, d := scriptDispatcher(t, fs, quietScript{}, nil, DispatcherOptions{Claims: st, MaxInFlight: 1})
	stuck := submitScript(ctx, t, d, testRef.Name)
	select {
	case <-fs.failed:
	case <-time.After(10 * time.Second):
		t.Fatal("the run's start was never tried")
	}
	waitFor(t, "the run counted as retrying its start", func() bool { return d.StartRetrying() == 1 })
	other := submitScript(ctx, t, d, "other")
	awaitRunDone(t, d, other)
	if got, _ := st.GetRun(ctx, other.Pipeline, other.BuildID); got.Status != store.RunSucceeded {
		t.Fatalf("the other pipeline's run %s (%q), want it succeeded", got.Status, got.Reason)
	}
	if err := d.Cancel(ctx, stuck.Pipeline, stuck.BuildID, "no longer wanted"); err != nil {
		t.Fatalf("cancel the run whose start keeps failing: %v", err)
	}
	awaitRunDone(t, d, stuck)
	if n := d.StartRetrying(); n != 0 {
		t.Fatalf("%d runs retrying their start after the only one ended", n)
	}
	got, err := st.GetRun(ctx, stuck.Pipeline, stuck.BuildID)
	if err != nil || got.Status != store.RunCancelled || got.Reason != "no longer wanted" {
		t.Fatalf("run %s (%q), %v; want it cancelled with the reason given", got.Status, got.Reason, err)
	}
	tasks, err := st.ListTasks(ctx, stuck.Pipeline, stuck.BuildID)
	if err != nil || len(tasks) != 1 || tasks[0].Status != store.TaskSkipped {
		t.Fatalf("tasks %+v, %v; want its one task skipped", tasks, err)
	}
}

// lostStartHeld is lostStartAnswer that, before answering, tells entered and waits for
// proceed to close.
type lostStartHeld struct {
	store.Store
	entered chan struct{}
	proceed chan struct{}
}

func (l lostStartHeld) StartRun(ctx context.Context, ref store.PipelineRef, buildID int64, holder string) (store.Run, error) {
	if _, err := l.Store.StartRun(ctx, ref, buildID, holder); err != nil {
		return store.Run{}, err
	}
	l.entered <- struct{}{}
	<-l.proceed
	return store.Run{}, errors.New("commit: connection reset before its answer")
}

// TestARunCancelledAfterAStartWhoseAnswerWasLostEnds: the lost answer hid a start that
// applied, so the run is running on record, not queued; cancelled before it is tried again,
// it still ends cancelled, and its claim with it.
func TestARunCancelledAfterAStartWhoseAnswerWasLostEnds(t *testing.T) {
	st := testStore(t)
	ls := lostStartHeld{Store: st, entered: make(chan struct{}, 1), proceed: make(chan struct{})}
	ctx, d := scriptDispatcher(t, ls, quietScript{}, nil, DispatcherOptions{Claims: st})
	run := submitScript(ctx, t, d, testRef.Name)
	select {
	case <-ls.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the run's start was never tried")
	}
	if err := d.Cancel(ctx, run.Pipeline, run.BuildID, "no longer wanted"); err != nil {
		t.Fatal(err)
	}
	close(ls.proceed)
	awaitRunDone(t, d, run)
	got, err := st.GetRun(ctx, run.Pipeline, run.BuildID)
	if err != nil || got.Status != store.RunCancelled || got.Reason != "no longer wanted" {
		t.Fatalf("run %s (%q), %v; want it cancelled with the reason given", got.Status, got.Reason, err)
	}
	if err := st.ClaimPipeline(ctx, run.Pipeline, "another-process", run.BuildID+1); err != nil {
		t.Fatalf("the pipeline is still claimed: %v", err)
	}
}

// failingEnd is a store whose move of a run to a final status fails once: without writing,
// or (applied) after writing, as a COMMIT whose answer was lost.
type failingEnd struct {
	store.Store
	applied bool
	mu      sync.Mutex
	failed  bool
}

func (f *failingEnd) TransitionRun(ctx context.Context, ref store.PipelineRef, buildID int64, from, to store.RunStatus, reason string) (store.Run, error) {
	f.mu.Lock()
	fail := to.Final() && !f.failed
	f.failed = f.failed || fail
	f.mu.Unlock()
	if !fail {
		return f.Store.TransitionRun(ctx, ref, buildID, from, to, reason)
	}
	if f.applied {
		if _, err := f.Store.TransitionRun(ctx, ref, buildID, from, to, reason); err != nil {
			return store.Run{}, err
		}
		return store.Run{}, errors.New("commit: connection reset before its answer")
	}
	return store.Run{}, errOutage
}

// TestAStartedRunsEndIsRecordedOnceTheStoreIsBack: a run's end the store could not record
// is tried again, so the record does not stay running.
func TestAStartedRunsEndIsRecordedOnceTheStoreIsBack(t *testing.T) {
	st := testStore(t)
	fe := &failingEnd{Store: st}
	ctx, run := runOneScript(t, fe, quietScript{})
	got, err := st.GetRun(ctx, run.Pipeline, run.BuildID)
	if err != nil || got.Status != store.RunSucceeded {
		t.Fatalf("run %s (%q), %v; want it succeeded", got.Status, got.Reason, err)
	}
	if err := st.ClaimPipeline(ctx, run.Pipeline, "another-process", run.BuildID+1); err != nil {
		t.Fatalf("the pipeline is still claimed: %v", err)
	}
}

// TestAStartedRunsEndWhoseAnswerWasLostIsTold: trying the end again finds it recorded
// already (the lost answer hid a commit), and the run's end is told like any other.
func TestAStartedRunsEndWhoseAnswerWasLostIsTold(t *testing.T) {
	st := testStore(t)
	heard := newHeardEvents()
	ctx, d := scriptDispatcher(t, &failingEnd{Store: st, applied: true}, quietScript{}, heard, DispatcherOptions{Claims: st})
	run := submitScript(ctx, t, d, testRef.Name)
	awaitRunDone(t, d, run)
	if got, _ := st.GetRun(ctx, run.Pipeline, run.BuildID); got.Status != store.RunSucceeded {
		t.Fatalf("run %s (%q), want it succeeded", got.Status, got.Reason)
	}
	ended := func(e Event) bool {
		return e.BuildID == run.BuildID && e.Task == "" && e.Status == string(store.RunSucceeded)
	}
	if n := heard.count(ended); n != 1 {
		t.Fatalf("the run's end was told %d times, want once", n)
	}
}

// TestACancelledRunWhoseStartFailedEndsOnceTheStoreIsBack: a run cancelled while the store
// could not record its start may find the store still out when its end is written; that
// end is tried again too, so the run does not stay queued on record.
func TestACancelledRunWhoseStartFailedEndsOnceTheStoreIsBack(t *testing.T) {
	st := testStore(t)
	fs := &failingStart{Store: st, pipeline: testRef.Name, fails: -1, failed: make(chan struct{}, 1)}
	ctx, d := scriptDispatcher(t, &failingEnd{Store: fs}, quietScript{}, nil, DispatcherOptions{Claims: st})
	run := submitScript(ctx, t, d, testRef.Name)
	select {
	case <-fs.failed:
	case <-time.After(10 * time.Second):
		t.Fatal("the run's start was never tried")
	}
	if err := d.Cancel(ctx, run.Pipeline, run.BuildID, "no longer wanted"); err != nil {
		t.Fatal(err)
	}
	awaitRunDone(t, d, run)
	got, err := st.GetRun(ctx, run.Pipeline, run.BuildID)
	if err != nil || got.Status != store.RunCancelled || got.Reason != "no longer wanted" {
		t.Fatalf("run %s (%q), %v; want it cancelled with the reason given", got.Status, got.Reason, err)
	}
}

// countedClaims tells claimed of every ClaimPipeline.
type countedClaims struct {
	Claims
	claimed chan struct{}
}

func (c countedClaims) ClaimPipeline(ctx context.Context, ref store.PipelineRef, holder string, buildID int64) error {
	err := c.Claims.ClaimPipeline(ctx, ref, holder, buildID)
	select {
	case c.claimed <- struct{}{}:
	default:
	}
	return err
}

// TestAClaimWaitSaysWhoItWaitsFor: a run that waited for a place, then finds its pipeline
// running in another process, says so in its queued reason, once, instead of still saying
// it waits for a place.
func TestAClaimWaitSaysWhoItWaitsFor(t *testing.T) {
	st := testStore(t)
	ctx := context.Background()
	waiter := store.PipelineRef{Repository: testRef.Repository, Name: "waiter"}
	const elsewhere = "slipway serve on elsewhere (pid 7)"
	if err := st.BeatHolder(ctx, "elsewhere", elsewhere, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := st.ClaimPipeline(ctx, waiter, "elsewhere", 99); err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}, 1), make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	t.Cleanup(open)
	script := quietScript{during: func(ctx context.Context, s scriptrun.Spec) {
		if s.Run.Pipeline == "blocker" {
			entered <- struct{}{}
			<-release
		}
	}}
	heard := newHeardEvents()
	claims := countedClaims{Claims: st, claimed: make(chan struct{}, 1)}
	ctx, d := scriptDispatcher(t, st, script, heard, DispatcherOptions{Claims: claims, MaxInFlight: 1, ClaimRetry: 10 * time.Millisecond})

	blocker := submitScript(ctx, t, d, "blocker")
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the blocker's task never ran")
	}
	run := submitScript(ctx, t, d, waiter.Name)
	queuedFor := func(what string) func(Event) bool {
		return func(e Event) bool {
			return e.Pipeline == waiter.Name && e.Status == string(store.RunQueued) && strings.Contains(e.Reason, what)
		}
	}
	heard.await(t, "the run waiting for a place", queuedFor("waiting for a place"))
	open()
	awaitRunDone(t, d, blocker)
	heard.await(t, "the run waiting for the other process", queuedFor(elsewhere))
	got, err := st.GetRun(ctx, run.Pipeline, run.BuildID)
	if err != nil || got.Status != store.RunQueued || !strings.Contains(got.Reason, elsewhere) || strings.Contains(got.Reason, "place") {
		t.Fatalf("run %s (%q), %v; want it queued, waiting for %s", got.Status, got.Reason, err, elsewhere)
	}
	for range 3 { // the claim is tried again while the other process holds it
		select {
		case <-claims.claimed:
		case <-time.After(10 * time.Second):
			t.Fatal("the claim was not tried again")
		}
	}
	if err := st.ReleasePipeline(ctx, waiter, "elsewhere"); err != nil {
		t.Fatal(err)
	}
	awaitRunDone(t, d, run)
	if got, _ := st.GetRun(ctx, run.Pipeline, run.BuildID); got.Status != store.RunSucceeded {
		t.Fatalf("run %s (%q), want it succeeded once the other process let go", got.Status, got.Reason)
	}
	if n := heard.count(queuedFor(elsewhere)); n != 1 {
		t.Fatalf("the wait for the other process was recorded %d times, want once", n)
	}
}

// lostStartOnce is lostStartHeld for the first start of the pipeline named only: later
// starts, and other pipelines', go through.
type lostStartOnce struct {
	store.Store
	pipeline string
	entered  chan struct{}
	proceed  chan struct{}
	once     sync.Once
}

func (l *lostStartOnce) StartRun(ctx context.Context, ref store.PipelineRef, buildID int64, holder string) (store.Run, error) {
	first := false
	if ref.Name == l.pipeline {
		l.once.Do(func() { first = true })
	}
	run, err := l.Store.StartRun(ctx, ref, buildID, holder)
	if !first || err != nil {
		return run, err
	}
	l.entered <- struct{}{}
	<-l.proceed
	return store.Run{}, errors.New("commit: connection reset before its answer")
}

// TestARetriedStartWhoseAnswerWasLostIsNotToldQueued: a start whose answer was lost may have
// applied, the run running on record. Waiting for a place before it tries again, the run is
// not told queued (the record keeps no queued reason for a running run either); it goes on
// once the place is free.
func TestARetriedStartWhoseAnswerWasLostIsNotToldQueued(t *testing.T) {
	st := testStore(t)
	ls := &lostStartOnce{Store: st, pipeline: testRef.Name, entered: make(chan struct{}, 1), proceed: make(chan struct{})}
	entered, release := make(chan struct{}, 1), make(chan struct{})
	ran, finish := make(chan struct{}, 1), make(chan struct{})
	open, answer := sync.OnceFunc(func() { close(release) }), sync.OnceFunc(func() { close(ls.proceed) })
	done := sync.OnceFunc(func() { close(finish) })
	script := quietScript{during: func(ctx context.Context, s scriptrun.Spec) {
		switch s.Run.Pipeline {
		case "blocker":
			entered <- struct{}{}
			<-release
		case testRef.Name:
			ran <- struct{}{}
			<-finish
		}
	}}
	heard := newHeardEvents()
	ctx, d := scriptDispatcher(t, ls, script, heard, DispatcherOptions{Claims: st, MaxInFlight: 1})
	// Before the dispatcher's cleanup waits for the runs.
	t.Cleanup(func() { open(); answer(); done() })

	run := submitScript(ctx, t, d, testRef.Name)
	select {
	case <-ls.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the run's start was never tried")
	}
	blocker := submitScript(ctx, t, d, "blocker")
	waitFor(t, "the blocker waiting for a place", func() bool { _, w := d.InFlight(); return w == 1 })
	// The lost answer gives the place to the blocker while the start waits to be tried again.
	answer()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the blocker's task never ran")
	}
	waitFor(t, "the run waiting for a place to try its start again", func() bool { _, w := d.InFlight(); return w == 1 })
	// Counted waiting for a place, so not again as retrying its start.
	if n := d.StartRetrying(); n != 0 {
		t.Fatalf("%d runs retrying their start while the one retrying waits for a place, want 0", n)
	}
	toldQueued := func(e Event) bool {
		return e.Pipeline == testRef.Name && e.Stage == "" && e.Status == string(store.RunQueued) && strings.Contains(e.Reason, "waiting for a place")
	}
	if n := heard.count(toldQueued); n != 0 {
		t.Fatalf("the run, running on record, was told queued waiting for a place %d times", n)
	}
	open()
	awaitRunDone(t, d, blocker)
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("the run's task never ran")
	}
	if n := d.StartRetrying(); n != 0 {
		t.Fatalf("%d runs retrying their start while the only one runs", n)
	}
	if got, err := st.GetRun(ctx, run.Pipeline, run.BuildID); err != nil || got.Status != store.RunRunning {
		t.Fatalf("run %s (%q), %v; want it running", got.Status, got.Reason, err)
	}
	done()
	awaitRunDone(t, d, run)
	if got, err := st.GetRun(ctx, run.Pipeline, run.BuildID); err != nil || got.Status != store.RunSucceeded {
		t.Fatalf("run %s (%q), %v; want it succeeded", got.Status, got.Reason, err)
	}
	if n := heard.count(toldQueued); n != 0 {
		t.Fatalf("the run was told queued waiting for a place %d times", n)
	}
}
