package sources

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/sirupsen/logrus"
)

// DefaultTimeout bounds each network call when Options.Timeout is zero.
const DefaultTimeout = 60 * time.Second

// DefaultDepth is the history fetched below a branch head when Options.Depth is zero.
// Diffs need only the two commits' trees, and older commits are fetched on demand, so the
// mirror can stay shallow. It must not be 1: a later fetch is incremental only while the
// previous head lies within the depth of the new one; with depth 1 every fetch resends the
// whole tree (measured: 826 ms instead of 62 ms for one changed file in 2,000).
const DefaultDepth = 50

// Options configure Mirrors.
type Options struct {
	DataDir string        // mirrors live in <DataDir>/mirrors/<name>
	Timeout time.Duration // per network call; 0 means DefaultTimeout
	// Depth is how many commits of history a fetch brings per branch head: 0 means
	// DefaultDepth, a negative value means all history.
	Depth int
	Log   *logrus.Entry // nil means a logger that discards
	// Limiter bounds the ref listings and pack requests in flight against each Git host;
	// nil means DefaultPerHost per host.
	Limiter *HostLimiter
}

// Mirrors manages the on-disk Git mirrors of many repositories. It is safe for concurrent
// use; operations on one repository are serialised.
type Mirrors struct {
	root    string
	timeout time.Duration
	depth   int
	log     *logrus.Entry
	locks   *repoLocks
	// limiter is taken around each network call only, so a look whose commit is already
	// in the mirror never queues behind other repositories' listings.
	limiter *HostLimiter
	// compactAt is the most packs a mirror keeps before they are merged (compact).
	compactAt int
	// readHeads remembers, per mirror, the branch head last read whole, so a look at an
	// unchanged branch does not re-read its commit from the pack (the polling hot path).
	readHeads sync.Map // mirror dir → commit hash
	// handles keeps each mirror opened between calls, so its pack indexes are decoded once
	// rather than on every call: a fresh open reads every pack's index again, and a mirror
	// gains a pack per fetch (measured: 80 ms per open at 48 packs, three opens per push).
	// At most maxHandles stay open, the least recently used closed first: a daemon
	// following a thousand repositories would otherwise keep every one's indexes.
	handlesMu  sync.Mutex
	handles    map[string]*handle // by mirror dir
	maxHandles int
	handleUses uint64 // counts the handles' uses, for handle.used
	// commits are the commits Commit described.
	commits commitCache
	// caps are the capabilities each server advertised with the mirror's last ref
	// listing, which a Prefetch needs to ask for a pack without listing the refs first.
	// They are kept encoded (a decoded list is ten times the size), and decoded by the
	// Prefetch that needs them.
	caps sync.Map // mirror dir → string (capability.List.String)
	// prefetched is, per mirror, the commit a Prefetch last brought with its history to
	// the mirror's depth, so the sync that finds it is the branch head fetches it no more.
	prefetched sync.Map // mirror dir → plumbing.Hash
}

// handle is a mirror kept open, with the pack files its index was read from. Only the
// holder of the mirror's lock uses it.
type handle struct {
	r     *git.Repository
	cache *callCache // emptied after each call: only the indexes stay in memory
	packs string     // the pack indexes in objects/pack when it was last checked
	used  uint64     // Mirrors.handleUses at its last use
}

// defaultMaxHandles is how many mirrors stay open between calls. A push to many
// repositories reads each mirror a few times within seconds (its fetch, then its runs'
// checkouts); reopening one that was closed reads its pack indexes again, which for a
// mirror with few packs takes about a millisecond.
const defaultMaxHandles = 64

// New prepares <DataDir>/mirrors.
func New(opts Options) (*Mirrors, error) {
	if opts.DataDir == "" {
		return nil, errors.New("sources: a data dir is required")
	}
	root := filepath.Join(opts.DataDir, "mirrors")
	// Mirrors can hold private code: owner only.
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("sources: %w", err)
	}
	m := &Mirrors{root: root, timeout: opts.Timeout, depth: opts.Depth, log: opts.Log, locks: newRepoLocks(),
		limiter: opts.Limiter, handles: map[string]*handle{}, maxHandles: defaultMaxHandles, compactAt: defaultCompactAt,
		commits: newCommitCache()}
	if m.timeout <= 0 {
		m.timeout = DefaultTimeout
	}
	if m.depth == 0 {
		m.depth = DefaultDepth
	}
	if m.limiter == nil {
		m.limiter = &HostLimiter{}
	}
	if m.log == nil {
		l := logrus.New()
		l.SetOutput(discard{})
		m.log = logrus.NewEntry(l)
	}
	return m, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func (m *Mirrors) dir(repo Repo) string { return filepath.Join(m.root, mirrorDirName(repo.Name)) }

