// Package forgestatus reports every run as a commit status on its repository's forge:
// slipway/<pipeline> pending while the run is queued or running, then success, failure or
// error with BUILD_ID and the recorded reason. Statuses are sent from an in-memory queue,
// apart from the runs: a forge that is slow or down never fails or delays a run; sending is
// retried with backoff and logged, and only the newest state of a (commit, context) is sent.
package forgestatus

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/sources/forge"
	"github.com/slipwayhq/slipway/store"
)

// Runs finds the commit a run ran.
type Runs interface {
	GetRun(ctx context.Context, ref store.PipelineRef, buildID int64) (store.Run, error)
}

// Setter sets a commit status on one repository's forge (a forge.Client does).
type Setter interface {
	SetStatus(ctx context.Context, sha string, s forge.Status) error
}

// Options are a Reporter's collaborators and pacing; zero durations are the defaults.
type Options struct {
	Runs   Runs
	Forges map[string]Setter // by repository name; repositories not in it get no statuses
	Log    *logrus.Entry
	// Backoff is the first wait after a failed send (default 2s); it doubles up to MaxBackoff
	// (default 1m).
	Backoff    time.Duration
	MaxBackoff time.Duration
	// GiveUp drops a status not sent within this long of its event (default 15m).
	GiveUp time.Duration
	// CallTimeout bounds one send (default 1m).
	CallTimeout time.Duration
	// Drain bounds how long stopping waits to send what is still queued (default 5s).
	Drain time.Duration
}

// Context is the status context of a pipeline's runs.
func Context(pipeline string) string { return "slipway/" + pipeline }

// Reporter is a reconciler.Observer that turns run events into commit statuses.
type Reporter struct {
	o Options

	mu    sync.Mutex
	inbox []reconciler.Event
	wake  chan struct{}
}

// New returns a Reporter; Start it to send.
func New(o Options) *Reporter {
	if o.Backoff <= 0 {
		o.Backoff = 2 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = time.Minute
	}
	if o.GiveUp <= 0 {
		o.GiveUp = 15 * time.Minute
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = time.Minute
	}
	if o.Drain <= 0 {
		o.Drain = 5 * time.Second
	}
	if o.Log == nil {
		o.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	return &Reporter{o: o, wake: make(chan struct{}, 1)}
}

// maxInbox bounds the events waiting to be looked up, should the store stall; the oldest go.
const maxInbox = 10000

// RunEvent implements reconciler.Observer. It only queues: the run goes on at once.
func (r *Reporter) RunEvent(e reconciler.Event) {
	if e.Stage != "" || e.Task != "" || r.o.Forges[e.Repository] == nil {
		return
	}
	r.mu.Lock()
	if len(r.inbox) >= maxInbox {
		r.inbox = r.inbox[1:]
		r.o.Log.Warn("commit status queue full: the oldest run event is dropped")
	}
	r.inbox = append(r.inbox, e)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Start sends statuses until stop is called; stop then spends at most Drain sending what is
// still queued (runs that ended as the daemon stopped) and returns when done.
func (r *Reporter) Start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	draining := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.loop(ctx, draining)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(draining)
			timer := time.NewTimer(r.o.Drain)
			defer timer.Stop()
			select {
			case <-done:
			case <-timer.C:
				cancel()
				<-done
			}
			cancel()
		})
	}
}

// key is what a newer status replaces: one context of one commit of one repository.
type key struct{ repo, sha, context string }

// pending is a status waiting to be sent.
type pending struct {
	status   forge.Status
	since    time.Time // of its event
	due      time.Time
	attempts int
}

