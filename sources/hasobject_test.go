package sources

import (
	"io/fs"
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

// packOpens counts the pack files opened through it.
type packOpens struct {
	billy.Filesystem
	n *atomic.Int32
}

func (f packOpens) Open(name string) (billy.File, error) {
	if strings.HasSuffix(name, ".pack") {
		f.n.Add(1)
	}
	return f.Filesystem.Open(name)
}

func (f packOpens) OpenFile(name string, flag int, perm fs.FileMode) (billy.File, error) {
	if strings.HasSuffix(name, ".pack") {
		f.n.Add(1)
	}
	return f.Filesystem.OpenFile(name, flag, perm)
}

// hasObject answers from the pack index: a thousand looks at once each asking whether
// their commit is there must not each open and decode a pack.
func TestHasObjectOpensNoPack(t *testing.T) {
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
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("packed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run("add", "README.md")
	run("commit", "-q", "-m", "one")
	head := run("rev-parse", "HEAD")
	run("gc", "-q")
	if loose := run("count-objects"); !strings.HasPrefix(loose, "0 objects") {
		t.Fatalf("objects left loose after gc: %s", loose)
	}
	var n atomic.Int32
	r, err := git.Open(filesystem.NewStorage(packOpens{Filesystem: osfs.New(filepath.Join(dir, ".git")), n: &n}, cache.NewObjectLRUDefault()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !hasObject(r, plumbing.NewHash(head)) {
		t.Fatal("a packed object is not found")
	}
	if hasObject(r, plumbing.NewHash(strings.Repeat("ab", 20))) {
		t.Fatal("an object the mirror does not hold is found")
	}
	if got := n.Load(); got != 0 {
		t.Fatalf("hasObject opened %d pack files; the index says whether the object is there", got)
	}
}
