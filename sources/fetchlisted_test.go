package sources

import (
	"context"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// gitHTTP serves the origin's repository over smart HTTP with git's own http-backend,
// counting the ref listings and pack requests it answers and the most it served at once.
type gitHTTP struct {
	srv              *httptest.Server
	mu               sync.Mutex
	listings, fetchs int
	serving, peak    int
}

func serveGitHTTP(t *testing.T, o *origin) *gitHTTP {
	t.Helper()
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatalf("git --exec-path: %v (the test needs git with git-http-backend)", err)
	}
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		t.Fatalf("git-http-backend: %v (install git's http-backend)", err)
	}
	g := &gitHTTP{}
	h := &cgi.Handler{Path: backend, Env: []string{"GIT_PROJECT_ROOT=" + o.dir, "GIT_HTTP_EXPORT_ALL=1"}}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		switch {
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/info/refs"):
			g.listings++
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-upload-pack"):
			g.fetchs++
		}
		g.serving++
		g.peak = max(g.peak, g.serving)
		g.mu.Unlock()
		h.ServeHTTP(w, r)
		g.mu.Lock()
		g.serving--
		g.mu.Unlock()
	}))
	t.Cleanup(g.srv.Close)
	return g
}

// serveOneCommit serves a new origin holding one commit.
func serveOneCommit(t *testing.T) (*origin, *gitHTTP) {
	t.Helper()
	o := newOrigin(t)
	o.commit()
	return o, serveGitHTTP(t, o)
}

// repo names a repository served by g: every name is the origin.
func (g *gitHTTP) repo(name string) Repo { return Repo{Name: name, URL: g.srv.URL + "/.git"} }

// mostAtOnce is the most requests the server was answering at the same time.
func (g *gitHTTP) mostAtOnce() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.peak
}

func (g *gitHTTP) counts() (listings, fetches int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.listings, g.fetchs
}

// A sync after a listing fetches from that listing: one ref listing and one pack request
// per push, not a second listing inside the fetch; what it fetched is read through the
// kept mirror, tags included.
func TestSyncListedFetchesWithoutListingAgain(t *testing.T) {
	ctx := context.Background()
	o, g := serveOneCommit(t)
	repo := g.repo("listed")
	m, err := New(Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Sync(ctx, repo, "master"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		head := o.commit()
		if _, err := o.r.CreateTag("v"+string(rune('1'+i)), plumbing.NewHash(head), nil); err != nil {
			t.Fatal(err)
		}
		l0, f0 := g.counts()
		refs, err := m.Refs(ctx, repo)
		if err != nil {
			t.Fatal(err)
		}
		res, err := m.SyncListed(ctx, repo, "master", refs)
		if err != nil {
			t.Fatal(err)
		}
		if res.Commit != head || !res.Fetched {
			t.Fatalf("push %d: sync %+v, want %s fetched", i, res, head)
		}
		// The tag pointing at the new head comes in a second pack request (see update).
		if l, f := g.counts(); l-l0 != 1 || f-f0 > 2 || f-f0 < 1 {
			t.Fatalf("push %d: %d ref listings and %d pack requests; want 1 listing and 1–2 pack requests", i, l-l0, f-f0)
		}
		mirror, err := git.PlainOpen(m.dir(repo))
		if err != nil {
			t.Fatal(err)
		}
		tag := "v" + string(rune('1'+i))
		if ref, err := mirror.Tag(tag); err != nil || ref.Hash().String() != head {
			t.Fatalf("push %d: the mirror's tag %s: %v, %v; want it at the head %s", i, tag, ref, err, head)
		}
	}
}

// A branch force-pushed between the listing and the fetch: the commit listed is no longer
// the server's to give, so the fetch lists again and brings the branch's new head.
func TestSyncListedFallsBackWhenTheBranchMovedAway(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t)
	base := o.commit()
	g := serveGitHTTP(t, o)
	repo := g.repo("moved")
	m, err := New(Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Sync(ctx, repo, "master"); err != nil {
		t.Fatal(err)
	}
	o.commit()
	refs, err := m.Refs(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	// Force-push: master goes back to base and gets another commit; the listed head is
	// now reachable from no ref.
	wt, err := o.r.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := wt.Reset(&git.ResetOptions{Commit: plumbing.NewHash(base), Mode: git.HardReset}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(o.dir, "other.txt"), []byte("rewritten"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := wt.Add("other.txt"); err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "t", Email: "t@example.com", When: time.Now()}
	rewritten, err := wt.Commit("rewritten", &git.CommitOptions{Author: sig, Committer: sig})
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.SyncListed(ctx, repo, "master", refs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Commit != rewritten.String() {
		t.Fatalf("sync after the force-push: %+v, want the new head %s", res, rewritten)
	}
	if _, err := m.Commit(ctx, repo, rewritten.String()); err != nil {
		t.Fatal(err)
	}
}
