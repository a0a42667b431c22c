package sources

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// indexCalls counts the reads and writes made on pack index files opened through it: each
// is a system call on the file underneath.
type indexCalls struct {
	billy.Filesystem
	reads, writes *atomic.Int32
}

func (f indexCalls) Open(name string) (billy.File, error) {
	file, err := f.Filesystem.Open(name)
	if err != nil || !isPackIndex(name) {
		return file, err
	}
	return countedFile{File: file, calls: f}, nil
}

func (f indexCalls) Create(name string) (billy.File, error) {
	file, err := f.Filesystem.Create(name)
	if err != nil || !isPackIndex(name) {
		return file, err
	}
	return countedFile{File: file, calls: f}, nil
}

type countedFile struct {
	billy.File
	calls indexCalls
}

func (f countedFile) Read(p []byte) (int, error) {
	f.calls.reads.Add(1)
	return f.File.Read(p)
}

func (f countedFile) Write(p []byte) (int, error) {
	f.calls.writes.Add(1)
	return f.File.Write(p)
}

// packedRepo is a Git repository of a few commits, all in one pack (nothing loose), and
// its head.
func packedRepo(t testing.TB) (gitDir, head string) {
	t.Helper()
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(cmd.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("init", "-q", ".")
	for _, name := range []string{"a.yaml", "b.yaml", "c.yaml"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("name: "+name+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		run("add", name)
		run("commit", "-q", "-m", name)
	}
	run("gc", "-q")
	if loose := run("count-objects"); !strings.HasPrefix(loose, "0 objects") {
		t.Fatalf("objects left loose after gc: %s", loose)
	}
	return filepath.Join(dir, ".git"), run("rev-parse", "HEAD")
}

// A mirror's pack index is read in a few calls, not four bytes at a time: go-git's decoder
// reads the 256-entry fan-out and every entry's fields one by one, which on the file
// itself is a system call each, in every look that opens a mirror. The file still answers
// Stat, with which the decoder checks the index's size against its fan-out.
func TestMirrorFSReadsAPackIndexThroughABuffer(t *testing.T) {
	gitDir, head := packedRepo(t)
	lookUp := func(fs billy.Filesystem) {
		t.Helper()
		r, err := git.Open(filesystem.NewStorage(fs, cache.NewObjectLRUDefault()), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !hasObject(r, plumbing.NewHash(head)) {
			t.Fatal("the packed head is not found")
		}
		if _, err := r.CommitObject(plumbing.NewHash(head)); err != nil {
			t.Fatalf("read the head through the index: %v", err)
		}
	}

	var rawReads, rawWrites atomic.Int32
	lookUp(indexCalls{Filesystem: osfs.New(gitDir), reads: &rawReads, writes: &rawWrites})
	var reads, writes atomic.Int32
	lookUp(packIndexFS{indexCalls{Filesystem: osfs.New(gitDir), reads: &reads, writes: &writes}})

	// The plain file's count shows what the buffer saves; it is go-git's, not ours to pin.
	t.Logf("index reads: %d on the plain file, %d through mirrorFS", rawReads.Load(), reads.Load())
	idx, err := filepath.Glob(filepath.Join(gitDir, "objects", "pack", "*.idx"))
	if err != nil || len(idx) != 1 {
		t.Fatalf("indexes: %v %v", idx, err)
	}
	f, err := mirrorFS(gitDir).Open(filepath.Join("objects", "pack", filepath.Base(idx[0])))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	statter, ok := f.(interface{ Stat() (os.FileInfo, error) })
	if !ok {
		t.Fatal("a pack index opened through mirrorFS does not answer Stat")
	}
	if info, err := statter.Stat(); err != nil || info.Size() == 0 {
		t.Fatalf("Stat of a pack index: %v, %v", info, err)
	}
	if got := reads.Load(); got < 1 || got > 2 {
		t.Fatalf("the pack index took %d reads through mirrorFS (%d on the plain file); it is read through a buffer", got, rawReads.Load())
	}
}

// A pack stored into a mirror has its index written through a buffer, and the index is the
// same file go-git writes without one.
func TestMirrorFSWritesAPackIndexInFewCalls(t *testing.T) {
	gitDir, head := packedRepo(t)
	packs, err := filepath.Glob(filepath.Join(gitDir, "objects", "pack", "*.pack"))
	if err != nil || len(packs) != 1 {
		t.Fatalf("packs after gc: %v %v", packs, err)
	}
	store := func(fs billy.Filesystem, dir string) []byte {
		t.Helper()
		if _, err := git.Init(filesystem.NewStorage(osfs.New(dir), cache.NewObjectLRUDefault()), nil); err != nil {
			t.Fatal(err)
		}
		st := filesystem.NewStorage(fs, cache.NewObjectLRUDefault())
		w, err := st.PackfileWriter()
		if err != nil {
			t.Fatal(err)
		}
		src, err := os.Open(packs[0])
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		if _, err := io.Copy(w, src); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		idx, err := filepath.Glob(filepath.Join(dir, "objects", "pack", "*.idx"))
		if err != nil || len(idx) != 1 {
			t.Fatalf("indexes written: %v %v", idx, err)
		}
		b, err := os.ReadFile(idx[0])
		if err != nil {
			t.Fatal(err)
		}
		// Read back through a plain storage: the index written is whole and valid.
		r, err := git.Open(filesystem.NewStorage(osfs.New(dir), cache.NewObjectLRUDefault()), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.CommitObject(plumbing.NewHash(head)); err != nil {
			t.Fatalf("read the head through the written index: %v", err)
		}
		return b
	}

	var rawReads, rawWrites atomic.Int32
	rawDir := t.TempDir()
	raw := store(indexCalls{Filesystem: osfs.New(rawDir), reads: &rawReads, writes: &rawWrites}, rawDir)
	var reads, writes atomic.Int32
	dir := t.TempDir()
	buffered := store(packIndexFS{indexCalls{Filesystem: osfs.New(dir), reads: &reads, writes: &writes}}, dir)

	t.Logf("index writes: %d on the plain file, %d through mirrorFS", rawWrites.Load(), writes.Load())
	if !bytes.Equal(raw, buffered) {
		t.Fatal("the index written through mirrorFS differs from go-git's own")
	}
	if got := writes.Load(); got < 1 || got > 2 {
		t.Fatalf("the pack index took %d writes through mirrorFS (%d on the plain file); it is buffered", got, rawWrites.Load())
	}
}

// The mirrors the daemon keeps are opened on mirrorFS: a look opens them, and an opened
// mirror reads its pack indexes through what it was opened on.
func TestMirrorsAreOpenedOnMirrorFS(t *testing.T) {
	o := newOrigin(t)
	o.commit()
	repo := Repo{Name: "indexed", URL: "file://" + o.dir}
	m, err := New(Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Sync(context.Background(), repo, "master"); err != nil {
		t.Fatal(err)
	}
	r, err := m.openDir(m.dir(repo))
	if err != nil {
		t.Fatal(err)
	}
	onMirrorFS(t, "an existing mirror", r)
	created, err := m.create(Repo{Name: "new", URL: "file://" + o.dir})
	if err != nil {
		t.Fatal(err)
	}
	onMirrorFS(t, "a new mirror, before its first fetch", created)
}

func onMirrorFS(t *testing.T, what string, r *git.Repository) {
	t.Helper()
	st, ok := r.Storer.(*filesystem.Storage)
	if !ok {
		t.Fatalf("%s: storer is %T", what, r.Storer)
	}
	if _, ok := st.Filesystem().(packIndexFS); !ok {
		t.Fatalf("%s is opened on %T, not mirrorFS", what, st.Filesystem())
	}
}

// BenchmarkOpenMirrorAndFindHead is what each look pays to open a mirror and find a commit
// in its pack index, on the plain filesystem and on mirrorFS.
func BenchmarkOpenMirrorAndFindHead(b *testing.B) {
	gitDir, head := packedRepo(b)
	h := plumbing.NewHash(head)
	for _, c := range []struct {
		name string
		fs   func() billy.Filesystem
	}{
		{"plain", func() billy.Filesystem { return osfs.New(gitDir) }},
		{"mirrorFS", func() billy.Filesystem { return mirrorFS(gitDir) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				r, err := git.Open(filesystem.NewStorage(c.fs(), cache.NewObjectLRUDefault()), nil)
				if err != nil {
					b.Fatal(err)
				}
				if !hasObject(r, h) {
					b.Fatal("head not found")
				}
			}
		})
	}
}
