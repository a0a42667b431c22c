package sources

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// origin is a local repository served through git's file transport (git-upload-pack).
type origin struct {
	t   *testing.T
	dir string
	r   *git.Repository
	n   int
}

func newOrigin(t *testing.T) *origin {
	t.Helper()
	dir := t.TempDir()
	r, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	return &origin{t: t, dir: dir, r: r}
}

// commit writes one file and commits it on master, returning the commit.
func (o *origin) commit() string {
	o.t.Helper()
	o.n++
	if err := os.WriteFile(filepath.Join(o.dir, "file.txt"), []byte(time.Now().String()+string(rune('a'+o.n%26))), 0o644); err != nil {
		o.t.Fatal(err)
	}
	wt, err := o.r.Worktree()
	if err != nil {
		o.t.Fatal(err)
	}
	if _, err := wt.Add("file.txt"); err != nil {
		o.t.Fatal(err)
	}
	sig := &object.Signature{Name: "t", Email: "t@example.com", When: time.Now()}
	h, err := wt.Commit("commit", &git.CommitOptions{Author: sig, Committer: sig})
	if err != nil {
		o.t.Fatal(err)
	}
	return h.String()
}

func (m *Mirrors) handleOf(repo Repo) *handle {
	m.handlesMu.Lock()
	defer m.handlesMu.Unlock()
	return m.handles[m.dir(repo)]
}

// The mirror is opened once and kept: the next call, and the one after a fetch, reuse it
// and read what the fetch brought; a pack another process fetched into the same mirror
// makes the next call open it again; a failed call drops it.
func TestMirrorHandleIsKeptAcrossCallsAndRenewedWhenAnotherProcessFetched(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t)
	first := o.commit()
	repo := Repo{Name: "kept", URL: "file://" + o.dir}
	data := t.TempDir()
	m, err := New(Options{DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := m.Sync(ctx, repo, "master"); err != nil || res.Commit != first {
		t.Fatalf("first sync: %+v, %v", res, err)
	}
	// The sync that made the mirror used the repository it created; the next call opens it.
	if _, err := m.Commit(ctx, repo, first); err != nil {
		t.Fatal(err)
	}
	h := m.handleOf(repo)
	if h == nil {
		t.Fatal("no handle kept after reading a commit")
	}
	if _, err := m.Commit(ctx, repo, first); err != nil {
		t.Fatal(err)
	}
	if m.handleOf(repo) != h {
		t.Fatal("reading a commit again opened the mirror again")
	}

	// Our own fetch goes through the handle: the new pack is indexed as it is written.
	second := o.commit()
	if res, err := m.Sync(ctx, repo, "master"); err != nil || res.Commit != second || !res.Fetched {
		t.Fatalf("second sync: %+v, %v", res, err)
	}
	if m.handleOf(repo) != h {
		t.Fatal("the mirror was opened again after its own fetch")
	}
	if c, err := m.Commit(ctx, repo, second); err != nil || c.Hash != second {
		t.Fatalf("the fetched commit through the kept handle: %+v, %v", c, err)
	}
	if err := m.Checkout(ctx, repo, second, filepath.Join(t.TempDir(), "co")); err != nil {
		t.Fatal(err)
	}
	if m.handleOf(repo) != h {
		t.Fatal("a checkout opened the mirror again")
	}

	// Another process (a CLI run sharing the data dir) fetches a third commit.
	third := o.commit()
	other, err := New(Options{DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := other.Sync(ctx, repo, "master"); err != nil || res.Commit != third {
		t.Fatalf("the other process's sync: %+v, %v", res, err)
	}
	c, err := m.Commit(ctx, repo, third)
	if err != nil || c.Hash != third {
		t.Fatalf("the commit another process fetched: %+v, %v", c, err)
	}
	renewed := m.handleOf(repo)
	if renewed == nil || renewed == h {
		t.Fatal("the mirror was not opened again after another process added a pack")
	}

	// A failed call drops the handle.
	if _, err := m.Commit(ctx, repo, "0123456789012345678901234567890123456789"); err == nil {
		t.Fatal("a commit the repository lacks was found")
	}
	if m.handleOf(repo) != nil {
		t.Fatal("the handle was kept after a failed call")
	}
}

// Past maxHandles mirrors, the least recently used is closed, and a later call opens it
// again and reads it whole: a daemon following a thousand repositories keeps a bounded
// number of pack indexes in memory, not one set per repository.
func TestOpenMirrorsAreBoundedLeastRecentlyUsedFirst(t *testing.T) {
	ctx := context.Background()
	m, err := New(Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	m.maxHandles = 2
	var repos []Repo
	var heads []string
	for _, name := range []string{"a", "b", "c"} {
		o := newOrigin(t)
		heads = append(heads, o.commit())
		repos = append(repos, Repo{Name: name, URL: "file://" + o.dir})
	}
	// A look at the branch opens the mirror (Commit answers from a cache once it has).
	read := func(i int) {
		t.Helper()
		if res, err := m.Sync(ctx, repos[i], "master"); err != nil || res.Commit != heads[i] {
			t.Fatalf("look at %s: %+v, %v", repos[i].Name, res, err)
		}
	}
	for i := range repos {
		read(i) // makes the mirror, without keeping it open
	}
	read(0)
	read(1)
	read(0) // b is now the least recently used
	read(2)
	if m.handleOf(repos[1]) != nil || m.handleOf(repos[0]) == nil || m.handleOf(repos[2]) == nil {
		t.Fatalf("open after reading a, b, a, c with room for two: a %v, b %v, c %v; want a and c",
			m.handleOf(repos[0]) != nil, m.handleOf(repos[1]) != nil, m.handleOf(repos[2]) != nil)
	}
	if n := len(m.handles); n != 2 {
		t.Fatalf("%d mirrors open, want at most 2", n)
	}
	read(1)
	if m.handleOf(repos[1]) == nil || m.handleOf(repos[0]) != nil {
		t.Fatal("reading b again did not open it in place of a, the least recently used")
	}
}
