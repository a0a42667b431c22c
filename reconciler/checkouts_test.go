package reconciler

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/sources"
)

// countingSources checks a commit out as one file and counts the checkouts.
type countingSources struct {
	Sources
	mu    sync.Mutex
	count int
}

func (s *countingSources) Checkout(_ context.Context, _ sources.Repo, commit, dir string) error {
	s.mu.Lock()
	s.count++
	s.mu.Unlock()
	return os.WriteFile(filepath.Join(dir, "commit"), []byte(commit), 0o644)
}

// The readers of one commit share one checkout, removed after the last lets it go; another
// commit gets its own.
func TestCheckoutsShareOneCheckoutPerCommit(t *testing.T) {
	src := &countingSources{}
	root := t.TempDir()
	c := &checkouts{src: src, root: func() string { return root }}
	repo := sources.Repo{Name: "mono"}
	ctx := context.Background()
	var releases []func()
	var dirs []string
	for range 20 {
		sc, release, err := c.acquire(ctx, repo, "abc")
		if err != nil {
			t.Fatal(err)
		}
		releases, dirs = append(releases, release), append(dirs, sc.dir)
	}
	other, releaseOther, err := c.acquire(ctx, repo, "def")
	if err != nil {
		t.Fatal(err)
	}
	if src.count != 2 {
		t.Fatalf("%d checkouts for 20 readers of one commit and one of another, want 2", src.count)
	}
	for _, d := range dirs[1:] {
		if d != dirs[0] {
			t.Fatalf("readers of one commit got %s and %s", dirs[0], d)
		}
	}
	if other.dir == dirs[0] {
		t.Fatal("two commits share a checkout")
	}
	parses := 0
	for range 3 {
		sc, release, err := c.acquire(ctx, repo, "abc")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.parse(sc, func() ([]*pipeline.Pipeline, error) { parses++; return nil, nil })
		release()
	}
	if parses != 1 {
		t.Fatalf("the pipeline file of one checkout was parsed %d times, want 1", parses)
	}
	for _, r := range releases {
		if _, err := os.Stat(dirs[0]); err != nil {
			t.Fatalf("the checkout went while held: %v", err)
		}
		r()
	}
	if _, err := os.Stat(dirs[0]); !os.IsNotExist(err) {
		t.Fatalf("the checkout outlived its last reader: %v", err)
	}
	releaseOther()
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Fatalf("%d checkouts left behind", len(entries))
	}
}

// mirrorSources is a mirror holding the commits it was given plus, once a branch is synced,
// the branch's head; it counts the syncs.
type mirrorSources struct {
	Sources
	held   map[string]bool
	head   string
	syncs  int
	noFile bool // the commits have no pipeline file
}

func (s *mirrorSources) Sync(context.Context, sources.Repo, string) (sources.SyncResult, error) {
	s.syncs++
	s.held[s.head] = true
	return sources.SyncResult{Commit: s.head}, nil
}

func (s *mirrorSources) Commit(_ context.Context, _ sources.Repo, sha string) (sources.Commit, error) {
	if !s.held[sha] {
		return sources.Commit{}, sources.ErrCommitNotFound
	}
	return sources.Commit{Hash: sha, ShortHash: sha[:7]}, nil
}

func (s *mirrorSources) Checkout(_ context.Context, _ sources.Repo, _, dir string) error {
	if s.noFile {
		return os.WriteFile(filepath.Join(dir, "README.md"), []byte("no pipelines here\n"), 0o644)
	}
	return os.WriteFile(filepath.Join(dir, ".pipeline.yaml"), []byte("name: web\nstages:\n  - name: s\n    tasks:\n      - name: t\n        type: script\n        script: \"true\"\n"), 0o644)
}

// A run of a named commit that the mirror holds fetches nothing; one it lacks, or a run of
// the branch's head, syncs the branch first.
func TestPrepareFetchesOnlyWhatTheMirrorLacks(t *testing.T) {
	old, head := "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	src := &mirrorSources{held: map[string]bool{old: true}, head: head}
	r := NewRunner(RunnerOptions{Sources: src, Config: &config.Config{DataDir: t.TempDir(), Executor: config.Executor{Local: &config.LocalExecutor{Enabled: true}}}})
	defer r.Close()
	repo := sources.Repo{Name: "app"}
	ctx := context.Background()
	for _, c := range []struct {
		commit string
		syncs  int
	}{{old, 0}, {head, 1}, {head, 1}, {"", 2}} {
		co, err := r.Prepare(ctx, Request{Repo: repo, Branch: "main", Commit: c.commit})
		if err != nil {
			t.Fatalf("commit %q: %v", c.commit, err)
		}
		if want := c.commit; want != "" && co.Commit.Hash != want || want == "" && co.Commit.Hash != head {
			t.Fatalf("commit %q: prepared %s", c.commit, co.Commit.Hash)
		}
		if src.syncs != c.syncs {
			t.Fatalf("commit %q: %d syncs in all, want %d", c.commit, src.syncs, c.syncs)
		}
	}
}

// A commit without a pipeline file is a PrepareError that says so (pipeline.ErrNoFile), so
// the watchers can tell it from an invalid file.
func TestPrepareCommitWithoutPipelineFile(t *testing.T) {
	head := "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	src := &mirrorSources{held: map[string]bool{}, head: head, noFile: true}
	r := NewRunner(RunnerOptions{Sources: src, Config: &config.Config{DataDir: t.TempDir(), Executor: config.Executor{Local: &config.LocalExecutor{Enabled: true}}}})
	defer r.Close()
	_, err := r.Prepare(context.Background(), Request{Repo: sources.Repo{Name: "app"}, Branch: "main"})
	var notPrepared *PrepareError
	if !errors.As(err, &notPrepared) || notPrepared.Commit != head || !errors.Is(err, pipeline.ErrNoFile) {
		t.Fatalf("Prepare = %v; want a PrepareError of %s that is pipeline.ErrNoFile", err, head)
	}
}

// A commit checked out again while its pipelines are still held (the branch watcher keeps
// its head's) takes them instead of reading the file again; once nothing holds them the file
// is read again, and the commit is forgotten.
func TestCheckoutsReuseThePipelinesStillHeld(t *testing.T) {
	root := t.TempDir()
	c := &checkouts{src: &countingSources{}, root: func() string { return root }}
	repo := sources.Repo{Name: "mono"}
	ctx := context.Background()
	reads := 0
	read := func() []*pipeline.Pipeline {
		t.Helper()
		sc, release, err := c.acquire(ctx, repo, "abc")
		if err != nil {
			t.Fatal(err)
		}
		defer release() // no linger: the checkout goes with it
		ps, err := c.parse(sc, func() ([]*pipeline.Pipeline, error) {
			reads++
			return []*pipeline.Pipeline{{Name: "a"}, {Name: "b"}}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}
	kept := read()
	again := read()
	if reads != 1 || len(again) != 2 || again[0] != kept[0] || again[1] != kept[1] {
		t.Fatalf("read %d times; a checkout made again while its pipelines were held got %p, want %p", reads, again, kept)
	}
	kept, again = nil, nil
	runtime.GC()
	if read(); reads != 2 {
		t.Fatalf("read %d times; pipelines nothing held were reused", reads)
	}
	// The second read's pipelines are garbage too: their entry goes with them.
	for i := 0; ; i++ {
		runtime.GC()
		c.mu.Lock()
		n := len(c.held)
		c.mu.Unlock()
		if n == 0 {
			break
		}
		if i == 1000 {
			t.Fatalf("%d commits remembered after their pipelines went", n)
		}
		runtime.Gosched()
	}
}
