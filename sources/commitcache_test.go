package sources

import (
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
)

func TestCommitCacheForgetsAndCopies(t *testing.T) {
	var cc commitCache
	h := plumbing.NewHash("0123456789abcdef0123456789abcdef01234567")
	cc.put("/m/a", h, Commit{Hash: h.String(), Tags: []string{"v1"}})
	got, ok := cc.get("/m/a", h)
	if !ok || got.Hash != h.String() || len(got.Tags) != 1 {
		t.Fatalf("get = %+v, %v", got, ok)
	}
	got.Tags[0] = "changed by the caller"
	if again, _ := cc.get("/m/a", h); again.Tags[0] != "v1" {
		t.Fatalf("a caller's change reached the cache: %q", again.Tags)
	}
	if _, ok := cc.get("/m/b", h); ok {
		t.Fatal("another mirror's commit was served")
	}
	cc.forget("/m/a")
	if _, ok := cc.get("/m/a", h); ok {
		t.Fatal("served after forget")
	}
}

func TestCommitCacheEntriesExpire(t *testing.T) {
	var cc commitCache
	h := plumbing.NewHash("0123456789abcdef0123456789abcdef01234567")
	cc.put("/m/a", h, Commit{Hash: h.String()})
	e := cc.byDir["/m/a"][h]
	e.at = time.Now().Add(-commitTTL - time.Second)
	cc.byDir["/m/a"][h] = e
	if _, ok := cc.get("/m/a", h); ok {
		t.Fatal("served an entry older than commitTTL")
	}
}

func TestCommitCacheIsBounded(t *testing.T) {
	var cc commitCache
	for i := range maxCachedCommits + 1 {
		var h plumbing.Hash
		h[0], h[1] = byte(i), byte(i>>8)
		cc.put("/m/a", h, Commit{})
	}
	if n := len(cc.byDir["/m/a"]); n > maxCachedCommits {
		t.Fatalf("%d commits kept, want at most %d", n, maxCachedCommits)
	}
}
