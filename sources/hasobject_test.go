package sources

import (
	"io/fs"
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
	gitDir, head := packedRepo(t)
	var n atomic.Int32
	r, err := git.Open(filesystem.NewStorage(packOpens{Filesystem: osfs.New(gitDir), n: &n}, cache.NewObjectLRUDefault()), nil)
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
