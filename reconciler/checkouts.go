package reconciler

import (
	"context"
	"os"
	"runtime"
	"sync"
	"time"
	"weak"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/sources"
)

// checkouts shares one checkout of a commit between everything that only reads it: the
// preparation that reads its pipeline file, and the runs of its pipelines until their
// first script makes a run's own (ownWorkspace). A monorepo's push runs
// hundreds of pipelines of one commit; each checking the whole tree out again, one after
// another under the mirror's lock, cost more than their deploys. The pipeline file is
// parsed once per checkout, too.
type checkouts struct {
	src  Sources
	root func() string
	mu   sync.Mutex
	// linger keeps a checkout nobody holds for a while: the runs of one commit start as
	// places among the runs in flight free up, not all at once.
	linger time.Duration
	byKey  map[checkoutKey]*sharedCheckout
	// held are the pipeline files read at each commit, for as long as something still holds
	// them (a run its pipeline): a checkout made again for such
	// a commit (the runs of a monorepo's commit asked for through the API after the push's
	// checkout went) takes them instead of a second copy. Each entry goes with its first
	// pipeline.
	held map[checkoutKey][]weak.Pointer[pipeline.Pipeline]
}

type checkoutKey struct{ repo, commit string }

type sharedCheckout struct {
	key   checkoutKey
	dir   string
	refs  int
	ready chan struct{} // closed once checked out (or failed: err)
	err   error
	timer *time.Timer // removes it once it lingered unheld
	// The pipeline file read at this commit, once.
	parseOnce sync.Once
	pipelines []*pipeline.Pipeline
	parseErr  error
}

// acquire returns a checkout of commit shared with its other readers; the caller must
// only read it, and call release when done.
func (c *checkouts) acquire(ctx context.Context, repo sources.Repo, commit string) (*sharedCheckout, func(), error) {
	k := checkoutKey{repo.Name, commit}
	c.mu.Lock()
	sc := c.byKey[k]
	if sc != nil {
		sc.refs++
		if sc.timer != nil {
			sc.timer.Stop()
			sc.timer = nil
		}
		c.mu.Unlock()
		select {
		case <-sc.ready:
		case <-ctx.Done():
			c.release(k, sc)
			return nil, nil, ctx.Err()
		}
		if sc.err != nil {
			c.release(k, sc)
			return nil, nil, sc.err
		}
		return sc, func() { c.release(k, sc) }, nil
	}
	sc = &sharedCheckout{key: k, refs: 1, ready: make(chan struct{})}
	if c.byKey == nil {
		c.byKey = map[checkoutKey]*sharedCheckout{}
	}
	c.byKey[k] = sc
	c.mu.Unlock()
	sc.dir, sc.err = os.MkdirTemp(c.root(), "commit-")
	if sc.err == nil {
		sc.err = c.src.Checkout(ctx, repo, commit, sc.dir)
	}
	if sc.err != nil {
		// Not kept: the next reader tries again (this one's context may have ended).
		c.mu.Lock()
		delete(c.byKey, k)
		c.mu.Unlock()
		if sc.dir != "" {
			_ = os.RemoveAll(sc.dir)
		}
		close(sc.ready)
		return nil, nil, sc.err
	}
	close(sc.ready)
	return sc, func() { c.release(k, sc) }, nil
}

func (c *checkouts) release(k checkoutKey, sc *sharedCheckout) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sc.refs--
	if sc.refs > 0 || sc.err != nil {
		return
	}
	if c.linger <= 0 {
		c.removeLocked(k, sc)
		return
	}
	sc.timer = time.AfterFunc(c.linger, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if sc.refs == 0 && c.byKey[k] == sc {
			c.removeLocked(k, sc)
		}
	})
}

func (c *checkouts) removeLocked(k checkoutKey, sc *sharedCheckout) {
	delete(c.byKey, k)
	_ = os.RemoveAll(sc.dir)
}

// close removes the checkouts nobody holds and keeps none from now on.
func (c *checkouts) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.linger = 0
	for k, sc := range c.byKey {
		if sc.refs == 0 {
			if sc.timer != nil {
				sc.timer.Stop()
			}
			c.removeLocked(k, sc)
		}
	}
}

// parse reads the pipeline file once per checkout, or not at all while the pipelines read
// at its commit before are all still held: every later caller gets the same validated
// pipelines, which nothing changes after loading.
func (c *checkouts) parse(sc *sharedCheckout, load func() ([]*pipeline.Pipeline, error)) ([]*pipeline.Pipeline, error) {
	sc.parseOnce.Do(func() {
		if sc.pipelines = c.stillHeld(sc.key); sc.pipelines != nil {
			return
		}
		sc.pipelines, sc.parseErr = load()
		if sc.parseErr == nil {
			c.remember(sc.key, sc.pipelines)
		}
	})
	return sc.pipelines, sc.parseErr
}

// stillHeld is the pipeline file read at k's commit, or nil when any of its pipelines is
// gone.
func (c *checkouts) stillHeld(k checkoutKey) []*pipeline.Pipeline {
	c.mu.Lock()
	defer c.mu.Unlock()
	ws := c.held[k]
	if len(ws) == 0 {
		return nil
	}
	ps := make([]*pipeline.Pipeline, len(ws))
	for i, w := range ws {
		if ps[i] = w.Value(); ps[i] == nil {
			return nil
		}
	}
	return ps
}

func (c *checkouts) remember(k checkoutKey, ps []*pipeline.Pipeline) {
	if len(ps) == 0 {
		return
	}
	ws := make([]weak.Pointer[pipeline.Pipeline], len(ps))
	for i, p := range ps {
		ws[i] = weak.Make(p)
	}
	c.mu.Lock()
	if c.held == nil {
		c.held = map[checkoutKey][]weak.Pointer[pipeline.Pipeline]{}
	}
	c.held[k] = ws
	c.mu.Unlock()
	// Unless a later read of the commit replaced the entry meanwhile. In a goroutine of
	// its own: c.mu may be held while a checkout is removed from disk, and cleanups must
	// not block the runtime's one cleanup goroutine.
	runtime.AddCleanup(ps[0], func(first weak.Pointer[pipeline.Pipeline]) {
		go func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if ws := c.held[k]; len(ws) > 0 && ws[0] == first {
				delete(c.held, k)
			}
		}()
	}, ws[0])
}
