package sources

import (
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
)

func TestCommitCacheKeepsEachMirrorsCommitsUntilItIsRecreated(t *testing.T) {
	cc := newCommitCache()
	h := plumbing.NewHash("0123456789abcdef0123456789abcdef01234567")
	cc.put("/m/a", h, Commit{Hash: h.String(), Message: "first"})
	cc.put("/m/c", h, Commit{Hash: h.String(), Message: "first"})
	if got, ok := cc.get("/m/a", h); !ok || got.Message != "first" {
		t.Fatalf("get = %+v, %v", got, ok)
	}
	if _, ok := cc.get("/m/b", h); ok {
		t.Fatal("another mirror's commit was served")
	}
	cc.forget("/m/a")
	if _, ok := cc.get("/m/a", h); ok {
		t.Fatal("served after its mirror was forgotten")
	}
	if _, ok := cc.get("/m/c", h); !ok {
		t.Fatal("forgetting one mirror dropped another's commit")
	}
}

func TestCommitCacheIsBoundedForAllMirrors(t *testing.T) {
	cc := newCommitCache()
	var first plumbing.Hash
	for i := range maxCachedCommits + 1 {
		var h plumbing.Hash
		h[0], h[1] = byte(i), byte(i>>8)
		dir := "/m/" + string(rune('a'+i%26))
		cc.put(dir, h, Commit{})
		if i == 0 {
			first = h
		}
	}
	if n := cc.entries.Len(); n != maxCachedCommits {
		t.Fatalf("%d commits kept, want %d", n, maxCachedCommits)
	}
	if _, ok := cc.get("/m/a", first); ok {
		t.Fatal("the least recently used commit was kept past the bound")
	}
}
