package daemon

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/internal/changefeed"
	"github.com/slipwayhq/slipway/reconciler/replicas"
	"github.com/slipwayhq/slipway/reconciler/schedule"
	"github.com/slipwayhq/slipway/reconciler/trigger"
	"github.com/slipwayhq/slipway/store"
)

// hintStore is where replicas leave each other webhook hints.
type hintStore interface {
	HandHint(ctx context.Context, h store.RepositoryHint) error
	TakeHints(ctx context.Context, repositories []string) ([]store.RepositoryHint, error)
}

// ownedRepos is a replica's share of the work (replicas.Work): each owned repository's
// watcher runs here, and through it the repository's schedules; the drift and health
// watches follow the owned repositories' tasks (ownedStore).
type ownedRepos struct {
	watchers map[string]*trigger.BranchWatcher
	sched    *schedule.Scheduler
	hints    hintStore
	// changed tells the drift and health watches that the owned repositories changed.
	changed func(ctx context.Context)
	log     *logrus.Entry

	// took wakes followHints when a repository is taken over, so the hints waiting for it
	// are taken there, in one store call, not on the coordinator's goroutine.
	took chan struct{}

	mu      sync.Mutex
	running map[string]*ownedWatcher
}

type ownedWatcher struct {
	cancel context.CancelFunc
	done   <-chan struct{}
}

func newOwnedRepos(watchers []*trigger.BranchWatcher, sched *schedule.Scheduler, hints hintStore, log *logrus.Entry) *ownedRepos {
	o := &ownedRepos{watchers: map[string]*trigger.BranchWatcher{}, sched: sched, hints: hints, log: log,
		running: map[string]*ownedWatcher{}, changed: func(context.Context) {}, took: make(chan struct{}, 1)}
	for _, w := range watchers {
		o.watchers[w.Repo().Name] = w
	}
	return o
}

// Own starts the repository's watcher; its first look registers the schedules, which
// catch up on ticks missed since the last owner handled one.
func (o *ownedRepos) Own(ctx context.Context, repo string) {
	w := o.watchers[repo]
	if w == nil {
		return
	}
	wctx, cancel := context.WithCancel(ctx)
	ow := &ownedWatcher{cancel: cancel}
	o.mu.Lock()
	if o.running[repo] != nil {
		o.mu.Unlock()
		cancel()
		return
	}
	o.running[repo] = ow
	owned := time.Now()
	ow.done = w.Start(wctx, func(err error) {
		// The end of a failover as a user sees it: the new owner has looked at the
		// repository (listed its refs, run what a missed push triggers).
		log := o.log.WithFields(logrus.Fields{"repo": repo, "since_owned_ms": time.Since(owned).Milliseconds()})
		if err != nil {
			log.WithError(err).Info("replica: first look at the repository failed; the watcher retries")
			return
		}
		log.Info("replica: first look at the repository")
	})
	o.mu.Unlock()
	o.log.WithField("repo", repo).Info("replica: watching the repository")
	select {
	case o.took <- struct{}{}:
	default:
	}
	o.changed(ctx)
}

// Disown stops the watcher and the schedules, keeping their ticks for the next owner.
func (o *ownedRepos) Disown(ctx context.Context, repo string) {
	o.mu.Lock()
	ow := o.running[repo]
	delete(o.running, repo)
	o.mu.Unlock()
	if ow == nil {
		return
	}
	ow.cancel()
	<-ow.done
	if err := o.sched.Release(ctx, repo); err != nil {
		o.log.WithError(err).WithField("repo", repo).Warn("replica: stop the repository's schedules")
	}
	o.log.WithField("repo", repo).Info("replica: stopped watching the repository")
	o.changed(ctx)
}

// Owns reports whether the repository's watcher runs here.
func (o *ownedRepos) Owns(repo string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.running[repo] != nil
}

func (o *ownedRepos) owned() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]string, 0, len(o.running))
	for r := range o.running {
		out = append(out, r)
	}
	return out
}