func (m *Mirrors) logFor(repo Repo) *logrus.Entry {
	return m.log.WithField("repo", repo.Name)
}

// withRepo runs fn holding the repository's lock. The mirror fn opens stays open for the
// next call if fn succeeds; after an error it is opened afresh.
func (m *Mirrors) withRepo(ctx context.Context, repo Repo, fn func() error) error {
	if repo.Name == "" || repo.URL == "" {
		return errors.New("sources: a repository needs a name and a URL")
	}
	unlock, err := m.locks.lock(ctx, m.dir(repo)+".lock")
	if err != nil {
		return fmt.Errorf("%s: %w", repo.Name, err)
	}
	defer unlock()
	err = fn()
	if err == nil {
		m.compactAfter(repo)
	}
	m.settle(m.dir(repo), err)
	return err
}

// settle keeps the mirror's handle after a call that succeeded, noting the packs it now
// has: packs this call fetched went through the handle, which indexed them as it wrote
// them. After an error the handle is dropped, so a broken mirror is read afresh.
func (m *Mirrors) settle(dir string, callErr error) {
	m.handlesMu.Lock()
	defer m.handlesMu.Unlock()
	h := m.handles[dir]
	if h == nil {
		return
	}
	h.cache.Clear()
	packs, err := packsOf(dir)
	if callErr != nil || err != nil {
		delete(m.handles, dir)
		return
	}
	h.packs = packs
}

// forget drops the mirror's handle (it is being removed).
func (m *Mirrors) forget(dir string) {
	m.handlesMu.Lock()
	defer m.handlesMu.Unlock()
	delete(m.handles, dir)
}

// openDir opens the mirror in dir, reusing its handle while objects/pack holds the packs
// it was read from: another process sharing the data dir (a CLI run) may have fetched
// into it, and a pack it wrote would be missing from the handle's index. Callers hold the
// lock. It fails with git.ErrRepositoryNotExists when there is no mirror.
func (m *Mirrors) openDir(dir string) (*git.Repository, error) {
	if _, err := os.Stat(dir); err != nil {
		if os.IsNotExist(err) {
			m.forget(dir)
			return nil, git.ErrRepositoryNotExists
		}
		return nil, err
	}
	// Listed before the indexes are read (lazily, on first use): a pack that appeared in
	// between is read too and only makes the next call open the mirror again.
	packs, err := packsOf(dir)
	if err != nil {
		m.forget(dir)
		return nil, err
	}
	m.handlesMu.Lock()
	h := m.handles[dir]
	if h != nil && h.packs == packs {
		m.handleUses++
		h.used = m.handleUses
		m.handlesMu.Unlock()
		return h.r, nil
	}
	m.handlesMu.Unlock()
	lru := newCallCache(cache.DefaultMaxSize)
	r, err := git.Open(filesystem.NewStorage(mirrorFS(dir), lru), nil)
	if err != nil {
		m.forget(dir)
		return nil, err
	}
	m.handlesMu.Lock()
	defer m.handlesMu.Unlock()
	m.handleUses++
	m.handles[dir] = &handle{r: r, cache: lru, packs: packs, used: m.handleUses}
	m.closeLeastUsedLocked()
	return r, nil
}

// closeLeastUsedLocked drops the least recently used handles past maxHandles. A call that
// is using a dropped handle goes on with it; the next call opens the mirror again.
func (m *Mirrors) closeLeastUsedLocked() {
	for len(m.handles) > m.maxHandles {
		var oldest string
		var used uint64
		for dir, h := range m.handles {
			if oldest == "" || h.used < used {
				oldest, used = dir, h.used
			}
		}
		delete(m.handles, oldest)
	}
}

// packsOf names the pack indexes in a mirror's objects/pack ("" for none).
func packsOf(dir string) (string, error) {
	entries, err := os.ReadDir(filepath.Join(dir, "objects", "pack"))
	if os.IsNotExist(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".idx") {
			b.WriteString(e.Name())
			b.WriteByte('\n')
		}
	}
	return b.String(), nil
}

// originFile records which URL (redacted) a mirror was made from, so a repository whose
// URL changes in the configuration gets a fresh mirror rather than a mix of two.
const originFile = "slipway-origin"

