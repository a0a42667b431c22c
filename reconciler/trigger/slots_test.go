package trigger

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/sources"
)

// opLog is the order in which the Git operations of several watchers' fakes started.
type opLog struct {
	mu  sync.Mutex
	ops []string
}

func (l *opLog) add(op string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ops = append(l.ops, op)
}

func (l *opLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ops)
}

// orderedGit is a fakeGit that writes each listing, fetch and prefetch to a shared log as
// it starts; refsGate, when set, holds the listing until it is closed.
type orderedGit struct {
	*fakeGit
	name     string
	log      *opLog
	refsGate chan struct{}
}

func (g *orderedGit) Refs(ctx context.Context, repo sources.Repo) (sources.Refs, error) {
	g.log.add(g.name + ":refs")
	if g.refsGate != nil {
		<-g.refsGate
	}
	return g.fakeGit.Refs(ctx, repo)
}

func (g *orderedGit) SyncListed(ctx context.Context, repo sources.Repo, branch string, listed sources.Refs) (sources.SyncResult, error) {
	g.log.add(g.name + ":sync")
	return g.fakeGit.SyncListed(ctx, repo, branch, listed)
}

func (g *orderedGit) Prefetch(ctx context.Context, repo sources.Repo, commit string) (bool, error) {
	g.log.add(g.name + ":prefetch")
	return g.fakeGit.Prefetch(ctx, repo, commit)
}

// slotRig is a rig whose watcher logs its Git operations to log and shares limiter.
func slotRig(t *testing.T, name string, log *opLog, limiter *HostLimiter) (*rig, *orderedGit) {
	r := newRig(t, 0, commitOf("c1", ""), commitOf("c2", ""))
	r.files.files[sha("c2")] = []*pipeline.Pipeline{pl("web", nil)}
	r.records.head = sha("c1")
	r.git.setHead(sha("c2"))
	g := &orderedGit{fakeGit: r.git, name: name, log: log}
	r.w = NewBranchWatcher(BranchWatcherOptions{Git: g, Pipelines: r.files, Runs: r.runs, Records: r.records,
		Repo: testRepo, Branch: testBranch, Schedules: r.schedules, Metrics: r.metrics, Audit: r.records,
		Log: r.log, Limiter: limiter})
	return r, g
}

// lookWithin runs a look and fails the test unless it ends within a few seconds, without
// error. It may be called from any goroutine.
func lookWithin(t *testing.T, w *BranchWatcher, hints []Hint) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- w.lookAll(context.Background(), hints) }()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the look did not end: it waits for a Git host slot it can never get")
	}
}

// When many repositories on one host are looked at at once (a push to each), a look keeps
// the slot of its listing for its fetch: one that gave it back would queue again behind
// every other repository's listing, and no run would start until all had listed.
func TestALookKeepsItsGitSlotFromTheListingToTheFetch(t *testing.T) {
	log := &opLog{}
	limiter := &HostLimiter{PerHost: 1}
	first, firstGit := slotRig(t, "first", log, limiter)
	second, _ := slotRig(t, "second", log, limiter)
	firstGit.refsGate = make(chan struct{})

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); lookWithin(t, first.w, nil) }()
	for !slices.Contains(log.list(), "first:refs") {
		time.Sleep(time.Millisecond)
	}
	go func() { defer wg.Done(); lookWithin(t, second.w, nil) }()
	// The second look is now waiting for the host's one slot: let the first list.
	time.Sleep(50 * time.Millisecond)
	close(firstGit.refsGate)
	wg.Wait()

	want := []string{"first:refs", "first:sync", "second:refs", "second:sync"}
	if got := log.list(); !slices.Equal(got, want) {
		t.Fatalf("Git operations in the order %v, want %v", got, want)
	}
	for _, r := range []*rig{first, second} {
		if submitted, _, _ := r.runs.jobs(); !slices.Equal(describe(submitted), []string{"web@c2/push"}) {
			t.Fatalf("started %v, want web@c2", describe(submitted))
		}
	}
}

// A look waits for its prefetch while it holds a slot, so the prefetch takes only a free
// one; with none free the look fetches the pushed commit itself, in its own slot, after
// the listing. It still brings the commit, and it never waits forever.
func TestAPrefetchWithoutAFreeSlotRunsInTheLooksOwn(t *testing.T) {
	log := &opLog{}
	limiter := &HostLimiter{PerHost: 1}
	r, _ := slotRig(t, "look", log, limiter)
	release, err := limiter.Acquire(context.Background(), testRepo.URL)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, release)

	lookWithin(t, r.w, []Hint{{DeliveryID: "d2", Branch: testBranch, Commit: sha("c2")}})
	if got, want := log.list(), []string{"look:refs", "look:prefetch", "look:sync"}; !slices.Equal(got, want) {
		t.Fatalf("Git operations in the order %v, want %v", got, want)
	}
	if got := r.git.prefetched(); !slices.Equal(got, []string{sha("c2")}) {
		t.Fatalf("prefetched %v, want the pushed c2", got)
	}
	if submitted, _, _ := r.runs.jobs(); !slices.Equal(describe(submitted), []string{"web@c2/push"}) {
		t.Fatalf("started %v, want web@c2", describe(submitted))
	}
}

// With a slot free, the prefetch overlaps the listing, as it does without a limiter: the
// listing here waits for the prefetch to have started.
func TestAPrefetchWithAFreeSlotOverlapsTheListing(t *testing.T) {
	log := &opLog{}
	r, g := slotRig(t, "look", log, &HostLimiter{PerHost: 2})
	g.refsGate = make(chan struct{})
	go func() {
		for !slices.Contains(log.list(), "look:prefetch") {
			time.Sleep(time.Millisecond)
		}
		close(g.refsGate)
	}()
	lookWithin(t, r.w, []Hint{{DeliveryID: "d2", Branch: testBranch, Commit: sha("c2")}})
	if got := r.git.prefetched(); !slices.Equal(got, []string{sha("c2")}) {
		t.Fatalf("prefetched %v, want the pushed c2", got)
	}
}