// Handoff is the hub's route for hints (trigger.HubOptions.Handoff): a hint for a
// repository watched elsewhere is left in the store for its owner.
func (o *ownedRepos) Handoff(ctx context.Context, repo string, h trigger.Hint) (bool, error) {
	if o.Owns(repo) {
		return false, nil
	}
	err := o.hints.HandHint(ctx, store.RepositoryHint{Repository: repo, DeliveryID: h.DeliveryID, Branch: h.Branch,
		Commit: h.Commit, Tag: h.Tag, Resumed: h.Resumed})
	if err != nil {
		return true, fmt.Errorf("hand the hint to the replica watching %s: %w", repo, err)
	}
	o.log.WithFields(logrus.Fields{"repo": repo, "delivery": h.DeliveryID}).Debug("replica: hint handed to the owner")
	return true, nil
}

// deliver takes the hints other replicas left for repos and gives them to the watchers.
func (o *ownedRepos) deliver(ctx context.Context, repos []string) {
	hs, err := o.hints.TakeHints(ctx, repos)
	if err != nil {
		if ctx.Err() == nil {
			o.log.WithError(err).Warn("replica: take handed hints")
		}
		return
	}
	for _, h := range hs {
		if w := o.watchers[h.Repository]; w != nil {
			w.Hint(trigger.Hint{DeliveryID: h.DeliveryID, Branch: h.Branch, Commit: h.Commit, Tag: h.Tag, Resumed: h.Resumed})
		}
	}
}

// followHints delivers handed hints when the store says one was written (through the
// replicas' change relay), when a repository is taken over, and, in case a wake-up does not
// reach this replica, every period.
func (o *ownedRepos) followHints(ctx context.Context, changes *changefeed.Feed, period time.Duration) {
	wake, stop := changes.Follow(changefeed.Kinds(store.ChangeHint))
	defer stop()
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		if repos := o.owned(); len(repos) > 0 {
			o.deliver(ctx, repos)
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-o.took:
		case <-t.C:
		}
	}
}

// ownedStore shows the drift and health watches the current revisions of the owned
// repositories only, so each deployed task is watched by one replica.
type ownedStore struct {
	store.Store
	owns func(repo string) bool
}

func (s ownedStore) CurrentRevisions(ctx context.Context) ([]store.Revision, error) {
	var revs []store.Revision
	err := s.EachCurrentRevision(ctx, nil, func(r *store.Revision) error {
		revs = append(revs, *r)
		return nil
	})
	return revs, err
}

func (s ownedStore) EachCurrentRevision(ctx context.Context, known func(*store.Revision) bool, fn func(*store.Revision) error) error {
	return s.Store.EachCurrentRevision(ctx, s.knownUnlessOwned(known), s.ownedOnly(fn))
}

func (s ownedStore) EachCurrentRevisionOf(ctx context.Context, pipelines []store.PipelineRef, known func(*store.Revision) bool, fn func(*store.Revision) error) error {
	return s.Store.EachCurrentRevisionOf(ctx, pipelines, s.knownUnlessOwned(known), s.ownedOnly(fn))
}

// knownUnlessOwned is known, and yes for the revisions of repositories another replica
// owns: those are dropped, so they are never read in full.
func (s ownedStore) knownUnlessOwned(known func(*store.Revision) bool) func(*store.Revision) bool {
	return func(r *store.Revision) bool {
		return !s.owns(r.Pipeline.Repository) || (known != nil && known(r))
	}
}

// ownedOnly is fn for the revisions of owned repositories only.
func (s ownedStore) ownedOnly(fn func(*store.Revision) error) func(*store.Revision) error {
	return func(r *store.Revision) error {
		if !s.owns(r.Pipeline.Repository) {
			return nil
		}
		return fn(r)
	}
}

// newCoordinator connects to ha's cluster (nothing is dialled until the first LIST) and
// makes this replica's coordinator.
func newCoordinator(cfg *config.Config, work replicas.Work, log *logrus.Entry) (*replicas.Coordinator, error) {
	ha := cfg.HA
	_, cs, err := clusterClient(cfg, ha.Cluster, "ha")
	if err != nil {
		return nil, err
	}
	return replicas.New(replicas.Options{Leases: cs.CoordinationV1().Leases(ha.Namespace), Identity: ha.ReplicaIdentity(),
		Repositories: repositoryNames(cfg), LeaseDuration: ha.LeaseDuration.Duration, RenewDeadline: ha.RenewDeadline.Duration,
		RetryPeriod: ha.RetryPeriod.Duration, Work: work, Log: log})
}
