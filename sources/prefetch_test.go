package sources

import (
	"context"
	"errors"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// newPrefetchMirror serves a fresh origin over smart HTTP and syncs a shallow mirror of it
// once (the listing a prefetch needs): its history is longer than the mirror's depth, as a
// real repository's is.
func newPrefetchMirror(t *testing.T) (*origin, *gitHTTP, *Mirrors, Repo) {
	t.Helper()
	o := newOrigin(t)
	for range 4 {
		o.commit()
	}
	g := serveGitHTTP(t, o)
	repo := g.repo("prefetch")
	m, err := New(Options{DataDir: t.TempDir(), Depth: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Sync(context.Background(), repo, "master"); err != nil {
		t.Fatal(err)
	}
	return o, g, m, repo
}

// A push's commit prefetched while the refs are listed: the sync from that listing finds
// it whole and asks the server for nothing more, so a push costs one listing and one pack
// request that overlap instead of following each other.
func TestPrefetchThenSyncFetchesNothingMore(t *testing.T) {
	ctx := context.Background()
	o, g, m, repo := newPrefetchMirror(t)
	for i := 0; i < 3; i++ {
		head := o.commit()
		l0, f0 := g.counts()
		fetched, err := m.Prefetch(ctx, repo, head)
		if err != nil || !fetched {
			t.Fatalf("push %d: prefetch: fetched %v, %v", i, fetched, err)
		}
		if l, f := g.counts(); l != l0 || f != f0+1 {
			t.Fatalf("push %d: prefetch made %d listings and %d pack requests; want 0 and 1", i, l-l0, f-f0)
		}
		refs, err := m.Refs(ctx, repo)
		if err != nil {
			t.Fatal(err)
		}
		res, err := m.SyncListed(ctx, repo, "master", refs)
		if err != nil {
			t.Fatal(err)
		}
		if res.Commit != head {
			t.Fatalf("push %d: sync %+v, want head %s", i, res, head)
		}
		if l, f := g.counts(); l != l0+1 || f != f0+1 {
			t.Fatalf("push %d: prefetch and sync made %d listings and %d pack requests; want 1 and 1", i, l-l0, f-f0)
		}
		if _, err := m.Commit(ctx, repo, head); err != nil {
			t.Fatalf("push %d: the prefetched head is not readable: %v", i, err)
		}
		if err := m.Checkout(ctx, repo, head, t.TempDir()+"/co"); err != nil {
			t.Fatalf("push %d: check out the prefetched head: %v", i, err)
		}
	}
}

// A payload naming a commit that is not the branch's head (a forged or stale delivery
// naming another branch's tip): the prefetch brings its objects but moves no ref, and the
// sync takes the head the listing shows.
func TestPrefetchOfAnotherCommitMovesNoRef(t *testing.T) {
	ctx := context.Background()
	o, _, m, repo := newPrefetchMirror(t)
	base := mustHead(t, o.r)
	other := o.commit()
	if err := o.r.Storer.SetReference(plumbing.NewHashReference("refs/heads/other", plumbing.NewHash(other))); err != nil {
		t.Fatal(err)
	}
	wt, err := o.r.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := wt.Reset(&git.ResetOptions{Commit: base, Mode: git.HardReset}); err != nil {
		t.Fatal(err)
	}
	head := o.commit()
	if fetched, err := m.Prefetch(ctx, repo, other); err != nil || !fetched {
		t.Fatalf("prefetch of the other branch's tip: fetched %v, %v", fetched, err)
	}
	mirror, err := m.openExisting(repo)
	if err != nil {
		t.Fatal(err)
	}
	if ref, err := mirror.Reference(plumbing.NewBranchReferenceName("master"), false); err != nil || ref.Hash() != base {
		t.Fatalf("master in the mirror after the prefetch: %v, %v; want it left at %s", ref, err, base)
	}
	refs, err := m.Refs(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.SyncListed(ctx, repo, "master", refs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Commit != head || res.Previous != base.String() || !res.Fetched {
		t.Fatalf("sync after a prefetch of another commit: %+v, want %s fetched over %s", res, head, base)
	}
	// The other commit is in the mirror, but not in the branch's history.
	for c, want := range map[string]bool{other: false, base.String(): true, head: true} {
		if in, err := m.InHistory(ctx, repo, head, c); err != nil || in != want {
			t.Fatalf("InHistory(%s, %s) = %v, %v; want %v", head[:8], c[:8], in, err, want)
		}
	}
}

// A commit the server will not give (here: reachable from no ref; git refuses such wants)
// fails the prefetch and leaves the mirror as it was for the sync.
func TestPrefetchRefusedLeavesTheSyncAlone(t *testing.T) {
	ctx := context.Background()
	o, _, m, repo := newPrefetchMirror(t)
	base := mustHead(t, o.r)
	dangling := o.commit()
	wt, err := o.r.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := wt.Reset(&git.ResetOptions{Commit: base, Mode: git.HardReset}); err != nil {
		t.Fatal(err)
	}
	head := o.commit()
	if fetched, err := m.Prefetch(ctx, repo, dangling); err == nil || fetched {
		t.Fatalf("prefetch of a commit on no ref: fetched %v, err %v; want an error", fetched, err)
	}
	res, err := m.Sync(ctx, repo, "master")
	if err != nil {
		t.Fatal(err)
	}
	if res.Commit != head {
		t.Fatalf("sync after a refused prefetch: %+v, want %s", res, head)
	}
}

// Without a listing of the repository there are no capabilities to ask with, and a
// payload's commit must be a hash.
func TestPrefetchNeedsAListingAndAHash(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t)
	head := o.commit()
	g := serveGitHTTP(t, o)
	m, err := New(Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	repo := g.repo("unlisted")
	if _, err := m.Prefetch(ctx, repo, head); !errors.Is(err, ErrNoPrefetch) {
		t.Fatalf("prefetch before any listing: %v, want ErrNoPrefetch", err)
	}
	if _, err := m.Prefetch(ctx, Repo{Name: "file", URL: o.dir}, head); !errors.Is(err, ErrNoPrefetch) {
		t.Fatalf("prefetch over the file transport: %v, want ErrNoPrefetch", err)
	}
	if _, err := m.Refs(ctx, repo); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "main", "0000000000000000000000000000000000000000", head[:12]} {
		if _, err := m.Prefetch(ctx, repo, bad); err == nil {
			t.Fatalf("prefetch of %q: no error", bad)
		}
	}
	if _, f := g.counts(); f != 0 {
		t.Fatalf("%d pack requests for refused prefetches, want 0", f)
	}
}

func mustHead(t *testing.T, r *git.Repository) plumbing.Hash {
	t.Helper()
	ref, err := r.Head()
	if err != nil {
		t.Fatal(err)
	}
	return ref.Hash()
}