// open opens the mirror, creating it when absent and replacing it when it is unreadable
// or belongs to another URL. Callers hold the lock.
func (m *Mirrors) open(repo Repo) (*git.Repository, error) {
	dir := m.dir(repo)
	r, err := m.openDir(dir)
	switch {
	case errors.Is(err, git.ErrRepositoryNotExists):
		return m.create(repo)
	case err != nil:
		m.logFor(repo).WithError(err).Warn("mirror unreadable, re-creating it")
		return m.recreate(repo)
	}
	origin, _ := os.ReadFile(filepath.Join(dir, originFile))
	if strings.TrimSpace(string(origin)) != RedactURL(repo.URL) {
		m.logFor(repo).Warn("mirror was made from another URL, re-creating it")
		return m.recreate(repo)
	}
	return r, nil
}

// openExisting opens the mirror for reading; it never creates one.
func (m *Mirrors) openExisting(repo Repo) (*git.Repository, error) {
	r, err := m.openDir(m.dir(repo))
	if errors.Is(err, git.ErrRepositoryNotExists) {
		return nil, fmt.Errorf("%w: %s has no mirror yet (Sync it first)", ErrCommitNotFound, repo.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	return r, nil
}

// create makes a bare mirror and opens it as every mirror is opened (openDir, on
// mirrorFS): its first fetch, the largest, stores its pack through the same filesystem.
// Callers hold the lock.
func (m *Mirrors) create(repo Repo) (*git.Repository, error) {
	dir := m.dir(repo)
	if _, err := git.PlainInit(dir, true); err != nil {
		return nil, fmt.Errorf("create mirror: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, originFile), []byte(RedactURL(repo.URL)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("create mirror: %w", err)
	}
	r, err := m.openDir(dir)
	if err != nil {
		return nil, fmt.Errorf("create mirror: %w", err)
	}
	return r, nil
}

func (m *Mirrors) recreate(repo Repo) (*git.Repository, error) {
	m.readHeads.Delete(m.dir(repo))
	m.prefetched.Delete(m.dir(repo))
	m.forget(m.dir(repo))
	m.commits.forget(m.dir(repo))
	if err := os.RemoveAll(m.dir(repo)); err != nil {
		return nil, fmt.Errorf("remove broken mirror: %w", err)
	}
	return m.create(repo)
}

// remote is an in-memory remote: the URL (which may carry credentials) is never written
// into the mirror's config.
func remote(r *git.Repository, repo Repo) *git.Remote {
	return git.NewRemote(r.Storer, &config.RemoteConfig{Name: "origin", URLs: []string{repo.URL}})
}

// network waits for a place among the calls to repo's Git host, then bounds one network
// call in time; done gives the place up. Every call to a Git server goes through it, and
// nothing is waited for while the place is held, so places are never held in a chain.
func (m *Mirrors) network(ctx context.Context, repo Repo) (nctx context.Context, done func(), err error) {
	release, err := m.limiter.Acquire(ctx, repo.URL)
	if err != nil {
		return nil, nil, err
	}
	nctx, cancel := context.WithTimeout(ctx, m.timeout)
	return nctx, func() { cancel(); release() }, nil
}

// auth builds the transport auth for repo; its scratch files go next to the mirrors.
func (m *Mirrors) auth(repo Repo) (transport.AuthMethod, error) {
	a, err := transportAuth(repo, m.root)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", repo.Name, err)
	}
	return a, nil
}

// hasObject reports whether the mirror holds an object. It asks the pack indexes and the
// loose objects and reads no pack: EncodedObject opened the pack file and inflated the
// object only to drop it, in each of the thousand looks a push to 1000 repositories starts.
func hasObject(r *git.Repository, h plumbing.Hash) bool {
	return r.Storer.HasEncodedObject(h) == nil
}

// verify reads every ref's object and each branch head's commit and root tree: a cheap
// check that tells a broken mirror from a network failure.
func verify(r *git.Repository) error {
	refs, err := r.References()
	if err != nil {
		return fmt.Errorf("%w: %v", errCorrupt, err)
	}
	defer refs.Close()
	return refs.ForEach(func(ref *plumbing.Reference) error {
		if ref.Type() != plumbing.HashReference {
			return nil
		}
		if ref.Name().IsBranch() {
			if err := readable(r, ref.Hash()); err != nil {
				return err
			}
			return nil
		}
		if !hasObject(r, ref.Hash()) {
			return fmt.Errorf("%w: %s points to a missing object", errCorrupt, ref.Name())
		}
		return nil
	})
}

// readable checks that a commit and its root tree can be decoded.
func readable(r *git.Repository, h plumbing.Hash) error {
	c, err := r.CommitObject(h)
	if err != nil {
		return fmt.Errorf("%w: commit %s: %v", errCorrupt, h, err)
	}
	if _, err := c.Tree(); err != nil {
		return fmt.Errorf("%w: tree of %s: %v", errCorrupt, h, err)
	}
	return nil
}
