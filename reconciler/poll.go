package reconciler

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/sources"
	"github.com/slipwayhq/slipway/store"
)

// ChangeLister is the part of the Git side polling needs beyond a run's.
type ChangeLister interface {
	ChangedPaths(ctx context.Context, repo sources.Repo, from, to string) ([]string, error)
}

// Poller watches one repository's tracked branch and submits the pipelines a new commit
// triggers. A remote ref listing is the only network call while nothing changes.
type Poller struct {
	Runner     *Runner
	Dispatcher *Dispatcher
	Changes    ChangeLister
	Repo       sources.Repo
	Branch     string
	Interval   time.Duration
	Log        *logrus.Entry
}

// Run polls until ctx ends. Errors back off exponentially up to ten intervals.
func (p *Poller) Run(ctx context.Context) {
	last, err := p.lastRunCommit(ctx)
	if err != nil {
		p.Log.WithError(err).Warn("read the last run commit; the branch head will run")
	}
	backoff := p.Interval
	for {
		next, err := p.poll(ctx, last)
		if err != nil {
			p.Log.WithError(err).Warn("poll")
			backoff = min(backoff*2, 10*p.Interval)
		} else {
			last, backoff = next, p.Interval
		}
		// Jitter spreads many repositories' polls over the interval.
		wait := backoff + time.Duration(rand.Int64N(int64(backoff)/10+1))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// poll submits runs for a new head and returns the commit now handled.
func (p *Poller) poll(ctx context.Context, last string) (string, error) {
	co, err := p.Runner.Prepare(ctx, Request{Repo: p.Repo, Branch: p.Branch})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return last, err
		}
		// A broken pipeline file at a new commit is recorded once, not retried forever.
		p.Log.WithError(err).Error("prepare the new commit")
		var notPrepared *PrepareError
		if errors.As(err, &notPrepared) {
			return notPrepared.Commit, nil
		}
		return last, err
	}
	if co.Commit.Hash == last {
		return last, nil
	}
	var changed []string
	if last != "" {
		if changed, err = p.Changes.ChangedPaths(ctx, p.Repo, last, co.Commit.Hash); err != nil {
			p.Log.WithError(err).Warn("changed paths unknown; path filters let the commit through")
			changed = nil
		}
	}
	ev := pipeline.Event{Kind: pipeline.EventPush, Branch: p.Branch, TrackedBranch: p.Branch, ChangedPaths: changed}
	for _, pl := range co.Pipelines {
		ok, why := pipeline.Match(pl, ev)
		log := p.Log.WithFields(logrus.Fields{"pipeline": pl.Name, "commit": co.Commit.ShortHash})
		if !ok {
			log.WithField("reason", why).Info("not triggered")
			continue
		}
		if _, err := p.Dispatcher.Submit(ctx, co, pl, store.TriggerPush); err != nil {
			return last, err
		}
	}
	return co.Commit.Hash, nil
}

// lastRunCommit is the newest commit any pipeline of the repository ran for a push or by
// hand, so a restarted daemon does not run the same head again.
func (p *Poller) lastRunCommit(ctx context.Context) (string, error) {
	st := p.Runner.Store
	all, err := st.ListPipelines(ctx)
	if err != nil {
		return "", err
	}
	var newest store.Run
	for _, pl := range all {
		if pl.Ref.Repository != p.Repo.Name {
			continue
		}
		runs, err := st.ListRuns(ctx, pl.Ref, 20)
		if err != nil {
			return "", err
		}
		for _, run := range runs {
			// A rollback runs an old commit on purpose; the head it rolled back from stays
			// handled until a new commit arrives.
			if run.Trigger == store.TriggerRollback {
				continue
			}
			if run.CreatedAt.After(newest.CreatedAt) {
				newest = run
			}
			break
		}
	}
	return newest.Commit, nil
}
