package sources

import (
	"slices"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
)

// commitCache remembers the commits Commit described, per mirror: a thousand runs of one
// commit asked for through the API would otherwise each open the mirror and read the
// commit and every tag from its pack, one after another under the repository's lock. A
// commit never changes; the tags pointing at it can, so a mirror's entries are dropped
// whenever this process changes its refs (a sync, a fetch, a re-created mirror), and each
// lives at most commitTTL, for a mirror another process (slipway run) changed.
type commitCache struct {
	mu    sync.Mutex
	byDir map[string]map[plumbing.Hash]cachedCommit
}

type cachedCommit struct {
	c  Commit
	at time.Time
}

// commitTTL bounds how long a cached commit's tags may lag another process's changes;
// maxCachedCommits how many commits of one mirror are kept between its syncs.
const (
	commitTTL        = 30 * time.Second
	maxCachedCommits = 256
)

func (cc *commitCache) get(dir string, h plumbing.Hash) (Commit, bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	e, ok := cc.byDir[dir][h]
	if !ok || time.Since(e.at) > commitTTL {
		return Commit{}, false
	}
	c := e.c
	c.Tags = slices.Clone(c.Tags) // the caller's to change
	return c, true
}

func (cc *commitCache) put(dir string, h plumbing.Hash, c Commit) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.byDir == nil {
		cc.byDir = map[string]map[plumbing.Hash]cachedCommit{}
	}
	m := cc.byDir[dir]
	if m == nil || len(m) >= maxCachedCommits {
		m = map[plumbing.Hash]cachedCommit{}
		cc.byDir[dir] = m
	}
	c.Tags = slices.Clone(c.Tags)
	m[h] = cachedCommit{c: c, at: time.Now()}
}

// forget drops a mirror's commits: its refs are about to change.
func (cc *commitCache) forget(dir string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	delete(cc.byDir, dir)
}
