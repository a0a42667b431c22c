package store

import (
	"errors"
	"testing"
	"time"
)

// A run that finishes or waits for approval, and a drift event, each write one outbox
// event in their own transaction; other moves write none, nor does a store without
// WithNotifications.
func TestNotificationOutboxFollowsChanges(t *testing.T) {
	for _, on := range []bool{true, false} {
		var opts []Option
		if on {
			opts = append(opts, WithNotifications())
		}
		s, _ := openTest(t, opts...)
		ctx := testCtx(t)
		mustRun(t, s, testPipeline)
		mustRun(t, s, testPipeline)
		for _, mv := range []struct {
			id       int64
			from, to RunStatus
		}{{1, RunQueued, RunRunning}, {1, RunRunning, RunAwaitingApproval}, {1, RunAwaitingApproval, RunRunning}, {1, RunRunning, RunSucceeded}, {2, RunQueued, RunCancelled}} {
			if _, err := s.TransitionRun(ctx, testPipeline, mv.id, mv.from, mv.to, ""); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.RecordDriftEvent(ctx, NewDriftEvent{Pipeline: testPipeline, BuildID: 1, Task: "web", Cluster: "local",
			Object: InventoryEntry{Version: "v1", Kind: "ConfigMap", Namespace: "ns", Name: "cm"}, Action: DriftCorrected}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RecordDriftEvent(ctx, NewDriftEvent{Pipeline: testPipeline, BuildID: 1, Task: "web", Cluster: "local",
			Object: InventoryEntry{Version: "v1", Kind: "Pod", Namespace: "ns", Name: "p"}, Action: HealthUnhealthy}); err != nil {
			t.Fatal(err)
		}
		evs, err := s.UndispatchedEvents(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		if !on {
			if len(evs) != 0 {
				t.Fatalf("outbox off, yet events %+v", evs)
			}
			continue
		}
		var got []string
		for _, e := range evs {
			got = append(got, string(e.Kind)+":"+e.Status)
		}
		want := "run:awaiting_approval run:succeeded run:cancelled drift:corrected"
		if s := join(got); s != want {
			t.Fatalf("events %s, want %s", s, want)
		}
		if evs[3].DriftEventID == 0 || evs[1].BuildID != 1 || evs[2].BuildID != 2 || evs[0].Pipeline != testPipeline {
			t.Errorf("events %+v", evs)
		}
	}
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}

// Deliveries: dispatched with the event in one step; claimed for a lease; a sent one is
// never claimed again; a failed one comes back when due; given up, it stays failed.
func TestDeliveryQueue(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	s, path := openTest(t, WithNotifications(), WithClock(clk.now))
	ctx := testCtx(t)
	mustRun(t, s, testPipeline)
	if _, err := s.TransitionRun(ctx, testPipeline, 1, RunQueued, RunFailed, "bad file"); err != nil {
		t.Fatal(err)
	}
	evs, err := s.UndispatchedEvents(ctx, 10)
	if err != nil || len(evs) != 1 {
		t.Fatalf("%v %+v", err, evs)
	}
	ds := []NewDelivery{{Target: "hook", Event: "run.failed", Message: []byte(`{"a":1}`)}, {Target: "mail", Event: "run.failed", Message: []byte(`{"a":1}`)}}
	if err := s.DispatchEvent(ctx, evs[0].ID, ds); err != nil {
		t.Fatal(err)
	}
	// A second dispatch (another notifier) adds nothing.
	if err := s.DispatchEvent(ctx, evs[0].ID, ds); err != nil {
		t.Fatal(err)
	}
	if evs, _ := s.UndispatchedEvents(ctx, 10); len(evs) != 0 {
		t.Fatalf("dispatched event still undispatched: %+v", evs)
	}
	hook, err := s.ClaimDeliveries(ctx, "hook", time.Minute, 10)
	if err != nil || len(hook) != 1 || hook[0].Attempts != 1 || string(hook[0].Message) != `{"a":1}` || hook[0].Event != "run.failed" {
		t.Fatalf("claim: %v %+v", err, hook)
	}
	if again, _ := s.ClaimDeliveries(ctx, "hook", time.Minute, 10); len(again) != 0 {
		t.Fatalf("claimed twice within the lease: %+v", again)
	}
	// The lease runs out (a crash mid-attempt): the delivery is due again.
	clk.advance(2 * time.Minute)
	hook, _ = s.ClaimDeliveries(ctx, "hook", time.Minute, 10)
	if len(hook) != 1 || hook[0].Attempts != 2 {
		t.Fatalf("after the lease: %+v", hook)
	}
	if err := s.MarkDeliveryFailed(ctx, hook[0].ID, "connection refused", clk.now().Add(5*time.Second), false); err != nil {
		t.Fatal(err)
	}
	if next, ok, err := s.NextDeliveryDue(ctx, "hook"); err != nil || !ok || !next.Equal(clk.now().Add(5*time.Second)) {
		t.Fatalf("next due %v %v %v", next, ok, err)
	}
	if early, _ := s.ClaimDeliveries(ctx, "hook", time.Minute, 10); len(early) != 0 {
		t.Fatal("claimed before it was due")
	}
	clk.advance(5 * time.Second)
	// Another handle on the same file (a restarted daemon) sees the same queue.
	s2 := openAt(t, path, WithNotifications(), WithClock(clk.now))
	hook, _ = s2.ClaimDeliveries(ctx, "hook", time.Minute, 10)
	if len(hook) != 1 || hook[0].Attempts != 3 || hook[0].LastError != "connection refused" {
		t.Fatalf("retry: %+v", hook)
	}
	if err := s2.MarkDeliverySent(ctx, hook[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := s2.MarkDeliverySent(ctx, hook[0].ID); !errors.Is(err, ErrDeliveryNotPending) {
		t.Fatalf("sent twice: %v", err)
	}
	clk.advance(time.Hour)
	if again, _ := s2.ClaimDeliveries(ctx, "hook", time.Minute, 10); len(again) != 0 {
		t.Fatalf("a sent delivery was claimed again: %+v", again)
	}
	mail, _ := s2.ClaimDeliveries(ctx, "mail", time.Minute, 10)
	if len(mail) != 1 {
		t.Fatalf("mail: %+v", mail)
	}
	if err := s2.MarkDeliveryFailed(ctx, mail[0].ID, "550 no such user", time.Time{}, true); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s2.NextDeliveryDue(ctx, "mail"); ok {
		t.Fatal("a given-up delivery is still due")
	}
	all, _ := s2.ListDeliveries(ctx)
	if len(all) != 2 || all[0].State != DeliverySent || all[1].State != DeliveryFailed || all[1].LastError != "550 no such user" {
		t.Fatalf("deliveries %+v", all)
	}
	if n, err := s2.PruneNotifications(ctx, clk.now()); err != nil || n != 1 {
		t.Fatalf("prune: %d %v", n, err)
	}
	if all, _ := s2.ListDeliveries(ctx); len(all) != 0 {
		t.Fatalf("pruned event's deliveries remain: %+v", all)
	}
}

// MarkStaleRuns' failures are notified like any other.
func TestNotificationOfInterruptedRuns(t *testing.T) {
	s, _ := openTest(t, WithNotifications())
	ctx := testCtx(t)
	mustRun(t, s, testPipeline)
	if _, err := s.MarkStaleRuns(ctx); err != nil {
		t.Fatal(err)
	}
	evs, err := s.UndispatchedEvents(ctx, 10)
	if err != nil || len(evs) != 1 || evs[0].Status != string(RunInterrupted) || evs[0].BuildID != 1 {
		t.Fatalf("%v %+v", err, evs)
	}
}
