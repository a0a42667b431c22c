package store

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestDriftPolicyIsKeptWithTheRevision(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	mustRun(t, s, testPipeline)
	policy := DriftPolicy{Mode: DriftReport, Ignore: []DriftIgnoreRule{{Kind: "Deployment", Paths: []string{"/spec/replicas"}}}}
	if _, err := s.SaveRevision(ctx, NewRevision{Pipeline: testPipeline, BuildID: 1, Task: "web", Cluster: "local",
		Kind: DeployYAML, Objects: []byte("a: 1"), Drift: policy}); err != nil {
		t.Fatal(err)
	}
	rev, err := s.GetRevision(ctx, testPipeline, 1, "web")
	if err != nil {
		t.Fatal(err)
	}
	if rev.Drift.Mode != DriftReport || len(rev.Drift.Ignore) != 1 || rev.Drift.Ignore[0].Paths[0] != "/spec/replicas" || rev.Drift.Ignore[0].Kind != "Deployment" {
		t.Fatalf("drift policy read back as %+v", rev.Drift)
	}
	if got := (DriftPolicy{}).EffectiveMode(); got != DriftCorrect {
		t.Fatalf("default mode %q, want correct", got)
	}
}

// The current revision of a task is its newest healthy, applied or failed one: a rolled-back
// revision hands over to the one it went back to.
func TestCurrentRevisionsSkipRolledBack(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	other := PipelineRef{Repository: testPipeline.Repository, Name: "other"}
	for id := int64(1); id <= 3; id++ {
		mustRun(t, s, testPipeline)
		if _, err := s.SaveRevision(ctx, NewRevision{Pipeline: testPipeline, BuildID: id, Task: "web", Cluster: "local",
			Kind: DeployYAML, Objects: []byte("a: 1")}); err != nil {
			t.Fatal(err)
		}
	}
	mustRun(t, s, other)
	if _, err := s.SaveRevision(ctx, NewRevision{Pipeline: other, BuildID: 1, Task: "db", Cluster: "local",
		Kind: DeployYAML, Objects: []byte("a: 1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TransitionRevision(ctx, testPipeline, 2, "web", RevisionApplied, RevisionHealthy, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TransitionRevision(ctx, testPipeline, 3, "web", RevisionApplied, RevisionRolledBack, "rolled back to BUILD_ID 2"); err != nil {
		t.Fatal(err)
	}
	revs, err := s.CurrentRevisions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) != 2 || revs[0].Pipeline != testPipeline || revs[0].BuildID != 2 || revs[1].Pipeline != other || revs[1].Task != "db" {
		t.Fatalf("current revisions: %+v", revs)
	}
}

// A chart deploy that Helm failed before it rendered anything put nothing on the cluster:
// the revision before it stays current. A failed one that did apply objects is current.
func TestCurrentRevisionsSkipFailedWithoutObjects(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	chart := &ChartRelease{Chart: "web", Version: "1.0.0"}
	save := func(id int64, status RevisionStatus, objects string) {
		t.Helper()
		mustRun(t, s, testPipeline)
		if _, err := s.SaveRevision(ctx, NewRevision{Pipeline: testPipeline, BuildID: id, Task: "web", Cluster: "local",
			Kind: DeployChart, Chart: chart, Status: status, Objects: []byte(objects)}); err != nil {
			t.Fatal(err)
		}
	}
	save(1, RevisionApplied, "a: 1")
	save(2, RevisionFailed, "")
	current := func() int64 {
		t.Helper()
		revs, err := s.CurrentRevisions(ctx)
		if err != nil || len(revs) != 1 {
			t.Fatalf("current revisions %+v: %v", revs, err)
		}
		return revs[0].BuildID
	}
	if id := current(); id != 1 {
		t.Fatalf("current is BUILD_ID %d, want 1: 2 failed before applying anything", id)
	}
	save(3, RevisionFailed, "a: 2")
	if id := current(); id != 3 {
		t.Fatalf("current is BUILD_ID %d, want 3: its objects are on the cluster", id)
	}
}

func TestDriftEventsRoundTripNewestFirst(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	s, _ := openTest(t, WithClock(clock.now))
	ctx := testCtx(t)
	mustRun(t, s, testPipeline)
	obj := InventoryEntry{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "game", Name: "web", Digest: "sha256:x"}
	changed := clock.t.Add(-time.Second)
	first, err := s.RecordDriftEvent(ctx, NewDriftEvent{Pipeline: testPipeline, BuildID: 1, Task: "web", Cluster: "local",
		Object: obj, Action: DriftReported, Patch: `[{"op":"replace","path":"/spec/replicas","value":1}]`,
		Manager: "kubectl", ChangedAt: changed})
	if err != nil {
		t.Fatal(err)
	}
	if !first.DetectedAt.Equal(clock.t) || first.Object.Digest != "" {
		t.Fatalf("recorded %+v", first)
	}
	clock.advance(time.Minute)
	if _, err := s.RecordDriftEvent(ctx, NewDriftEvent{Pipeline: testPipeline, BuildID: 1, Task: "web", Cluster: "local",
		Object: obj, Action: DriftCorrected, Gone: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordDriftEvent(ctx, NewDriftEvent{Pipeline: testPipeline, BuildID: 1, Task: "web", Cluster: "local",
		Object: obj, Action: "ignored"}); err == nil {
		t.Fatal("an unknown action was recorded")
	}
	evs, err := s.ListDriftEvents(ctx, testPipeline, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Action != DriftCorrected || !evs[0].Gone || !evs[0].ChangedAt.IsZero() {
		t.Fatalf("events %+v", evs)
	}
	e := evs[1]
	if e.ID != first.ID || e.Manager != "kubectl" || !e.ChangedAt.Equal(changed) || e.Object.Name != "web" || e.Object.Group != "apps" ||
		e.Patch != first.Patch || e.Gone || !e.DetectedAt.Equal(clock.t.Add(-time.Minute)) {
		t.Fatalf("event read back as %+v, recorded %+v", e, first)
	}
	if evs, err := s.ListDriftEvents(ctx, testPipeline, 1); err != nil || len(evs) != 1 || evs[0].Action != DriftCorrected {
		t.Fatalf("limit 1: %+v %v", evs, err)
	}
}

// A reader that keeps what it parsed gets the revisions it knows without their objects and
// inventory, and every other field as CurrentRevisions has it; the rest come in full, one
// at a time, each its own copy.
func TestEachCurrentRevisionLeavesOutKnownObjects(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	other := PipelineRef{Repository: testPipeline.Repository, Name: "other"}
	inv := []InventoryEntry{{Version: "v1", Kind: "ConfigMap", Namespace: "apps", Name: "web", Digest: "sha256:d"}}
	for _, p := range []PipelineRef{testPipeline, other} {
		mustRun(t, s, p)
		if _, err := s.SaveRevision(ctx, NewRevision{Pipeline: p, BuildID: 1, Task: "web", Cluster: "local", Kind: DeployYAML,
			Objects: []byte("kind: ConfigMap\n"), Inventory: inv, Masks: []string{"s3cret"},
			Drift: DriftPolicy{Mode: DriftReport}}); err != nil {
			t.Fatal(err)
		}
	}
	full, err := s.CurrentRevisions(ctx)
	if err != nil || len(full) != 2 {
		t.Fatalf("current revisions %d: %v", len(full), err)
	}
	var asked []PipelineRef
	var revs []*Revision
	err = s.EachCurrentRevision(ctx, func(r *Revision) bool {
		asked = append(asked, r.Pipeline)
		if r.ObjectsDigest != full[0].ObjectsDigest {
			t.Errorf("known sees objects digest %q, want %q", r.ObjectsDigest, full[0].ObjectsDigest)
		}
		return r.Pipeline == testPipeline
	}, func(r *Revision) error {
		revs = append(revs, r)
		return nil
	})
	if err != nil || len(revs) != 2 || len(asked) != 2 {
		t.Fatalf("current revisions but known: %d, asked %v: %v", len(revs), asked, err)
	}
	if revs[0] == revs[1] {
		t.Fatal("fn was handed the same record twice: it cannot keep one")
	}
	for i, r := range revs {
		want := full[i]
		if r.Pipeline == testPipeline {
			if r.Objects != nil || r.Inventory != nil {
				t.Errorf("%s: known, but its objects (%q) or inventory (%v) were read", r.Pipeline, r.Objects, r.Inventory)
			}
			want.Objects, want.Inventory = nil, nil
		}
		if !reflect.DeepEqual(*r, want) {
			t.Errorf("revision %d:\n got %+v\nwant %+v", i, *r, want)
		}
	}
	if string(revs[1].Objects) != "kind: ConfigMap\n" || len(revs[1].Inventory) != 1 || revs[1].Masks[0] != "s3cret" {
		t.Errorf("the unknown revision is not read in full: %+v", revs[1])
	}
	// fn's error ends the reading and comes back as it is.
	stop := errors.New("enough")
	n := 0
	err = s.EachCurrentRevision(ctx, nil, func(*Revision) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("fn's error: %v after %d revisions, want %v after 1", err, n, stop)
	}
}

// EachCurrentRevisionOf reads the current revisions of the pipelines asked for only (what
// a watch reloads after their runs), as EachCurrentRevision has them.
func TestEachCurrentRevisionOfReadsThosePipelinesOnly(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	other := PipelineRef{Repository: testPipeline.Repository, Name: "other"}
	third := PipelineRef{Repository: "elsewhere", Name: testPipeline.Name}
	for _, p := range []PipelineRef{testPipeline, other, third} {
		for id := int64(1); id <= 2; id++ {
			mustRun(t, s, p)
			for _, task := range []string{"web", "db"} {
				if _, err := s.SaveRevision(ctx, NewRevision{Pipeline: p, BuildID: id, Task: task, Cluster: "local",
					Kind: DeployYAML, Objects: []byte("a: 1"), Status: RevisionHealthy}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	// Build 2's web of the first pipeline is rolled back: build 1's is current.
	if _, err := s.TransitionRevision(ctx, testPipeline, 2, "web", RevisionHealthy, RevisionRolledBack, "rolled back"); err != nil {
		t.Fatal(err)
	}
	all, err := s.CurrentRevisions(ctx)
	if err != nil || len(all) != 6 {
		t.Fatalf("current revisions: %d, %v", len(all), err)
	}
	var got []Revision
	unknown := PipelineRef{Repository: "nowhere", Name: "x"}
	err = s.EachCurrentRevisionOf(ctx, []PipelineRef{third, unknown, testPipeline}, nil, func(r *Revision) error {
		got = append(got, *r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []Revision
	for _, p := range []PipelineRef{third, testPipeline} {
		for _, r := range all {
			if r.Pipeline == p {
				want = append(want, r)
			}
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("current revisions of two pipelines:\n got %+v\nwant %+v", got, want)
	}
	if got[2].Task != "db" || got[2].BuildID != 2 || got[3].Task != "web" || got[3].BuildID != 1 {
		t.Fatalf("the first pipeline's current revisions: %+v", got[2:])
	}
	// known leaves objects out as EachCurrentRevision does; no pipelines, no read.
	err = s.EachCurrentRevisionOf(ctx, []PipelineRef{other}, func(*Revision) bool { return true }, func(r *Revision) error {
		if r.Objects != nil || r.Pipeline != other {
			t.Errorf("known revision of %s read with its objects %q", r.Pipeline, r.Objects)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EachCurrentRevisionOf(ctx, nil, nil, func(r *Revision) error {
		t.Errorf("no pipelines asked for, yet %s handed out", r.Pipeline)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
