package sources

import (
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/go-git/go-git/v5/plumbing"
)

// commitCache remembers the commits Commit described: a thousand runs of one commit, or
// of a thousand repositories' heads, asked for through the API would otherwise each open
// its mirror and read the commit from a pack under the repository's lock. A description
// never changes (a commit's hash names its content), and a commit a mirror holds stays in
// it: fetches only add objects and merging packs keeps every one. So an entry lives until
// it is the least recently used past maxCachedCommits, or its mirror is re-created; a
// checkout still makes sure its commit is in the mirror, fetching it if another process
// re-created the mirror meanwhile.
type commitCache struct {
	entries *lru.Cache[commitKey, Commit]
}

type commitKey struct {
	dir  string // the mirror's
	hash plumbing.Hash
}

// maxCachedCommits bounds the descriptions kept, for all mirrors together: a few hundred
// KiB with short messages; enough for every head of a thousand repositories.
const maxCachedCommits = 2048

func newCommitCache() commitCache {
	c, err := lru.New[commitKey, Commit](maxCachedCommits)
	if err != nil {
		panic(err) // only for a size below 1
	}
	return commitCache{entries: c}
}

func (cc commitCache) get(dir string, h plumbing.Hash) (Commit, bool) {
	return cc.entries.Get(commitKey{dir, h})
}

func (cc commitCache) put(dir string, h plumbing.Hash, c Commit) {
	cc.entries.Add(commitKey{dir, h}, c)
}

// forget drops a mirror's commits: it is being re-created, perhaps from another URL.
func (cc commitCache) forget(dir string) {
	for _, k := range cc.entries.Keys() {
		if k.dir == dir {
			cc.entries.Remove(k)
		}
	}
}
