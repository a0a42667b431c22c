package sources

import (
	"fmt"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"

	"github.com/slipwayhq/slipway/internal/heldheap"
)

func blob(content string) plumbing.EncodedObject {
	o := &plumbing.MemoryObject{}
	o.SetType(plumbing.BlobObject)
	if _, err := o.Write([]byte(content)); err != nil {
		panic(err)
	}
	return o
}

func TestCallCacheDropsTheLeastRecentlyUsedPastItsSize(t *testing.T) {
	c := newCallCache(30)
	a, b, d := blob("aaaaaaaaaa"), blob("bbbbbbbbbb"), blob("dddddddddd")
	c.Put(a)
	c.Put(b)
	c.Put(d)
	if _, ok := c.Get(a.Hash()); !ok { // a is now the most recently used
		t.Fatal("a dropped with the cache exactly full")
	}
	c.Put(blob("eeeeeeeeee"))
	if _, ok := c.Get(b.Hash()); ok {
		t.Fatal("b, the least recently used, was kept past the size")
	}
	for _, o := range []plumbing.EncodedObject{a, d} {
		if got, ok := c.Get(o.Hash()); !ok || got != o {
			t.Fatalf("%s dropped; only b should have been", o.Hash())
		}
	}
	c.Put(a) // again: counted once
	if c.size != 30 || len(c.items) != 3 {
		t.Fatalf("size %d with %d objects, want 30 with 3", c.size, len(c.items))
	}
	c.Put(blob("this object alone is larger than the whole cache"))
	if len(c.items) != 3 {
		t.Fatal("an object larger than the cache was kept")
	}
	c.Clear()
	if _, ok := c.Get(a.Hash()); ok || c.size != 0 {
		t.Fatal("an object outlived Clear")
	}
	c.Put(b)
	if _, ok := c.Get(b.Hash()); !ok {
		t.Fatal("the cache does not keep objects after Clear")
	}
}

// A thousand calls in flight at once, each with a few small objects cached: the caches hold
// what they keep, not go-git's ObjectLRU's map sized for a thousand objects each (about
// 50 KB: 50 MB for the thousand).
func TestCallCachesOfAThousandCallsStaySmall(t *testing.T) {
	const calls = 1000
	fill := func(c cache.Object, i int) {
		for j := range 3 {
			c.Put(blob(fmt.Sprintf("call %d object %d", i, j)))
		}
	}
	held := heldheap.Bytes(t, 3, func() any {
		caches := make([]*callCache, calls)
		for i := range caches {
			caches[i] = newCallCache(cache.DefaultMaxSize)
			fill(caches[i], i)
		}
		return caches
	})
	if perCall := held / calls; perCall > 4<<10 {
		t.Fatalf("each call's cache holds %d bytes for three small objects; want under 4 KiB", perCall)
	}
	lru := heldheap.Bytes(t, 1, func() any {
		caches := make([]*cache.ObjectLRU, calls)
		for i := range caches {
			caches[i] = cache.NewObjectLRUDefault()
			fill(caches[i], i)
		}
		return caches
	})
	t.Logf("%d calls' caches: %d KB, go-git's ObjectLRU %d KB", calls, held>>10, lru>>10)
}
