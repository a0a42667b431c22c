package reconciler

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/policy"
	"github.com/slipwayhq/slipway/store"
)

// gatedExecutor records its runs in the store under the dispatcher's holder; a run it
// executes waits at a gate only alice may answer, or until cancelled.
type gatedExecutor struct {
	*fakeExecutor
	st store.Store
}

func (g gatedExecutor) QueueAll(ctx context.Context, jobs []Job, holder string, h store.Handled) ([]Queued, error) {
	var nrs []store.NewRun
	for _, job := range jobs {
		nrs = append(nrs, store.NewRun{Pipeline: job.Ref, Commit: "c0ffee", Trigger: job.Trigger, Holder: holder})
	}
	runs, err := g.st.CreateRuns(ctx, nrs, h)
	if err != nil {
		return nil, err
	}
	out := make([]Queued, len(runs))
	for i, r := range runs {
		out[i].Run = r
	}
	return out, nil
}

func (g gatedExecutor) Execute(ctx context.Context, _ Job, run store.Run, state *RunState) (store.Run, error) {
	answers := state.startWaiting(&pipeline.Stage{Name: "prod"}, func(_ context.Context, actor string) (string, error) {
		if actor != "alice" {
			return "", fmt.Errorf("%s may not approve stage prod: %w", actor, policy.ErrNotApprover)
		}
		return actor, nil
	})
	defer state.stopWaiting()
	g.startedC <- run.BuildID
	status := "cancelled"
	select {
	case a := <-answers:
		status = fmt.Sprintf("answered by %s, approve %v", a.Actor, a.Approve)
	case <-ctx.Done():
	}
	g.mu.Lock()
	g.ended[run.BuildID] = status
	g.mu.Unlock()
	return run, nil
}

// waitOutcome waits until the request has an outcome.
func waitOutcome(t *testing.T, st store.Store, q store.RunRequest) store.RunRequest {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := st.GetRunRequest(context.Background(), q.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Outcome != store.RequestPending {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("request %d (%s) never finished", q.ID, q.Kind)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Another process on the same SQLite file (its own handle, no change relay between them)
// leaves requests for this process's runs: the dispatcher finds them by polling, acts with
// the checks of a local call, audits under the caller and records each outcome.
func TestDispatcherTakesRequestsFromAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "slipway.db")
	open := func() store.Store {
		st, err := store.OpenSQLite(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	mine, theirs := open(), open()
	exec := gatedExecutor{fakeExecutor: newFakeExecutor(false), st: mine}
	ctx, cancel := context.WithCancel(context.Background())
	d, err := StartDispatcher(ctx, DispatcherOptions{Executor: exec, Claims: mine, Description: "test", ClaimRetry: 10 * time.Millisecond,
		Requests: mine, RequestPoll: 20 * time.Millisecond, Log: logrus.NewEntry(logrus.New())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); d.Wait() })

	first, err := d.Submit(ctx, testJob(store.TriggerPush))
	if err != nil {
		t.Fatal(err)
	}
	waitStarted(t, exec.fakeExecutor, first.BuildID)
	queued, err := d.Submit(ctx, testJob(store.TriggerManual))
	if err != nil {
		t.Fatal(err)
	}
	ask := func(id int64, kind store.RequestKind, actor string) store.RunRequest {
		t.Helper()
		q, err := theirs.RequestRun(ctx, store.NewRunRequest{Pipeline: testRef, BuildID: id, Kind: kind, Actor: actor})
		if err != nil {
			t.Fatal(err)
		}
		if q.Holder != d.Holder() {
			t.Fatalf("request addressed to %q, want the dispatcher's holder %q", q.Holder, d.Holder())
		}
		return waitOutcome(t, theirs, q)
	}

	// The queued run never starts.
	if q := ask(queued.BuildID, store.RequestCancel, "carol"); q.Outcome != store.RequestDone {
		t.Fatalf("cancel of the queued run: %+v", q)
	}
	waitDone(t, d, queued.BuildID)
	if got := exec.endedAs(queued.BuildID); got != "cancelled: cancelled by request of carol" {
		t.Fatalf("queued run ended %q", got)
	}
	// Someone the gate does not admit is refused, as on a local call; alice is let through.
	if q := ask(first.BuildID, store.RequestApprove, "mallory"); q.Outcome != store.RequestNotApprover || !strings.Contains(q.Detail, "mallory may not approve") {
		t.Fatalf("mallory's approval: %+v", q)
	}
	if q := ask(first.BuildID, store.RequestApprove, "alice"); q.Outcome != store.RequestDone {
		t.Fatalf("alice's approval: %+v", q)
	}
	waitDone(t, d, first.BuildID)
	if got := exec.endedAs(first.BuildID); got != "answered by alice, approve true" {
		t.Fatalf("gated run ended %q", got)
	}

	// A running run is cancelled; one that no longer runs here is refused.
	third, err := d.Submit(ctx, testJob(store.TriggerPush))
	if err != nil {
		t.Fatal(err)
	}
	waitStarted(t, exec.fakeExecutor, third.BuildID)
	if q := ask(third.BuildID, store.RequestCancel, "carol"); q.Outcome != store.RequestDone {
		t.Fatalf("cancel of the running run: %+v", q)
	}
	waitDone(t, d, third.BuildID)
	if got := exec.endedAs(third.BuildID); got != "cancelled" {
		t.Fatalf("running run ended %q", got)
	}
	if q := ask(first.BuildID, store.RequestReject, "alice"); q.Outcome != store.RequestNotActive {
		t.Fatalf("an answer for a run no longer held: %+v", q)
	}

	entries, err := theirs.ListAudit(ctx, store.AuditFilter{Pipeline: testRef})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, fmt.Sprintf("%s:%s:%d", e.Actor, e.Action, e.BuildID))
	}
	want := fmt.Sprintf("carol:cancel:%d alice:approve:%d carol:cancel:%d", third.BuildID, first.BuildID, queued.BuildID)
	if strings.Join(got, " ") != want {
		t.Fatalf("audit %v, want %s (refusals are not audited)", got, want)
	}
}
