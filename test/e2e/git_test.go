package e2e

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/internal/repofs"
	"github.com/slipwayhq/slipway/sources"
	"github.com/slipwayhq/slipway/test/testenv"
)

// gitWork is a working copy pushed to a repository of the real Git server with the git CLI.
type gitWork struct {
	t       *testing.T
	dir     string
	pushURL string // carries credentials: never print it
}

func newGitWork(t *testing.T, env *testenv.Env, url string) *gitWork {
	t.Helper()
	w := &gitWork{t: t, dir: t.TempDir(),
		pushURL: strings.Replace(url, "http://", "http://"+env.GitUser+":"+env.GitPassword+"@", 1)}
	w.git("init", "--initial-branch=master", ".")
	return w
}

func (w *gitWork) git(args ...string) string {
	w.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = w.dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com", "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		w.t.Fatalf("git %s: %v\n%s", args[0], err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files (an empty content deletes the file), commits and returns the hash.
func (w *gitWork) commit(msg string, files map[string]string) string {
	w.t.Helper()
	for name, content := range files {
		p := filepath.Join(w.dir, name)
		if content == "" {
			if err := os.Remove(p); err != nil {
				w.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			w.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			w.t.Fatal(err)
		}
	}
	w.git("add", "-A")
	w.git("commit", "-q", "--allow-empty", "-m", msg)
	return w.git("rev-parse", "HEAD")
}

func (w *gitWork) push(refs ...string) {
	w.t.Helper()
	w.git(append([]string{"push", "-q", "--force", w.pushURL}, refs...)...)
}

// newMirrors returns mirrors in a fresh data dir, logging through the test.
func newMirrors(t *testing.T, dataDir string, opts sources.Options) *sources.Mirrors {
	t.Helper()
	log := logrus.New()
	log.SetLevel(logrus.DebugLevel)
	log.SetOutput(testWriter{t})
	opts.DataDir, opts.Log = dataDir, logrus.NewEntry(log)
	m, err := sources.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func gitRepo(env *testenv.Env, name, url string) sources.Repo {
	return sources.Repo{Name: name, URL: url, Auth: sources.Auth{Username: env.GitUser, Password: env.GitPassword}}
}

func gitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// packFiles lists the mirror's pack files: a fetch that brings objects adds one.
func packFiles(t *testing.T, dataDir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dataDir, "mirrors", "*", "objects", "pack", "*.pack"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestGitHeadAndSyncFetchOnlyWhenMoved(t *testing.T) {
	env := testenv.Get(t)
	name, url := env.Repo(t)
	repo := gitRepo(env, name, url)
	ctx := gitCtx(t)
	w := newGitWork(t, env, url)
	c1 := w.commit("first", map[string]string{"a.txt": "a1\n"})
	w.push("master")
	data := t.TempDir()
	m := newMirrors(t, data, sources.Options{})

	head, err := m.Head(ctx, repo, "master")
	if err != nil || head != c1 {
		t.Fatalf("Head = %q, %v; want %s", head, err, c1)
	}
	if entries, _ := os.ReadDir(filepath.Join(data, "mirrors")); len(entries) != 0 {
		t.Fatalf("Head touched the mirror folder: %v", entries)
	}
	if _, err := m.Head(ctx, repo, "nope"); !errors.Is(err, sources.ErrBranchNotFound) {
		t.Fatalf("Head of a missing branch: want ErrBranchNotFound, got %v", err)
	}

	start := time.Now()
	res, err := m.Sync(ctx, repo, "master")
	firstSync := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if want := (sources.SyncResult{Commit: c1, Fetched: true}); res != want {
		t.Fatalf("first Sync = %+v, want %+v", res, want)
	}
	packs := packFiles(t, data)

	// Nothing moved: the listing alone answers, no fetch, no new objects.
	var unchanged []time.Duration
	for range 5 {
		start = time.Now()
		res, err = m.Sync(ctx, repo, "master")
		unchanged = append(unchanged, time.Since(start))
		if err != nil {
			t.Fatal(err)
		}
		if want := (sources.SyncResult{Commit: c1, Previous: c1}); res != want {
			t.Fatalf("unchanged Sync = %+v, want %+v", res, want)
		}
	}
	if got := packFiles(t, data); !reflect.DeepEqual(got, packs) {
		t.Fatalf("an unchanged Sync wrote objects: packs %v -> %v", packs, got)
	}

	c2 := w.commit("second", map[string]string{"b.txt": "b\n"})
	w.push("master")
	if head, err = m.Head(ctx, repo, "master"); err != nil || head != c2 {
		t.Fatalf("Head after a push = %q, %v; want %s", head, err, c2)
	}
	start = time.Now()
	res, err = m.Sync(ctx, repo, "master")
	moved := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if want := (sources.SyncResult{Commit: c2, Previous: c1, Fetched: true}); res != want {
		t.Fatalf("Sync after a push = %+v, want %+v", res, want)
	}
	if got := packFiles(t, data); len(got) != len(packs)+1 {
		t.Fatalf("a moved Sync should add one pack: %v -> %v", packs, got)
	}
	t.Logf("timing: first Sync (clone) %v, unchanged Sync %v, Sync after one commit %v",
		firstSync.Round(time.Microsecond), unchanged, moved.Round(time.Microsecond))
}

func TestGitCheckoutWritesContentModesAndConfinedSymlinks(t *testing.T) {
	env := testenv.Get(t)
	name, url := env.Repo(t)
	repo := gitRepo(env, name, url)
	ctx := gitCtx(t)
	w := newGitWork(t, env, url)
	w.commit("tree", map[string]string{
		"README.md":          "hello\n",
		"deploy/app.yaml":    "kind: ConfigMap\n",
		"scripts/run.sh":     "#!/bin/sh\necho hi\n",
		"deploy/nested/x.js": "{}\n",
	})
	if err := os.Chmod(filepath.Join(w.dir, "scripts/run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"deploy/link.yaml": "app.yaml",            // inside
		"up":               "deploy/../README.md", // inside after cleaning
		"abs":              "/etc/passwd",         // absolute
		"escape":           "../outside.txt",      // lexically outside
		"self":             ".",                   // inside
		"sneaky":           "self/../outside.txt", // lexically inside, really outside
		"later":            "self/../ws2/x",       // outside, at a path that does not exist yet
	}
	for link, target := range links {
		if err := os.Symlink(target, filepath.Join(w.dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	c := w.commit("links", nil)
	w.push("master")

	m := newMirrors(t, t.TempDir(), sources.Options{})
	if err := m.Checkout(ctx, repo, c, filepath.Join(t.TempDir(), "ws")); !errors.Is(err, sources.ErrCommitNotFound) {
		t.Fatalf("Checkout before any Sync: want ErrCommitNotFound, got %v", err)
	}
	if _, err := m.Sync(ctx, repo, "master"); err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	// A file where "sneaky" would really lead: it must not be reachable from the workspace.
	if err := os.WriteFile(filepath.Join(parent, "outside.txt"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	ws := filepath.Join(parent, "ws")
	if err := m.Checkout(ctx, repo, c, ws); err != nil {
		t.Fatal(err)
	}

	for file, want := range map[string]string{"README.md": "hello\n", "deploy/app.yaml": "kind: ConfigMap\n",
		"deploy/nested/x.js": "{}\n", "deploy/link.yaml": "kind: ConfigMap\n", "up": "hello\n"} {
		got, err := os.ReadFile(filepath.Join(ws, file))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", file, got, err, want)
		}
	}
	for file, want := range map[string]os.FileMode{"README.md": 0o644, "scripts/run.sh": 0o755, "deploy": os.ModeDir | 0o755} {
		fi, err := os.Lstat(filepath.Join(ws, file))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s mode %v, want %v", file, fi.Mode(), want)
		}
	}
	// Links are written as Git has them and never followed by the checkout; what reads the
	// workspace (repofs) refuses those that leave it, naming the link.
	for link, target := range links {
		if got, err := os.Readlink(filepath.Join(ws, link)); err != nil || got != target {
			t.Errorf("%s -> %q, %v; want %q", link, got, err, target)
		}
	}
	read, err := repofs.Open(ws)
	if err != nil {
		t.Fatal(err)
	}
	defer read.Close()
	for link, want := range map[string]string{
		"abs":    `symlink "abs" points to the absolute path "/etc/passwd"`,
		"escape": `symlink "escape" points outside the repository`,
		"sneaky": `symlink "sneaky" points outside the repository`,
		"later":  `symlink "later" points outside the repository`,
	} {
		if _, err := read.ReadFile(link, repofs.Limit{}); !errors.Is(err, repofs.ErrOutside) || !strings.Contains(err.Error(), want) {
			t.Errorf("reading %s: %v; want %q", link, err, want)
		}
	}
	if b, err := read.ReadFile("deploy/link.yaml", repofs.Limit{}); err != nil || string(b) != "kind: ConfigMap\n" {
		t.Errorf("deploy/link.yaml through repofs: %q, %v", b, err)
	}
	if fi, err := os.Stat(ws); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("workspace mode %v, %v; want 0700", fi.Mode(), err)
	}
	if err := m.Checkout(ctx, repo, c, ws); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("Checkout into a used workspace: want a 'not empty' error, got %v", err)
	}
	if err := m.Checkout(ctx, repo, c[:7], filepath.Join(t.TempDir(), "ws")); !errors.Is(err, sources.ErrCommitNotFound) {
		t.Fatalf("Checkout of an abbreviated hash: want ErrCommitNotFound, got %v", err)
	}
}

func TestGitChangedPathsAcrossSyncsWithShallowMirror(t *testing.T) {
	env := testenv.Get(t)
	name, url := env.Repo(t)
	repo := gitRepo(env, name, url)
	ctx := gitCtx(t)
	w := newGitWork(t, env, url)
	data := t.TempDir()
	m := newMirrors(t, data, sources.Options{Depth: 1})
	sync := func(want string) {
		t.Helper()
		res, err := m.Sync(ctx, repo, "master")
		if err != nil || res.Commit != want {
			t.Fatalf("Sync = %+v, %v; want commit %s", res, err, want)
		}
	}
	changed := func(from, to string, want ...string) {
		t.Helper()
		got, err := m.ChangedPaths(ctx, repo, from, to)
		if err != nil {
			t.Fatalf("ChangedPaths(%.7s, %.7s): %v", from, to, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("ChangedPaths(%.7s, %.7s) = %q, want %q", from, to, got, want)
		}
	}

	c1 := w.commit("c1", map[string]string{"a": "a1\n", "b": "b1\n", "dir/c": "c1\n"})
	w.push("master")
	sync(c1)
	changed("", c1, "a", "b", "dir/c")

	c2 := w.commit("c2", map[string]string{"a": "a2\n", "d": "d1\n"})
	w.push("master")
	sync(c2)
	changed(c1, c2, "a", "d")

	// Three commits land before the next Sync; with depth 1 the middle ones stay unfetched.
	c3 := w.commit("c3", map[string]string{"b": ""})
	c4 := w.commit("c4", map[string]string{"dir/c": "c2\n"})
	// e reuses a blob the server knows the mirror has (b's old content): it must not go missing.
	c5 := w.commit("c5", map[string]string{"e": "b1\n", "a": "a1\n"})
	w.push("master")
	sync(c5)
	if shallow, _ := filepath.Glob(filepath.Join(data, "mirrors", "*", "shallow")); len(shallow) != 1 {
		t.Fatal("a depth-1 mirror should be shallow")
	}
	changed(c2, c5, "a", "b", "dir/c", "e")
	changed("", c5, "a", "d", "dir/c", "e")

	// c3 and c4 are older than the shallow mirror: they are fetched on demand.
	changed(c3, c4, "dir/c")
	info, err := m.Commit(ctx, repo, c3)
	if err != nil || info.Message != "c3\n" {
		t.Fatalf("Commit(c3) = %+v, %v", info, err)
	}

	// A fresh mirror (a new data dir, as after losing the disk) deepens to find an old commit.
	fresh := newMirrors(t, t.TempDir(), sources.Options{})
	if _, err := fresh.Sync(ctx, repo, "master"); err != nil {
		t.Fatal(err)
	}
	got, err := fresh.ChangedPaths(ctx, repo, c1, c5)
	if want := []string{"b", "d", "dir/c", "e"}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("fresh mirror ChangedPaths(c1, c5) = %q, %v; want %q", got, err, want)
	}
	if _, err := fresh.ChangedPaths(ctx, repo, strings.Repeat("1", 40), c5); !errors.Is(err, sources.ErrCommitNotFound) {
		t.Fatalf("ChangedPaths from an unknown commit: want ErrCommitNotFound, got %v", err)
	}
}

// The mirror keeps the remote's tags that point into what it holds: read with git itself.
func TestGitTagsAreFetchedIntoTheMirror(t *testing.T) {
	env := testenv.Get(t)
	name, url := env.Repo(t)
	repo := gitRepo(env, name, url)
	ctx := gitCtx(t)
	w := newGitWork(t, env, url)
	data := t.TempDir()
	m := newMirrors(t, data, sources.Options{})
	tagsOf := func(c string) []string {
		t.Helper()
		dirs, err := filepath.Glob(filepath.Join(data, "*", "*", "HEAD"))
		if err != nil || len(dirs) != 1 {
			t.Fatalf("the mirror's HEAD: %q, %v; want one", dirs, err)
		}
		out := w.git("--git-dir", filepath.Dir(dirs[0]), "tag", "--points-at", c)
		if out == "" {
			return nil
		}
		return strings.Split(out, "\n")
	}

	c1 := w.commit("one", map[string]string{"a": "1\n"})
	w.push("master")
	if _, err := m.Sync(ctx, repo, "master"); err != nil {
		t.Fatal(err)
	}
	c2 := w.commit("two\n\nwith a body [skip ci]", map[string]string{"a": "2\n"})
	w.git("tag", "v1.1.0")                           // lightweight
	w.git("tag", "-a", "release", "-m", "annotated") // annotated
	w.push("master", "--tags")
	res, err := m.Sync(ctx, repo, "master")
	if err != nil || !res.Fetched || res.Commit != c2 {
		t.Fatalf("Sync = %+v, %v", res, err)
	}
	info, err := m.Commit(ctx, repo, c2)
	if err != nil {
		t.Fatal(err)
	}
	want := sources.Commit{Hash: c2, ShortHash: c2[:7], Message: "two\n\nwith a body [skip ci]\n",
		Author: "Ada", AuthorEmail: "ada@example.com", Time: info.Time}
	if !reflect.DeepEqual(info, want) {
		t.Fatalf("Commit(c2) = %+v\nwant %+v", info, want)
	}
	if got := tagsOf(c2); !reflect.DeepEqual(got, []string{"release", "v1.1.0"}) {
		t.Fatalf("tags of c2 = %q", got)
	}
	if time.Since(info.Time) > time.Hour || time.Since(info.Time) < 0 {
		t.Fatalf("commit time %v is not recent", info.Time)
	}

	// A tag added to a commit the mirror has, with no new commit: Sync sees it in the listing.
	if got := tagsOf(c1); len(got) != 0 {
		t.Fatalf("tags of c1 before any = %q", got)
	}
	w.git("tag", "v1.0.0", c1)
	w.push("--tags")
	if res, err = m.Sync(ctx, repo, "master"); err != nil || !res.Fetched || res.Previous != c2 {
		t.Fatalf("Sync after a new tag = %+v, %v; want a fetch", res, err)
	}
	if got := tagsOf(c1); !reflect.DeepEqual(got, []string{"v1.0.0"}) {
		t.Fatalf("tags of c1 = %q", got)
	}
	if res, err = m.Sync(ctx, repo, "master"); err != nil || res.Fetched {
		t.Fatalf("Sync with nothing moved = %+v, %v; want no fetch", res, err)
	}

	// A tag deleted on the server and one moved to a new commit.
	w.git("tag", "-d", "v1.1.0")
	w.git("push", "-q", w.pushURL, ":refs/tags/v1.1.0")
	c3 := w.commit("three", map[string]string{"a": "3\n"})
	w.git("tag", "-f", "-a", "release", "-m", "moved")
	w.push("master", "--tags")
	if _, err := m.Sync(ctx, repo, "master"); err != nil {
		t.Fatal(err)
	}
	if got := tagsOf(c2); len(got) != 0 {
		t.Fatalf("tags of c2 after deleting v1.1.0 and moving release = %q, want none", got)
	}
	if got := tagsOf(c3); !reflect.DeepEqual(got, []string{"release"}) {
		t.Fatalf("tags of c3 = %q, want [release]", got)
	}
}

func TestGitAuthFailuresAreRecognisedAndRedacted(t *testing.T) {
	env := testenv.Get(t)
	name, url := env.Repo(t)
	ctx := gitCtx(t)
	w := newGitWork(t, env, url)
	w.commit("one", map[string]string{"a": "1\n"})
	w.push("master")
	m := newMirrors(t, t.TempDir(), sources.Options{})

	const wrong = "wr0ng-Passw0rd-value"
	bad := []sources.Repo{
		{Name: name, URL: url, Auth: sources.Auth{Username: env.GitUser, Password: wrong}},
		{Name: name, URL: url, Auth: sources.Auth{Token: wrong}},
		{Name: name, URL: strings.Replace(url, "http://", "http://"+env.GitUser+":"+wrong+"@", 1)},
		{Name: name, URL: url}, // anonymous
	}
	for i, repo := range bad {
		_, herr := m.Head(ctx, repo, "master")
		_, serr := m.Sync(ctx, repo, "master")
		for op, err := range map[string]error{"Head": herr, "Sync": serr} {
			if !errors.Is(err, sources.ErrAuth) {
				t.Errorf("case %d %s: want ErrAuth, got %v", i, op, err)
				continue
			}
			if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), env.GitPassword) {
				t.Errorf("case %d %s: error leaks the secret: %v", i, op, err)
			}
			if !strings.Contains(err.Error(), name) {
				t.Errorf("case %d %s: error does not name the repository: %v", i, op, err)
			}
		}
	}
	t.Logf("a wrong password reads: %v", func() error { _, err := m.Sync(ctx, bad[0], "master"); return err }())

	// A token (sent as HTTP basic) and credentials read from files both work.
	tok := sources.Repo{Name: name, URL: url, Auth: sources.Auth{Username: env.GitUser, Token: env.GitPassword}}
	if _, err := m.Sync(ctx, tok, "master"); err != nil {
		t.Fatalf("token auth: %v", err)
	}
	dir := t.TempDir()
	for file, content := range map[string]string{"user": env.GitUser + "\n", "pass": env.GitPassword + "\n"} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	auth, err := sources.LoadAuth(sources.AuthFiles{UsernameFile: filepath.Join(dir, "user"), PasswordFile: filepath.Join(dir, "pass")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Head(ctx, sources.Repo{Name: name, URL: url, Auth: auth}, "master"); err != nil {
		t.Fatalf("auth from files: %v", err)
	}
	if _, err := m.Head(ctx, sources.Repo{Name: name, URL: env.GitURL + "/does-not-exist.git", Auth: auth}, "master"); err == nil {
		t.Fatal("Head of a missing repository succeeded")
	}
}

func TestGitContextCancellationAndTimeouts(t *testing.T) {
	env := testenv.Get(t)
	name, url := env.Repo(t)
	repo := gitRepo(env, name, url)
	w := newGitWork(t, env, url)
	c1 := w.commit("one", map[string]string{"a": "1\n"})
	w.push("master")
	m := newMirrors(t, t.TempDir(), sources.Options{})

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Head(cancelled, repo, "master"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Head with a cancelled context: want context.Canceled, got %v", err)
	}
	if _, err := m.Sync(cancelled, repo, "master"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sync with a cancelled context: want context.Canceled, got %v", err)
	}

	// A server that accepts connections and never answers: the per-call timeout ends it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	slow := newMirrors(t, t.TempDir(), sources.Options{Timeout: 500 * time.Millisecond})
	hung := sources.Repo{Name: "hung", URL: "http://" + ln.Addr().String() + "/x.git"}
	start := time.Now()
	_, err = slow.Sync(context.Background(), hung, "master")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Sync against a silent server: want context.DeadlineExceeded, got %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the 500ms timeout took %v to end the call", took)
	}
	t.Logf("silent server: %v after %v", err, time.Since(start).Round(time.Millisecond))

	// The real server is fine with the same timeout, and a caller's deadline still applies.
	if _, err := slow.Sync(gitCtx(t), repo, "master"); err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), time.Microsecond)
	defer cancel2()
	time.Sleep(time.Millisecond)
	if err := slow.Checkout(short, repo, c1, t.TempDir()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Checkout with an expired context: want context.DeadlineExceeded, got %v", err)
	}
}

func TestGitConcurrentSyncsShareOneMirror(t *testing.T) {
	env := testenv.Get(t)
	name, url := env.Repo(t)
	repo := gitRepo(env, name, url)
	ctx := gitCtx(t)
	w := newGitWork(t, env, url)
	data := t.TempDir()
	// Two Mirrors on one data dir stand in for two processes (serve and a CLI run).
	ms := []*sources.Mirrors{newMirrors(t, data, sources.Options{}), newMirrors(t, data, sources.Options{})}

	for round := range 3 {
		files := map[string]string{}
		for i := range 50 {
			files[filepath.Join("f", string(rune('a'+i%26))+strings.Repeat("x", i))] = strings.Repeat("line\n", round*10+i+1)
		}
		c := w.commit("round", files)
		w.push("master")
		var wg sync.WaitGroup
		results := make([]sources.SyncResult, 10)
		errs := make([]error, 10)
		for i := range results {
			wg.Go(func() { results[i], errs[i] = ms[i%2].Sync(ctx, repo, "master") })
		}
		wg.Wait()
		fetched := 0
		for i, res := range results {
			if errs[i] != nil {
				t.Fatalf("round %d: concurrent Sync %d: %v", round, i, errs[i])
			}
			if res.Commit != c {
				t.Fatalf("round %d: Sync %d saw %s, want %s", round, i, res.Commit, c)
			}
			if res.Fetched {
				fetched++
			}
		}
		if fetched != 1 {
			t.Fatalf("round %d: %d of 10 concurrent Syncs fetched, want exactly 1", round, fetched)
		}
		ws := filepath.Join(t.TempDir(), "ws")
		if err := ms[1].Checkout(ctx, repo, c, ws); err != nil {
			t.Fatalf("round %d: checkout after concurrent syncs: %v", round, err)
		}
	}
}

func TestGitCorruptedMirrorIsRecreated(t *testing.T) {
	env := testenv.Get(t)
	name, url := env.Repo(t)
	repo := gitRepo(env, name, url)
	ctx := gitCtx(t)
	w := newGitWork(t, env, url)
	c1 := w.commit("one", map[string]string{"a": strings.Repeat("content\n", 100)})
	w.push("master")
	data := t.TempDir()
	m := newMirrors(t, data, sources.Options{})
	if _, err := m.Sync(ctx, repo, "master"); err != nil {
		t.Fatal(err)
	}
	packs := packFiles(t, data)
	if len(packs) == 0 {
		t.Fatal("no pack after the first sync")
	}
	for _, p := range packs {
		if err := os.WriteFile(p, []byte("garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, err := m.Sync(ctx, repo, "master")
	if err != nil {
		t.Fatalf("Sync of a corrupted mirror: %v", err)
	}
	if !res.Recreated || !res.Fetched || res.Commit != c1 {
		t.Fatalf("Sync of a corrupted mirror = %+v, want recreated and fetched", res)
	}
	ws := filepath.Join(t.TempDir(), "ws")
	if err := m.Checkout(ctx, repo, c1, ws); err != nil {
		t.Fatalf("checkout from the recreated mirror: %v", err)
	}

	// A mirror folder that is not a repository at all is replaced too.
	dirs, _ := filepath.Glob(filepath.Join(data, "mirrors", "*", "HEAD"))
	if len(dirs) != 1 {
		t.Fatalf("want one mirror, found %v", dirs)
	}
	mirror := filepath.Dir(dirs[0])
	if err := os.RemoveAll(mirror); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mirror, []byte("not a repository"), 0o644); err != nil {
		t.Fatal(err)
	}
	if res, err := m.Sync(ctx, repo, "master"); err != nil || !res.Fetched || res.Previous != "" {
		t.Fatalf("Sync over a file where the mirror was = %+v, %v; want a fresh fetch", res, err)
	}
	if err := m.Checkout(ctx, repo, c1, filepath.Join(t.TempDir(), "ws")); err != nil {
		t.Fatalf("checkout from the replaced mirror: %v", err)
	}
}
