package reconciler

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/sources"
	"github.com/slipwayhq/slipway/store"
)

// fakeExecutor records what the dispatcher asks of it. Execute blocks until released, and
// can pretend to be in a health wait.
type fakeExecutor struct {
	mu        sync.Mutex
	next      int64
	started   []int64
	ctxs      map[int64]context.Context // each run's context, as Execute was given it
	ended     map[int64]string          // BUILD_ID → status and reason
	release   chan struct{}
	inWait    bool
	watched   bool // the health wait inWait puts runs in is one the shared watches drive
	startedC  chan int64
	notes     []string      // reasons queued runs were given
	noteCalls int           // NoteQueued's calls (its writes)
	noteGate  chan struct{} // when set, NoteQueued returns once it is closed
	// claims, when set, is claimed as the real start claims it (store.StartRun), so that
	// dispatchers of two processes can be seen to wait for each other.
	claims Claims
}

func newFakeExecutor(inWait bool) *fakeExecutor {
	return &fakeExecutor{ended: map[int64]string{}, ctxs: map[int64]context.Context{}, release: make(chan struct{}), inWait: inWait, startedC: make(chan int64, 10)}
}

func (f *fakeExecutor) QueueAll(_ context.Context, jobs []Job, _ string, _ store.Handled) ([]Queued, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Queued, len(jobs))
	for i, job := range jobs {
		f.next++
		out[i].Run = store.Run{Pipeline: job.Ref, BuildID: f.next, Status: store.RunQueued}
	}
	return out, nil
}

func (f *fakeExecutor) Execute(ctx context.Context, _ Job, run store.Run, state *RunState) (store.Run, error) {
	if f.claims != nil && ctx.Err() == nil {
		if err := f.claims.ClaimPipeline(ctx, run.Pipeline, state.holder, run.BuildID); err != nil {
			return run, err
		}
		state.mu.Lock()
		state.claimed = true
		state.mu.Unlock()
	}
	f.mu.Lock()
	f.started = append(f.started, run.BuildID)
	f.ctxs[run.BuildID] = ctx
	f.mu.Unlock()
	if f.inWait {
		defer state.taskStarted()()
		defer state.placed(ctx, run)
		defer state.waitingForHealth(f.watched)()
	}
	f.startedC <- run.BuildID
	status := "succeeded"
	select {
	case <-f.release:
	case <-ctx.Done():
		status = "cancelled"
		if st, _ := cancelOutcome(ctx); st == store.RunSuperseded {
			status = "superseded"
		}
	}
	f.mu.Lock()
	f.ended[run.BuildID] = status
	f.mu.Unlock()
	return run, nil
}

func (f *fakeExecutor) EndQueued(_ context.Context, run store.Run, to store.RunStatus, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ended[run.BuildID] = string(to) + ": " + reason
	return nil
}

func (f *fakeExecutor) NoteQueued(_ context.Context, runs []store.Run, reason string) error {
	if f.noteGate != nil {
		<-f.noteGate
	}
	f.mu.Lock()
	f.noteCalls++
	defer f.mu.Unlock()
	for range runs {
		f.notes = append(f.notes, reason)
	}
	return nil
}

func (f *fakeExecutor) endedAs(id int64) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ended[id]
}