func (r *Reporter) loop(ctx context.Context, draining <-chan struct{}) {
	queue := map[key]*pending{}
	commits := map[store.PipelineRef]map[int64]string{} // runs seen and not yet final
	drain := false
	for {
		r.take(ctx, queue, commits)
		now := time.Now()
		for k, p := range queue {
			if drain || !now.Before(p.due) {
				r.send(ctx, k, p, queue)
			}
			if ctx.Err() != nil {
				return
			}
		}
		var next time.Time
		for _, p := range queue {
			if next.IsZero() || p.due.Before(next) {
				next = p.due
			}
		}
		if drain {
			// One more look: events of runs that ended while the last batch was sent.
			if r.inboxEmpty() {
				return
			}
			continue
		}
		var timer *time.Timer
		var due <-chan time.Time
		if !next.IsZero() {
			timer = time.NewTimer(time.Until(next))
			due = timer.C
		}
		select {
		case <-r.wake:
		case <-due:
		case <-draining:
			drain = true
		case <-ctx.Done():
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

func (r *Reporter) inboxEmpty() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.inbox) == 0
}

// take turns queued events into statuses: the run's commit from the store, the newest state
// replacing an older one of the same commit and context.
func (r *Reporter) take(ctx context.Context, queue map[key]*pending, commits map[store.PipelineRef]map[int64]string) {
	r.mu.Lock()
	events := r.inbox
	r.inbox = nil
	r.mu.Unlock()
	for _, e := range events {
		ref := store.PipelineRef{Repository: e.Repository, Name: e.Pipeline}
		sha := commits[ref][e.BuildID]
		if sha == "" {
			run, err := r.o.Runs.GetRun(ctx, ref, e.BuildID)
			if err != nil || run.Commit == "" {
				r.o.Log.WithError(err).WithFields(logrus.Fields{"repository": e.Repository, "pipeline": e.Pipeline,
					"build_id": e.BuildID}).Warn("commit status: the run's commit is unknown; no status is set")
				continue
			}
			sha = run.Commit
		}
		if store.RunStatus(e.Status).Final() {
			delete(commits[ref], e.BuildID)
		} else {
			if commits[ref] == nil {
				commits[ref] = map[int64]string{}
			}
			commits[ref][e.BuildID] = sha
		}
		queue[key{e.Repository, sha, Context(e.Pipeline)}] = &pending{status: statusOf(e), since: e.Time, due: time.Now()}
	}
}

// send tries one status once; a failure is logged and tried again after a backoff, until
// GiveUp.
func (r *Reporter) send(ctx context.Context, k key, p *pending, queue map[key]*pending) {
	callCtx, cancel := context.WithTimeout(ctx, r.o.CallTimeout)
	err := r.o.Forges[k.repo].SetStatus(callCtx, k.sha, p.status)
	cancel()
	log := r.o.Log.WithFields(logrus.Fields{"repository": k.repo, "commit": short(k.sha), "context": k.context,
		"state": p.status.State})
	if err == nil {
		delete(queue, k)
		log.Debug("commit status set")
		return
	}
	p.attempts++
	if time.Since(p.since) > r.o.GiveUp || ctx.Err() != nil {
		delete(queue, k)
		log.WithError(err).WithField("attempts", p.attempts).Error("commit status not set: giving up")
		return
	}
	wait := min(r.o.Backoff<<min(p.attempts-1, 20), r.o.MaxBackoff)
	p.due = time.Now().Add(wait)
	log.WithError(err).WithFields(logrus.Fields{"attempts": p.attempts, "retry_in": wait}).Warn("commit status not set; will retry")
}

// statusOf is the status a run event stands for. The reason is the run's recorded reason,
// which the runner has already masked.
func statusOf(e reconciler.Event) forge.Status {
	state := forge.StatusPending
	var what string
	switch store.RunStatus(e.Status) {
	case store.RunSucceeded:
		state, what = forge.StatusSuccess, "succeeded"
	case store.RunFailed:
		state, what = forge.StatusFailure, "failed"
	case store.RunTimedOut:
		state, what = forge.StatusFailure, "timed out"
	case store.RunApprovalTimedOut:
		state, what = forge.StatusFailure, "timed out waiting for approval"
	case store.RunAwaitingApproval:
		what = "awaiting approval"
	case store.RunAwaitingWindow:
		what = "waiting for a deploy window"
	case store.RunCancelled:
		state, what = forge.StatusError, "cancelled"
	case store.RunSuperseded:
		state, what = forge.StatusError, "superseded"
	case store.RunInterrupted:
		state, what = forge.StatusError, "interrupted"
	default:
		what = e.Status // queued, running
	}
	desc := fmt.Sprintf("BUILD_ID %d %s", e.BuildID, what)
	if e.Reason != "" {
		// Forges show a description on one line: a multi-line reason is joined.
		desc += ": " + strings.Join(strings.Fields(e.Reason), " ")
	}
	return forge.Status{Context: Context(e.Pipeline), State: state, Description: desc}
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

var _ reconciler.Observer = (*Reporter)(nil)
