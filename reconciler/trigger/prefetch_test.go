package trigger

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/slipwayhq/slipway/pipeline"
)

func (g *fakeGit) prefetched() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.prefetches)
}

// A webhook's commit is fetched while the refs are listed, but the run is of the head the
// listing shows: a delivery naming another commit (stale, replayed or forged) starts no
// run of it.
func TestLookPrefetchesTheHintedCommitAndRunsTheListedHead(t *testing.T) {
	r := newRig(t, 0, commitOf("c1", ""), commitOf("c2", ""), commitOf("c3", ""))
	r.files.files[sha("c2")] = []*pipeline.Pipeline{pl("web", nil)}
	r.files.files[sha("c3")] = []*pipeline.Pipeline{pl("web", nil)}
	r.records.head = sha("c1")
	r.git.setHead(sha("c2"))
	ctx := context.Background()

	if err := r.w.lookAll(ctx, []Hint{{DeliveryID: "d2", Branch: testBranch, Commit: sha("c2")}}); err != nil {
		t.Fatal(err)
	}
	if got := r.git.prefetched(); !slices.Equal(got, []string{sha("c2")}) {
		t.Fatalf("prefetched %v, want the pushed c2", got)
	}
	if submitted, _, _ := r.runs.jobs(); !slices.Equal(describe(submitted), []string{"web@c2/push"}) {
		t.Fatalf("started %v, want web@c2", describe(submitted))
	}

	// The branch's head is still c2; a delivery claims c3 is: c3 is fetched, nothing runs.
	if err := r.w.lookAll(ctx, []Hint{{DeliveryID: "forged", Branch: testBranch, Commit: sha("c3")}}); err != nil {
		t.Fatal(err)
	}
	if got := r.git.prefetched(); !slices.Equal(got, []string{sha("c2"), sha("c3")}) {
		t.Fatalf("prefetched %v, want c2 then c3", got)
	}
	// Its objects are in the mirror now, but it is not in the head's history: not recorded
	// as a push to the branch either.
	if submitted, sup, _ := r.runs.jobs(); !slices.Equal(describe(submitted), []string{"web@c2/push"}) || len(sup) != 0 {
		t.Fatalf("after a delivery naming a commit that is not the head, started %v, superseded %v; want web@c2 only",
			describe(submitted), describe(sup))
	}
	if n := testutil.ToFloat64(r.metrics.rejected.WithLabelValues("app", "unknown_commit")); n != 1 {
		t.Fatalf("unknown_commit rejections %v, want 1", n)
	}
}

// Two pushes answered by one look: the newer is prefetched; the listing shows yet another
// head, pushed meanwhile. The prefetched commit is in that head's history, so it is
// recorded as overtaken, as a commit the sync brought would be.
func TestLookRecordsAPrefetchedCommitTheHeadOvertook(t *testing.T) {
	r := newRig(t, 0, commitOf("c1", ""), commitOf("c2", ""), commitOf("c3", ""))
	r.files.files[sha("c3")] = []*pipeline.Pipeline{pl("web", nil)}
	r.records.head = sha("c1")
	r.git.setHead(sha("c3"))
	r.git.history[sha("c2")] = true
	r.git.changed["c1..c3"] = []string{"a"}
	r.git.changed["c1..c2"] = []string{"a"}
	if err := r.w.lookAll(context.Background(), []Hint{{DeliveryID: "d2", Branch: testBranch, Commit: sha("c2")}}); err != nil {
		t.Fatal(err)
	}
	if got := r.git.prefetched(); !slices.Equal(got, []string{sha("c2")}) {
		t.Fatalf("prefetched %v, want c2", got)
	}
	if submitted, sup, _ := r.runs.jobs(); !slices.Equal(describe(submitted), []string{"web@c3/push"}) ||
		!slices.Equal(describe(sup), []string{"web@c2/push"}) {
		t.Fatalf("started %v, superseded %v; want web@c3 started and web@c2 superseded", describe(submitted), describe(sup))
	}
}

// Nothing is prefetched for a poll, a commit already handled, a branch not tracked, a tag
// push or a hint without a commit; of several hints of one branch, the newest commit only.
func TestLookPrefetchesOnlyNewTrackedCommits(t *testing.T) {
	r := newRig(t, 0, commitOf("c1", ""), commitOf("c2", ""), commitOf("c3", ""))
	r.files.files[sha("c1")] = []*pipeline.Pipeline{pl("web", nil)}
	r.files.files[sha("c3")] = []*pipeline.Pipeline{pl("web", nil)}
	r.records.head = sha("c1")
	r.git.setHead(sha("c1"))
	ctx := context.Background()
	for _, hints := range [][]Hint{
		nil,
		{{Branch: testBranch, Commit: sha("c1")}},
		{{Branch: "feature/x", Commit: sha("c2")}},
		{{Tag: "v1", Commit: sha("c2")}},
		{{Branch: testBranch}},
	} {
		if err := r.w.lookAll(ctx, hints); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.git.prefetched(); len(got) != 0 {
		t.Fatalf("prefetched %v, want nothing", got)
	}
	r.git.setHead(sha("c3"))
	if err := r.w.lookAll(ctx, []Hint{{Branch: testBranch, Commit: sha("c2")}, {Branch: testBranch, Commit: sha("c3")}}); err != nil {
		t.Fatal(err)
	}
	if got := r.git.prefetched(); !slices.Equal(got, []string{sha("c3")}) {
		t.Fatalf("prefetched %v, want the newest hint's c3 only", got)
	}
}

// A failed prefetch costs nothing but itself: the look syncs and runs the head.
func TestLookGoesOnWhenThePrefetchFails(t *testing.T) {
	r := newRig(t, 0, commitOf("c1", ""), commitOf("c2", ""))
	r.files.files[sha("c2")] = []*pipeline.Pipeline{pl("web", nil)}
	r.records.head = sha("c1")
	r.git.setHead(sha("c2"))
	r.git.prefetchErr = errors.New("server refused the want")
	if err := r.w.lookAll(context.Background(), []Hint{{Branch: testBranch, Commit: sha("c2"), Received: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if submitted, _, _ := r.runs.jobs(); !slices.Equal(describe(submitted), []string{"web@c2/push"}) {
		t.Fatalf("started %v, want web@c2", describe(submitted))
	}
	if syncs, _, _ := r.git.counts(); syncs != 1 {
		t.Fatalf("%d syncs, want 1", syncs)
	}
}
