package sources

import (
	"container/list"
	"sync"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
)

// callCache is a kept mirror's object cache: the delta bases and objects one call reads,
// least recently used first out past maxSize, emptied when the call ends (settle).
// go-git's ObjectLRU sizes its map for a thousand objects on first use (about 50 KB); a
// push to a thousand small repositories has that many calls in flight at once, and those
// maps alone were 46 MB of the daemon's heap. This one grows with what it holds.
type callCache struct {
	maxSize cache.FileSize

	mu    sync.Mutex
	size  cache.FileSize
	order list.List // front: the most recently used
	items map[plumbing.Hash]*list.Element
}

func newCallCache(maxSize cache.FileSize) *callCache {
	return &callCache{maxSize: maxSize}
}

// Put keeps o, unless it alone is larger than the cache, dropping the least recently used
// objects to make room.
func (c *callCache) Put(o plumbing.EncodedObject) {
	size := cache.FileSize(o.Size())
	if size > c.maxSize {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	h := o.Hash()
	if e, ok := c.items[h]; ok {
		c.size += size - cache.FileSize(e.Value.(plumbing.EncodedObject).Size())
		e.Value = o
		c.order.MoveToFront(e)
	} else {
		if c.items == nil {
			c.items = map[plumbing.Hash]*list.Element{}
		}
		c.items[h] = c.order.PushFront(o)
		c.size += size
	}
	for c.size > c.maxSize {
		last := c.order.Back()
		if last == nil { // sizes changed behind the cache's back: start counting afresh
			c.size = 0
			break
		}
		old := c.order.Remove(last).(plumbing.EncodedObject)
		delete(c.items, old.Hash())
		c.size -= cache.FileSize(old.Size())
	}
}

// Get returns the object kept under h, now the most recently used.
func (c *callCache) Get(h plumbing.Hash) (plumbing.EncodedObject, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[h]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(plumbing.EncodedObject), true
}

// Clear drops every object and the map that held them.
func (c *callCache) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.items = nil
	c.order.Init()
	c.size = 0
}