func waitStarted(t *testing.T, f *fakeExecutor, want int64) {
	t.Helper()
	select {
	case got := <-f.startedC:
		if got != want {
			t.Fatalf("started BUILD_ID %d, want %d", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("BUILD_ID %d never started", want)
	}
}

var testRef = store.PipelineRef{Repository: "repo", Name: "app"}

func testJob(trigger store.Trigger) Job {
	return RunJob(&Checkout{Repo: sources.Repo{Name: testRef.Repository}}, &pipeline.Pipeline{Name: testRef.Name}, trigger, 0)
}

// testStore is a real store in the test's folder: claims are the store's business.
func testStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func startTestDispatcher(t *testing.T, f Executor, st store.Store) (*Dispatcher, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := StartDispatcher(ctx, DispatcherOptions{Executor: f, Claims: st, Description: "test",
		ClaimRetry: 10 * time.Millisecond, Log: logrus.NewEntry(logrus.New())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); d.Wait() })
	return d, cancel
}

func waitDone(t *testing.T, d *Dispatcher, id int64) {
	t.Helper()
	select {
	case <-d.Done(testRef, id):
	case <-time.After(5 * time.Second):
		t.Fatalf("BUILD_ID %d never ended", id)
	}
}

func TestDispatcherSupersedesTheWaitingRun(t *testing.T) {
	f := newFakeExecutor(false)
	d, _ := startTestDispatcher(t, f, testStore(t))
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := d.Submit(ctx, testJob(store.TriggerPush)); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			waitStarted(t, f, 1)
		}
	}
	f.release <- struct{}{} // run 1 ends; run 3 (not 2) starts
	waitStarted(t, f, 3)
	f.release <- struct{}{}
	waitDone(t, d, 3)
	want := map[int64]string{1: "succeeded", 2: "superseded: superseded by BUILD_ID 3", 3: "succeeded"}
	for id, w := range want {
		if got := f.endedAs(id); got != w {
			t.Errorf("BUILD_ID %d ended %q, want %q", id, got, w)
		}
	}
}

type submitterKey struct{}

// A run that waited behind another runs under its own submitter's context (values, not
// cancellation), not one made from the run before it: a pipeline whose queue never empties
// would otherwise chain a context per run for as long as it stays busy.
func TestDispatcherRunsAWaitingRunUnderItsOwnSubmittersContext(t *testing.T) {
	f := newFakeExecutor(false)
	d, _ := startTestDispatcher(t, f, testStore(t))
	// Each run waits behind the one before it, which ends once it is in the queue.
	for id := int64(1); id <= 3; id++ {
		ctx, cancel := context.WithCancel(context.WithValue(context.Background(), submitterKey{}, fmt.Sprint("submitter ", id)))
		_, err := d.Submit(ctx, testJob(store.TriggerPush))
		cancel() // an HTTP request that ended: the run does not end with it
		if err != nil {
			t.Fatal(err)
		}
		if id > 1 {
			f.release <- struct{}{}
		}
		waitStarted(t, f, id)
	}
	f.release <- struct{}{}
	waitDone(t, d, 3)
	f.mu.Lock()
	defer f.mu.Unlock()
	for id := int64(1); id <= 3; id++ {
		ctx := f.ctxs[id]
		if got, want := ctx.Value(submitterKey{}), fmt.Sprint("submitter ", id); got != want {
			t.Errorf("BUILD_ID %d ran under %v's context, want %s's", id, got, want)
		}
		if f.ended[id] != "succeeded" {
			t.Errorf("BUILD_ID %d ended %q, want succeeded", id, f.ended[id])
		}
	}
}

// A person's promotion waits its turn: a newer push supersedes only the waiting push, and a
// newer promotion only the waiting promotion to the same environment.
func TestDispatcherKeepsAWaitingPromotion(t *testing.T) {
	f := newFakeExecutor(false)
	d, _ := startTestDispatcher(t, f, testStore(t))
	ctx := context.Background()
	promote := func(to string) Job {
		j := testJob(store.TriggerPromote)
		j.promote = &promotion{artifact: 1, from: "staging", to: to}
		return j
	}
	for i, job := range []Job{
		testJob(store.TriggerPush), // 1 runs
		promote("prod"),            // 2 waits
		testJob(store.TriggerPush), // 3 waits
		promote("qa"),              // 4 waits
		testJob(store.TriggerPush), // 5 supersedes 3, not 2 or 4
		promote("prod"),            // 6 supersedes 2, not 4
	} {
		if _, err := d.Submit(ctx, job); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			waitStarted(t, f, 1)
		}
	}
	for _, next := range []int64{4, 5, 6} { // in the order they were queued
		f.release <- struct{}{}
		waitStarted(t, f, next)
	}
	f.release <- struct{}{}
	waitDone(t, d, 6)
	want := map[int64]string{1: "succeeded", 2: "superseded: superseded by BUILD_ID 6", 3: "superseded: superseded by BUILD_ID 5",
		4: "succeeded", 5: "succeeded", 6: "succeeded"}
	for id, w := range want {
		if got := f.endedAs(id); got != w {
			t.Errorf("BUILD_ID %d ended %q, want %q", id, got, w)
		}
	}
}

