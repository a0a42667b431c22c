package store

import (
	"testing"
	"time"
)

func TestRecordDeliveryDeduplicatesAndForgets(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	s, _ := openTest(t, WithClock(clk.now))
	ctx := testCtx(t)
	for i, tc := range []struct {
		repo, id string
		want     bool
	}{
		{"app", "d-1", true},
		{"app", "d-1", false},  // a redelivery
		{"other", "d-1", true}, // ids are per repository
		{"app", "d-2", true},
	} {
		got, err := s.RecordDelivery(ctx, tc.repo, tc.id)
		if err != nil || got != tc.want {
			t.Fatalf("case %d: RecordDelivery(%s, %s) = %v, %v; want %v", i, tc.repo, tc.id, got, err, tc.want)
		}
	}
	clk.advance(7*24*time.Hour + time.Minute)
	if got, err := s.RecordDelivery(ctx, "app", "d-1"); err != nil || got {
		t.Fatalf("before Prune the old id is still known: got %v, %v", got, err)
	}
	if p, err := s.Prune(ctx, Retention{Deliveries: 7 * 24 * time.Hour}); err != nil || p.Deliveries != 3 {
		t.Fatalf("Prune = %+v, %v; want the three old ids deleted", p, err)
	}
	if got, err := s.RecordDelivery(ctx, "app", "d-1"); err != nil || !got {
		t.Fatalf("after the retention a delivery id is new again: got %v, %v", got, err)
	}
	if _, err := s.RecordDelivery(ctx, "app", ""); err == nil {
		t.Fatal("an empty delivery id must be refused")
	}
}

func TestPullRequestEventsRoundTrip(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	for _, e := range []PullRequestEvent{
		{Repository: "app", Number: 7, Action: "opened", Title: "t", Author: "ann", SourceBranch: "feature", TargetBranch: "main", HeadCommit: "aaa", DeliveryID: "x1"},
		{Repository: "app", Number: 8, Action: "opened", HeadCommit: "ccc", DeliveryID: "x2"},
		{Repository: "app", Number: 7, Action: "merged", HeadCommit: "aaa", MergeCommit: "bbb", DeliveryID: "x3"},
	} {
		if _, err := s.RecordPullRequestEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ListPullRequestEvents(ctx, "app", 7, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Action != "merged" || got[0].MergeCommit != "bbb" || got[1].Author != "ann" || got[1].ReceivedAt.IsZero() {
		t.Fatalf("events of #7 = %+v", got)
	}
	if all, _ := s.ListPullRequestEvents(ctx, "app", 0, 0); len(all) != 3 {
		t.Fatalf("all events: %d, want 3", len(all))
	}
	if _, err := s.RecordPullRequestEvent(ctx, PullRequestEvent{Repository: "app"}); err == nil {
		t.Fatal("an event without number and action must be refused")
	}
}

func TestHandledHeadsAndForgottenDeliveries(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	if h, err := s.HandledHead(ctx, "app", "main"); err != nil || h != "" {
		t.Fatalf("no head yet: %q, %v", h, err)
	}
	for _, head := range []string{"aaa", "bbb"} {
		if err := s.SetHandledHead(ctx, "app", "main", head); err != nil {
			t.Fatal(err)
		}
	}
	if h, _ := s.HandledHead(ctx, "app", "main"); h != "bbb" {
		t.Fatalf("head = %q, want the last one set", h)
	}
	if h, _ := s.HandledHead(ctx, "app", "other"); h != "" {
		t.Fatalf("another branch's head = %q", h)
	}
	if fresh, _ := s.RecordDelivery(ctx, "app", "d"); !fresh {
		t.Fatal("first delivery not fresh")
	}
	if err := s.ForgetDelivery(ctx, "app", "d"); err != nil {
		t.Fatal(err)
	}
	if fresh, _ := s.RecordDelivery(ctx, "app", "d"); !fresh {
		t.Fatal("a forgotten delivery id must count as new when it comes again")
	}
}

func TestTagRefs(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	if ok, err := s.TagsScanned(ctx, "app"); err != nil || ok {
		t.Fatalf("scanned before any look: %v, %v", ok, err)
	}
	if err := s.RecordTagBaseline(ctx, "app", map[string]string{"v1.0.0": "aaa"}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.TagsScanned(ctx, "app"); !ok {
		t.Fatal("not scanned after the baseline")
	}
	if ok, _ := s.TagsScanned(ctx, "other"); ok {
		t.Fatal("another repository counts as scanned")
	}
	if err := s.SetTagRef(ctx, TagRef{Repository: "app", Tag: "v1.1.0", Commit: "bbb", State: TagHandled}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetTagRef(ctx, TagRef{Repository: "app", Tag: "v1.1.0", Commit: "ccc", State: TagMoved}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetTagRef(ctx, TagRef{Repository: "app", Tag: "x", State: "lost"}); err == nil {
		t.Fatal("an unknown state must be refused")
	}
	tags, err := s.ListTagRefs(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if len(tags) != 2 || tags["v1.0.0"].State != TagBaseline || tags["v1.1.0"].Commit != "ccc" || tags["v1.1.0"].State != TagMoved {
		t.Fatalf("tags = %+v", tags)
	}
	ref := PipelineRef{Repository: "app", Name: "release"}
	if _, err := s.CreateRun(ctx, NewRun{Pipeline: ref, Commit: "bbb", Tag: "v1.1.0", Trigger: TriggerPush}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateRun(ctx, NewRun{Pipeline: ref, Commit: "bbb", Branch: "main", Trigger: TriggerPush}); err != nil {
		t.Fatal(err)
	}
	runs, err := s.RunsOfTag(ctx, "app", "v1.1.0")
	if err != nil || len(runs) != 1 || runs[0].BuildID != 1 {
		t.Fatalf("runs of the tag = %+v, %v", runs, err)
	}
}
