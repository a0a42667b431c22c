package store

import (
	"testing"
	"time"
)

func TestPruneDeletesByAgeAndCountInBatchesAndKeepsTheAuditLog(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s, _ := openTest(t, WithClock(clk.now))
	ctx := testCtx(t)
	other := PipelineRef{Repository: "git.example/team/web", Name: "deploy"}
	mustRun(t, s, testPipeline)
	mustRun(t, s, other)
	obj := InventoryEntry{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "game", Name: "web"}
	drift := func(ref PipelineRef) {
		if _, err := s.RecordDriftEvent(ctx, NewDriftEvent{Pipeline: ref, BuildID: 1, Task: "web", Cluster: "local",
			Object: obj, Action: DriftReported}); err != nil {
			t.Fatal(err)
		}
	}
	pr := func(repo string, n int) {
		if _, err := s.RecordPullRequestEvent(ctx, PullRequestEvent{Repository: repo, Number: n, Action: "opened"}); err != nil {
			t.Fatal(err)
		}
	}
	// 30 days ago: 7 of everything, and audit entries.
	for i := range 7 {
		drift(testPipeline)
		pr("app", i+1)
		if _, err := s.RecordDelivery(ctx, "app", "old-"+string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RecordAudit(ctx, AuditEntry{Actor: "alice", Action: AuditTrigger, Pipeline: testPipeline, BuildID: 1}); err != nil {
			t.Fatal(err)
		}
	}
	clk.advance(30 * 24 * time.Hour)
	// Now: 5 drift events of testPipeline, 2 of other; 4 pull request events of app, 1 of web.
	for range 5 {
		drift(testPipeline)
	}
	drift(other)
	drift(other)
	for i := range 4 {
		pr("app", 100+i)
	}
	pr("web", 1)
	if _, err := s.RecordDelivery(ctx, "app", "new"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Prune(ctx, Retention{
		Deliveries:        7 * 24 * time.Hour,
		PullRequestEvents: RecordLimit{MaxAge: 10 * 24 * time.Hour, MaxCount: 3},
		DriftEvents:       RecordLimit{MaxAge: 10 * 24 * time.Hour, MaxCount: 4},
		Batch:             2, // several transactions per kind
	})
	if err != nil {
		t.Fatal(err)
	}
	// Drift: 7 old + 1 over the count of testPipeline; PRs: 7 old + 1 over the count of app.
	want := Pruned{Deliveries: 7, PullRequestEvents: 8, DriftEvents: 8}
	if got != want {
		t.Fatalf("Prune = %+v, want %+v", got, want)
	}
	if evs, _ := s.ListDriftEvents(ctx, testPipeline, 0); len(evs) != 4 {
		t.Errorf("drift events kept of %s: %d, want the newest 4", testPipeline, len(evs))
	}
	if evs, _ := s.ListDriftEvents(ctx, other, 0); len(evs) != 2 {
		t.Errorf("drift events kept of %s: %d, want 2", other, len(evs))
	}
	if evs, _ := s.ListPullRequestEvents(ctx, "app", 0, 0); len(evs) != 3 || evs[2].Number != 101 {
		t.Errorf("pull request events kept of app: %+v, want the newest 3", evs)
	}
	if fresh, _ := s.RecordDelivery(ctx, "app", "new"); fresh {
		t.Error("the recent delivery id was forgotten")
	}
	if fresh, _ := s.RecordDelivery(ctx, "app", "old-a"); !fresh {
		t.Error("an old delivery id was kept")
	}
	if audit, _ := s.ListAudit(ctx, AuditFilter{}); len(audit) != 7 {
		t.Errorf("audit entries after Prune: %d, want all 7", len(audit))
	}
	// Zero limits keep everything.
	if got, err := s.Prune(ctx, Retention{}); err != nil || got != (Pruned{}) {
		t.Errorf("Prune with no limits = %+v, %v", got, err)
	}
}