func TestDispatcherCancelsAHealthWaitForANewerRun(t *testing.T) {
	f := newFakeExecutor(true)
	d, _ := startTestDispatcher(t, f, testStore(t))
	ctx := context.Background()
	if _, err := d.Submit(ctx, testJob(store.TriggerPush)); err != nil {
		t.Fatal(err)
	}
	waitStarted(t, f, 1) // and in its health wait
	if _, err := d.Submit(ctx, testJob(store.TriggerPush)); err != nil {
		t.Fatal(err)
	}
	waitStarted(t, f, 2)
	f.release <- struct{}{}
	waitDone(t, d, 2)
	if f.endedAs(1) != "superseded" || f.endedAs(2) != "succeeded" {
		t.Fatalf("ended = %v, want 1 superseded during its health wait and 2 succeeded", f.ended)
	}
}

func TestDispatcherLetsAManualRunWaitBehindAHealthWait(t *testing.T) {
	f := newFakeExecutor(true)
	d, _ := startTestDispatcher(t, f, testStore(t))
	ctx := context.Background()
	if _, err := d.Submit(ctx, testJob(store.TriggerPush)); err != nil {
		t.Fatal(err)
	}
	waitStarted(t, f, 1)
	if _, err := d.Submit(ctx, testJob(store.TriggerManual)); err != nil {
		t.Fatal(err)
	}
	f.release <- struct{}{}
	waitStarted(t, f, 2)
	f.release <- struct{}{}
	waitDone(t, d, 2)
	if f.endedAs(1) != "succeeded" || f.endedAs(2) != "succeeded" {
		t.Fatalf("ended = %v, want both succeeded: only a newer commit supersedes a health wait", f.ended)
	}
}

func TestDispatcherSubmitIfIdle(t *testing.T) {
	f := newFakeExecutor(false)
	d, _ := startTestDispatcher(t, f, testStore(t))
	ctx := context.Background()
	if _, err := d.SubmitIfIdle(ctx, testJob(store.TriggerCron)); err != nil {
		t.Fatal(err)
	}
	waitStarted(t, f, 1)
	// Busy while run 1 runs: nothing is recorded, no BUILD_ID spent.
	if _, err := d.SubmitIfIdle(ctx, testJob(store.TriggerCron)); !errors.Is(err, ErrBusy) {
		t.Fatalf("SubmitIfIdle during a run: %v, want ErrBusy", err)
	}
	// An ordinary Submit still queues behind it, and makes the pipeline busy too.
	if _, err := d.Submit(ctx, testJob(store.TriggerPush)); err != nil {
		t.Fatal(err)
	}
	f.release <- struct{}{}
	waitStarted(t, f, 2)
	f.release <- struct{}{}
	waitDone(t, d, 2)
	if _, err := d.SubmitIfIdle(ctx, testJob(store.TriggerCron)); err != nil {
		t.Fatalf("SubmitIfIdle when idle: %v", err)
	}
	waitStarted(t, f, 3)
	f.release <- struct{}{}
	waitDone(t, d, 3)
	if f.endedAs(1) != "succeeded" || f.endedAs(2) != "succeeded" || f.endedAs(3) != "succeeded" || f.next != 3 {
		t.Fatalf("ended = %v, BUILD_IDs handed out %d", f.ended, f.next)
	}
}

