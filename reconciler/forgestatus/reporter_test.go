package forgestatus

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/sources/forge"
	"github.com/slipwayhq/slipway/store"
)

type fakeRuns map[int64]string // BUILD_ID -> commit

func (f fakeRuns) GetRun(_ context.Context, ref store.PipelineRef, id int64) (store.Run, error) {
	if c, ok := f[id]; ok {
		return store.Run{Pipeline: ref, BuildID: id, Commit: c}, nil
	}
	return store.Run{}, store.ErrNotFound
}

type call struct {
	sha    string
	status forge.Status
	err    error
}

// fakeForge records every SetStatus; fail says how the nth call (from 1) answers, and gate,
// when set, holds each call until it can receive.
type fakeForge struct {
	mu      sync.Mutex
	n       int
	fail    func(n int) error
	gate    chan struct{}
	entered chan struct{} // with gate: a call is waiting at the gate
	calls   chan call
}

func newFakeForge(fail func(int) error) *fakeForge {
	return &fakeForge{fail: fail, calls: make(chan call, 100)}
}

func (f *fakeForge) SetStatus(ctx context.Context, sha string, s forge.Status) error {
	if f.gate != nil {
		f.entered <- struct{}{}
		select {
		case <-f.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	f.n++
	n := f.n
	f.mu.Unlock()
	var err error
	if f.fail != nil {
		err = f.fail(n)
	}
	f.calls <- call{sha, s, err}
	return err
}

func (f *fakeForge) next(t *testing.T) call {
	t.Helper()
	select {
	case c := <-f.calls:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no SetStatus call within 10s")
	}
	return call{}
}

func ev(id int64, status store.RunStatus, reason string) reconciler.Event {
	return reconciler.Event{Repository: "app", Pipeline: "web", BuildID: id, Status: string(status), Reason: reason, Time: time.Now()}
}

func newTestReporter(t *testing.T, f *fakeForge) (*Reporter, *test.Hook) {
	log, hook := test.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	r := New(Options{Runs: fakeRuns{1: "c1", 2: "c2"}, Forges: map[string]Setter{"app": f}, Log: logrus.NewEntry(log),
		Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	return r, hook
}

func TestNewestStateWinsAndFailuresAreRetried(t *testing.T) {
	outage := errors.New("forge down")
	f := newFakeForge(func(n int) error {
		if n <= 2 {
			return outage
		}
		return nil
	})
	r, hook := newTestReporter(t, f)
	// Three states of one run arrive before anything is sent: only the newest goes out.
	r.RunEvent(ev(1, store.RunQueued, ""))
	r.RunEvent(ev(1, store.RunRunning, ""))
	r.RunEvent(ev(1, store.RunFailed, "task web: apply: Deployment web: invalid"))
	// Task events and repositories without a forge are not statuses.
	r.RunEvent(reconciler.Event{Repository: "app", Pipeline: "web", BuildID: 1, Stage: "deploy", Task: "web", Status: "running"})
	r.RunEvent(reconciler.Event{Repository: "other", Pipeline: "web", BuildID: 1, Status: "running"})
	stop := r.Start(t.Context())
	defer stop()
	want := forge.Status{Context: "slipway/web", State: forge.StatusFailure, Description: "BUILD_ID 1 failed: task web: apply: Deployment web: invalid"}
	for i := 1; i <= 3; i++ {
		c := f.next(t)
		if c.sha != "c1" || c.status != want {
			t.Fatalf("call %d: %+v, want %+v on c1", i, c, want)
		}
		if (i < 3) != (c.err != nil) {
			t.Fatalf("call %d answered %v", i, c.err)
		}
	}
	stop()
	select {
	case c := <-f.calls:
		t.Fatalf("a fourth call: %+v", c)
	default:
	}
	warned := 0
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel && e.Data["context"] == "slipway/web" && errors.Is(e.Data[logrus.ErrorKey].(error), outage) {
			warned++
		}
	}
	if warned != 2 {
		t.Errorf("%d warnings of the failed sends, want 2", warned)
	}
}

func TestAHangingForgeNeverHoldsTheRun(t *testing.T) {
	f := newFakeForge(nil)
	f.gate, f.entered = make(chan struct{}), make(chan struct{}, 1)
	r, _ := newTestReporter(t, f)
	stop := r.Start(t.Context())
	defer stop()
	r.RunEvent(ev(2, store.RunRunning, ""))
	<-f.entered
	// The first send now hangs in the forge; the run's later events are still taken at once.
	for range 1000 {
		r.RunEvent(ev(2, store.RunRunning, ""))
	}
	r.RunEvent(ev(2, store.RunSucceeded, ""))
	f.gate <- struct{}{} // the hanging send of "running" ends
	if c := f.next(t); c.status.State != forge.StatusPending || c.status.Description != "BUILD_ID 2 running" {
		t.Fatalf("first call %+v", c)
	}
	<-f.entered
	f.gate <- struct{}{}
	if c := f.next(t); c.sha != "c2" || c.status.State != forge.StatusSuccess || c.status.Description != "BUILD_ID 2 succeeded" {
		t.Fatalf("second call %+v, want success (the repeated running states coalesced)", c)
	}
}

func TestStopSendsWhatIsQueued(t *testing.T) {
	f := newFakeForge(nil)
	r, _ := newTestReporter(t, f)
	r.o.Backoff = time.Hour // nothing would be retried before stop
	stop := r.Start(t.Context())
	r.RunEvent(ev(1, store.RunCancelled, "the daemon is stopping"))
	stop()
	select {
	case c := <-f.calls:
		if c.status.State != forge.StatusError || c.status.Description != "BUILD_ID 1 cancelled: the daemon is stopping" {
			t.Fatalf("sent %+v", c)
		}
	default:
		t.Fatal("stop returned without sending the queued status")
	}
}

func TestUnknownRunIsLoggedNotSent(t *testing.T) {
	f := newFakeForge(nil)
	r, hook := newTestReporter(t, f)
	r.RunEvent(ev(9, store.RunRunning, ""))
	r.Start(t.Context())()
	if len(f.calls) != 0 {
		t.Fatal("a status was sent for a run the store does not know")
	}
	if e := hook.LastEntry(); e == nil || e.Level != logrus.WarnLevel || e.Data["build_id"] != int64(9) {
		t.Fatalf("log %+v", e)
	}
}

func TestStatusOf(t *testing.T) {
	cases := map[store.RunStatus]forge.StatusState{
		store.RunQueued: forge.StatusPending, store.RunRunning: forge.StatusPending, store.RunSucceeded: forge.StatusSuccess,
		store.RunFailed: forge.StatusFailure, store.RunTimedOut: forge.StatusFailure, store.RunCancelled: forge.StatusError,
		store.RunSuperseded: forge.StatusError, store.RunAwaitingApproval: forge.StatusPending,
		store.RunApprovalTimedOut: forge.StatusFailure, store.RunInterrupted: forge.StatusError,
	}
	for status, want := range cases {
		if got := statusOf(ev(3, status, "")); got.State != want || got.Context != "slipway/web" {
			t.Errorf("%s: %+v, want %s", status, got, want)
		}
	}
	if d := statusOf(ev(3, store.RunAwaitingApproval, "stage prod waits for an approval by ada")).Description; d != "BUILD_ID 3 awaiting approval: stage prod waits for an approval by ada" {
		t.Errorf("description %q", d)
	}
	if d := statusOf(ev(3, store.RunTimedOut, "pipeline timeout of 1m0s exceeded:\n  task web")).Description; d != "BUILD_ID 3 timed out: pipeline timeout of 1m0s exceeded: task web" {
		t.Errorf("description %q", d)
	}
}
