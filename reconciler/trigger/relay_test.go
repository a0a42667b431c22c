package trigger

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/policy"
	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/store"
)

// elsewhereRuns is a run engine that holds none of the runs: every cancel and answer is
// for another process.
type elsewhereRuns struct{ *fakeRuns }

func (elsewhereRuns) Cancel(context.Context, store.PipelineRef, int64, string) error {
	return reconciler.ErrNotActive
}
func (elsewhereRuns) Answer(context.Context, store.PipelineRef, int64, policy.Answer) error {
	return reconciler.ErrNotActive
}

// A hub that does not hold a run leaves the request in the store for its holder and
// answers with the holder's outcome: done, a refusal the caller can tell apart, or
// pending when the holder does not answer in time. It audits nothing itself: the holder
// does, having acted. A run that has ended is refused at once.
func TestHubRelaysToTheRunsHolder(t *testing.T) {
	ctx := context.Background()
	r, _ := newHubRig(t)
	h := NewHub(HubOptions{Pipelines: r.files, Dispatcher: elsewhereRuns{r.runs}, Records: r.records, Metrics: r.metrics,
		Audit: r.audit, Requests: r.audit, RelayWait: 2 * time.Second})
	h.Add(r.w)
	run := func() store.Run {
		run, err := r.audit.CreateRun(ctx, store.NewRun{Pipeline: webRef, Commit: "c0", Trigger: store.TriggerPush, Holder: "other"})
		if err != nil {
			t.Fatal(err)
		}
		return run
	}
	// holder plays the other process once: it takes what is waiting and answers outcome.
	holder := func(outcome store.RequestOutcome, detail string) {
		go func() {
			for range 100 {
				qs, err := r.audit.TakeRunRequests(ctx, "other")
				if err == nil && len(qs) > 0 {
					for _, q := range qs {
						_ = r.audit.FinishRunRequest(ctx, q, outcome, detail)
					}
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}

	first := run()
	holder(store.RequestDone, "")
	if err := h.Cancel(ctx, webRef, first.BuildID, "carol"); err != nil {
		t.Fatalf("relayed cancel: %v", err)
	}
	holder(store.RequestNotApprover, "mallory may not approve stage prod")
	err := h.Approve(ctx, webRef, first.BuildID, "mallory", true, "")
	var relayed *RelayedError
	if !errors.Is(err, policy.ErrNotApprover) || !errors.As(err, &relayed) || relayed.Request.Actor != "mallory" {
		t.Fatalf("relayed approval by someone the holder refuses: %v", err)
	}
	if got := auditOf(t, r); len(got) != 0 {
		t.Fatalf("the relaying hub audited %v; the holder audits what it did", got)
	}

	// Nobody takes it: pending, still recorded for the holder.
	h.relayWait = 300 * time.Millisecond
	err = h.Approve(ctx, webRef, first.BuildID, "alice", false, "no")
	var pending *PendingError
	if !errors.As(err, &pending) || pending.Request.Kind != store.RequestReject || pending.Request.Holder != "other" {
		t.Fatalf("an answer nobody takes: %v", err)
	}
	if q, err := r.audit.GetRunRequest(ctx, pending.Request.ID); err != nil || q.Outcome != store.RequestPending {
		t.Fatalf("the pending request: %+v, %v", q, err)
	}

	// A run that has ended takes no request.
	if _, err := r.audit.TransitionRun(ctx, webRef, first.BuildID, store.RunQueued, store.RunCancelled, ""); err != nil {
		t.Fatal(err)
	}
	if err := h.Cancel(ctx, webRef, first.BuildID, "carol"); !errors.Is(err, store.ErrRunEnded) || !errors.Is(err, reconciler.ErrNotActive) {
		t.Fatalf("cancel of an ended run: %v, want store.ErrRunEnded and reconciler.ErrNotActive", err)
	}
	if q, err := r.audit.GetRunRequest(ctx, pending.Request.ID); err != nil || q.Outcome != store.RequestRunEnded {
		t.Fatalf("the pending request once the run ended: %+v, %v", q, err)
	}
}