// Two dispatchers over one store are two processes: the second waits, queued, until the
// first has finished its run of the same pipeline.
func TestDispatchersInTwoProcessesNeverRunOnePipelineTwice(t *testing.T) {
	st := testStore(t)
	daemon, cli := newFakeExecutor(false), newFakeExecutor(false)
	daemon.claims, cli.claims = st, st
	cli.next = 100 // BUILD_IDs apart, to tell them apart
	d1, _ := startTestDispatcher(t, daemon, st)
	d2, _ := startTestDispatcher(t, cli, st)
	ctx := context.Background()
	if _, err := d1.Submit(ctx, testJob(store.TriggerPush)); err != nil {
		t.Fatal(err)
	}
	waitStarted(t, daemon, 1)
	if _, err := d2.Submit(ctx, testJob(store.TriggerManual)); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-cli.startedC:
		t.Fatalf("BUILD_ID %d started while the other process runs the pipeline", id)
	case <-time.After(200 * time.Millisecond): // several claim retries
	}
	daemon.release <- struct{}{}
	waitStarted(t, cli, 101)
	cli.release <- struct{}{}
	waitDone(t, d2, 101)

	// A cancel while waiting for the other process's claim ends the run cancelled.
	if _, err := d1.Submit(ctx, testJob(store.TriggerPush)); err != nil {
		t.Fatal(err)
	}
	waitStarted(t, daemon, 2)
	if _, err := d2.Submit(ctx, testJob(store.TriggerManual)); err != nil {
		t.Fatal(err)
	}
	if err := d2.Cancel(ctx, testRef, 102, "cancelled by request"); err != nil {
		t.Fatal(err)
	}
	waitDone(t, d2, 102)
	daemon.release <- struct{}{}
	waitDone(t, d1, 2)
	if cli.endedAs(101) != "succeeded" || daemon.endedAs(2) != "succeeded" {
		t.Fatalf("daemon %v, cli %v", daemon.ended, cli.ended)
	}
}

func TestDispatcherShutdownCancelsRunsAndRemovesTheHolder(t *testing.T) {
	st := testStore(t)
	f := newFakeExecutor(false)
	d, stop := startTestDispatcher(t, f, st)
	ctx := context.Background()
	if _, err := d.Submit(ctx, testJob(store.TriggerPush)); err != nil {
		t.Fatal(err)
	}
	waitStarted(t, f, 1)
	if _, err := d.Submit(ctx, testJob(store.TriggerPush)); err != nil {
		t.Fatal(err)
	}
	stop()
	d.Wait()
	if f.endedAs(1) != "cancelled" || f.endedAs(2) != "cancelled: slipway shut down before the run started" {
		t.Fatalf("ended = %v", f.ended)
	}
	if _, err := d.Submit(ctx, testJob(store.TriggerPush)); !errors.Is(err, ErrShuttingDown) {
		t.Fatalf("submit after shutdown: %v", err)
	}
	// The holder is gone, so its claim is free for anyone.
	other, _ := startTestDispatcher(t, newFakeExecutor(false), st)
	if err := st.ClaimPipeline(ctx, testRef, other.Holder(), 9); err != nil {
		t.Fatalf("claim after the holder left: %v", err)
	}
}

// startOnePlaceDispatcher starts a dispatcher of f with runs.maxInFlight 1.
func startOnePlaceDispatcher(t *testing.T, f *fakeExecutor) (context.Context, *Dispatcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := StartDispatcher(ctx, DispatcherOptions{Executor: f, Claims: testStore(t), Description: "test",
		ClaimRetry: 10 * time.Millisecond, MaxInFlight: 1, Log: logrus.NewEntry(logrus.New())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); d.Wait() })
	return ctx, d
}

// pipelineJob is a push run of the pipeline name of one repository.
func pipelineJob(name string) Job {
	return RunJob(&Checkout{Repo: sources.Repo{Name: "repo"}}, &pipeline.Pipeline{Name: name}, store.TriggerPush, 0)
}

