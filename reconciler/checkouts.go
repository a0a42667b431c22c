package reconciler

import (
	"context"
	"os"
	"sync"
	"time"

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
}

type checkoutKey struct{ repo, commit string }

type sharedCheckout struct {
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
	sc = &sharedCheckout{refs: 1, ready: make(chan struct{})}
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

// parse reads the pipeline file once per checkout: every later caller gets the same
// validated pipelines, which nothing changes after loading.
func (sc *sharedCheckout) parse(load func() ([]*pipeline.Pipeline, error)) ([]*pipeline.Pipeline, error) {
	sc.parseOnce.Do(func() { sc.pipelines, sc.parseErr = load() })
	return sc.pipelines, sc.parseErr
}