func TestDispatcherBoundsRunsInFlight(t *testing.T) {
	f := newFakeExecutor(false)
	ctx, d := startOnePlaceDispatcher(t, f)
	other := pipelineJob
	first, err := d.Submit(ctx, other("a"))
	if err != nil {
		t.Fatal(err)
	}
	waitStarted(t, f, first.BuildID)
	second, err := d.Submit(ctx, other("b"))
	if err != nil {
		t.Fatal(err)
	}
	third, err := d.Submit(ctx, other("c"))
	if err != nil {
		t.Fatal(err)
	}
	// Two other pipelines' runs wait, visibly, for the one place.
	waitFor(t, "two runs waiting for a place", func() bool { _, w := d.InFlight(); return w == 2 })
	if running, _ := d.InFlight(); running != 1 {
		t.Fatalf("%d runs in flight, want 1", running)
	}
	f.mu.Lock()
	notes := append([]string(nil), f.notes...)
	f.mu.Unlock()
	if len(notes) != 2 || !strings.Contains(notes[0], "runs.maxInFlight") {
		t.Fatalf("reasons of the waiting runs = %q", notes)
	}
	// One is cancelled while it waits: it never takes the place.
	if err := d.Cancel(ctx, third.Pipeline, third.BuildID, "not wanted"); err != nil {
		t.Fatal(err)
	}
	// (The fake's Execute is told of it and records it cancelled, as the Runner's would.)
	waitStarted(t, f, third.BuildID)
	waitFor(t, "the cancelled run to end", func() bool { return f.endedAs(third.BuildID) == "cancelled" })
	if running, waiting := d.InFlight(); running != 1 || waiting != 1 {
		t.Fatalf("after the cancel: %d in flight, %d waiting; want 1 and 1", running, waiting)
	}
	// The first ends: the second takes its place.
	f.release <- struct{}{}
	waitStarted(t, f, second.BuildID)
	f.release <- struct{}{}
	waitFor(t, "the second run to end", func() bool { return f.endedAs(second.BuildID) == "succeeded" })
	waitFor(t, "no run in flight", func() bool { r, w := d.InFlight(); return r == 0 && w == 0 })
	if p := d.PeakInFlight(); p != 1 {
		t.Fatalf("PeakInFlight() = %d, want 1 (the bound, reached)", p)
	}
}

// Runs waiting for a place wait in the dispatcher's line, not as goroutines, and start first
// in, first out; why they wait is recorded in one write for a batch submitted together.
func TestDispatcherLinesUpRunsWaitingForAPlace(t *testing.T) {
	const n = 100
	f := newFakeExecutor(false)
	f.startedC = make(chan int64, n+1)
	ctx, d := startOnePlaceDispatcher(t, f)
	first, err := d.Submit(ctx, pipelineJob("first"))
	if err != nil {
		t.Fatal(err)
	}
	waitStarted(t, f, first.BuildID)
	before := runtime.NumGoroutine()
	jobs := make([]Job, n)
	for i := range jobs {
		jobs[i] = pipelineJob(fmt.Sprintf("p%d", i))
	}
	queued, err := d.SubmitAll(ctx, jobs, store.Handled{})
	if err != nil {
		t.Fatal(err)
	}
	if _, w := d.InFlight(); w != n {
		t.Fatalf("%d runs waiting for a place, want %d", w, n)
	}
	if grew := runtime.NumGoroutine() - before; grew > 10 {
		t.Fatalf("%d goroutines more for %d runs waiting for a place", grew, n)
	}
	f.mu.Lock()
	calls, notes := f.noteCalls, len(f.notes)
	f.mu.Unlock()
	if calls != 1 || notes != n {
		t.Fatalf("why the runs wait: %d reasons in %d writes, want %d in 1", notes, calls, n)
	}
	for range n + 1 {
		f.release <- struct{}{}
	}
	waitFor(t, "no run in flight", func() bool { r, w := d.InFlight(); return r == 0 && w == 0 })
	f.mu.Lock()
	started := append([]int64(nil), f.started...)
	f.mu.Unlock()
	want := []int64{first.BuildID}
	for _, q := range queued {
		want = append(want, q.Run.BuildID)
	}
	if !slices.Equal(started, want) {
		t.Fatalf("runs started in the order %v, want %v", started, want)
	}
	if p := d.PeakInFlight(); p != 1 {
		t.Fatalf("PeakInFlight() = %d, want 1", p)
	}
}

// A run lined up for a place starts only once why it waited is on record, so its record
// never says queued after it said running.
func TestALinedUpRunStartsAfterItsReasonIsRecorded(t *testing.T) {
	f := newFakeExecutor(false)
	f.noteGate = make(chan struct{})
	ctx, d := startOnePlaceDispatcher(t, f)
	var open sync.Once
	openGate := func() { open.Do(func() { close(f.noteGate) }) }
	t.Cleanup(openGate) // before the dispatcher's shutdown waits for its runs
	first, err := d.Submit(ctx, pipelineJob("a"))
	if err != nil {
		t.Fatal(err)
	}
	waitStarted(t, f, first.BuildID)
	submitted := make(chan store.Run, 1)
	go func() {
		r, _ := d.Submit(ctx, pipelineJob("b"))
		submitted <- r
	}()
	waitFor(t, "the second run lined up", func() bool { _, w := d.InFlight(); return w == 1 })
	f.release <- struct{}{} // the place is free, the reason not yet recorded
	select {
	case id := <-f.startedC:
		t.Fatalf("run %d started before why it waited was recorded", id)
	case <-time.After(200 * time.Millisecond):
	}
	openGate()
	second := <-submitted
	waitStarted(t, f, second.BuildID)
	f.release <- struct{}{}
}

// A run whose every task waits for health the shared watches report gives its place among
// the runs in flight up for the wait: another pipeline's run starts meanwhile, and the
// bound holds again for the work after it.
func TestRunInAWatchedHealthWaitGivesItsPlaceUp(t *testing.T) {
	f := newFakeExecutor(true)
	f.watched = true
	ctx, d := startOnePlaceDispatcher(t, f)
	first, err := d.Submit(ctx, pipelineJob("a"))
	if err != nil {
		t.Fatal(err)
	}
	waitStarted(t, f, first.BuildID)
	second, err := d.Submit(ctx, pipelineJob("b"))
	if err != nil {
		t.Fatal(err)
	}
	// The first waits for health: the second starts beside it, though the bound is one.
	waitStarted(t, f, second.BuildID)
	f.release <- struct{}{}
	f.release <- struct{}{}
	waitFor(t, "both runs to end", func() bool {
		return f.endedAs(first.BuildID) == "succeeded" && f.endedAs(second.BuildID) == "succeeded"
	})
	waitFor(t, "no run in flight", func() bool { r, w := d.InFlight(); return r == 0 && w == 0 })
	if p := d.PeakInFlight(); p != 1 {
		t.Fatalf("PeakInFlight() = %d, want 1: runs back from their health wait take a place again", p)
	}
}

// waitFor polls cond (state another goroutine changes) until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A run whose pipeline another process runs waits for it without a place among the runs in
// flight: its start is refused (the claim and the move to running are one write), it gives
// the place back, and another pipeline's run takes it meanwhile.
func TestARunWaitingForAnotherProcessHoldsNoPlace(t *testing.T) {
	st := testStore(t)
	daemon, cli := newFakeExecutor(false), newFakeExecutor(false)
	daemon.claims, cli.claims = st, st
	cli.next = 100
	d1, _ := startTestDispatcher(t, daemon, st)
	ctx, cancel := context.WithCancel(context.Background())
	d2, err := StartDispatcher(ctx, DispatcherOptions{Executor: cli, Claims: st, Description: "test",
		ClaimRetry: 10 * time.Millisecond, MaxInFlight: 1, Log: logrus.NewEntry(logrus.New())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); d2.Wait() })
	if _, err := d1.Submit(ctx, testJob(store.TriggerPush)); err != nil {
		t.Fatal(err)
	}
	waitStarted(t, daemon, 1)
	if _, err := d2.Submit(ctx, testJob(store.TriggerManual)); err != nil {
		t.Fatal(err)
	}
	otherRef := store.PipelineRef{Repository: testRef.Repository, Name: "other"}
	other := RunJob(&Checkout{Repo: sources.Repo{Name: otherRef.Repository}}, &pipeline.Pipeline{Name: otherRef.Name}, store.TriggerManual, 0)
	if _, err := d2.Submit(ctx, other); err != nil {
		t.Fatal(err)
	}
	waitStarted(t, cli, 102) // the other pipeline's run, while BUILD_ID 101 waits for the daemon
	cli.release <- struct{}{}
	daemon.release <- struct{}{}
	waitStarted(t, cli, 101)
	cli.release <- struct{}{}
	waitDone(t, d2, 101)
	if running, waiting := d2.InFlight(); running != 0 || waiting != 0 {
		t.Fatalf("in flight %d, waiting %d after every run ended", running, waiting)
	}
}
