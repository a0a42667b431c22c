// Package preview answers pull requests: for each opened, reopened or updated one it has
// the run engine render, policy-check and dry-run the head (reconciler.Runner.Preview),
// posts the result as one comment that later pushes edit in place, and sets the commit
// status slipway/preview on the head. A preview never applies and never pushes. Previews
// of one pull request are coalesced: a newer head cancels the one being rendered.
package preview

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/sources"
	"github.com/slipwayhq/slipway/sources/forge"
)

// StatusContext is the commit status every preview sets on the head it previewed.
const StatusContext = "slipway/preview"

// commentKey marks the preview's comment (its first part; later parts add -2, -3, ...).
const commentKey = "preview"

// Renderer previews a pull request's head: reconciler.Runner.
type Renderer interface {
	Preview(ctx context.Context, req reconciler.PreviewRequest) (*reconciler.Preview, error)
}

// Forge is what a preview needs of a repository's forge.
type Forge interface {
	UpsertComment(ctx context.Context, number int64, key, body string) (int64, error)
	SetStatus(ctx context.Context, sha string, s forge.Status) error
}

// Repository is a repository whose pull requests are previewed.
type Repository struct {
	Repo          sources.Repo
	TrackedBranch string
	Forge         Forge
	// CommentLimit is the forge's comment size limit in bytes (forge.CommentLimit).
	CommentLimit int
}

// Request is one pull request event that asks for a preview.
type Request struct {
	Repository   string
	Number       int64
	SourceBranch string
	TargetBranch string
	Head         string
	FromFork     bool
}

// Options are a Previewer's collaborators.
type Options struct {
	Renderer     Renderer
	Repositories map[string]Repository // by name
	// Timeout bounds one preview (default 5 minutes).
	Timeout time.Duration
	// Done, if set, hears every preview that finished (posted or failed): tests and the
	// benchmark wait on it.
	Done func(Result)
	Log  *logrus.Entry
}

// Result is how one preview ended.
type Result struct {
	Repository string
	Number     int64
	Head       string // the head previewed ("" when it never got that far)
	State      forge.StatusState
	Parts      int // comment parts posted
	Err        error
}

// Previewer runs previews, one at a time per pull request, the newest head winning.
type Previewer struct {
	o        Options
	requests chan Request
	mu       sync.Mutex
	// prs holds, per pull request, the preview in progress and the request that came in
	// while it ran (only the newest is kept).
	prs map[prKey]*prState
	wg  sync.WaitGroup
}

type prKey struct {
	repo   string
	number int64
}

type prState struct {
	cancel  context.CancelFunc
	next    *Request
	parts   int // comment parts posted last time, so fewer parts blank the rest
	running bool
}

// queueSize bounds the requests not yet taken up by Run; beyond it Request refuses (a
// webhook then answers 503 and the forge redelivers).
const queueSize = 256

// New makes a Previewer; Run it.
func New(o Options) *Previewer {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.Log == nil {
		o.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	return &Previewer{o: o, requests: make(chan Request, queueSize), prs: map[prKey]*prState{}}
}

// Errors of Request.
var (
	// ErrUnknownRepository: the repository has no forge to post previews to.
	ErrUnknownRepository = errors.New("repository has no forge to post previews to")
	// ErrBusy: too many requests are waiting; retry later.
	ErrBusy = errors.New("too many previews waiting")
)

// Request asks for a preview of a pull request's head and returns at once. A request for
// a pull request whose preview is running cancels that one; the newest request runs when
// it has ended.
func (p *Previewer) Request(req Request) error {
	if _, ok := p.o.Repositories[req.Repository]; !ok {
		return fmt.Errorf("%s: %w", req.Repository, ErrUnknownRepository)
	}
	select {
	case p.requests <- req:
		return nil
	default:
		return ErrBusy
	}
}

// Run takes up requests until ctx ends, then waits for the previews it started.
func (p *Previewer) Run(ctx context.Context) {
	defer p.wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case req := <-p.requests:
			p.take(ctx, req)
		}
	}
}

// take starts req, or queues it behind (and cancels) the running preview of its PR.
func (p *Previewer) take(ctx context.Context, req Request) {
	k := prKey{req.Repository, req.Number}
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.prs[k]
	if st == nil {
		st = &prState{}
		p.prs[k] = st
	}
	if st.running {
		st.next = &req
		st.cancel()
		return
	}
	p.start(ctx, k, st, req)
}

// start runs req; p.mu is held.
func (p *Previewer) start(ctx context.Context, k prKey, st *prState, req Request) {
	rctx, cancel := context.WithTimeout(ctx, p.o.Timeout)
	st.running, st.cancel = true, cancel
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		res := p.run(rctx, req, st)
		cancel()
		p.mu.Lock()
		st.running = false
		if next := st.next; next != nil && ctx.Err() == nil {
			st.next = nil
			p.start(ctx, k, st, *next)
		}
		p.mu.Unlock()
		if p.o.Done != nil {
			p.o.Done(res)
		}
	}()
}

// run previews one head and reports it; a preview superseded by a newer head reports
// nothing (the newer one will).
func (p *Previewer) run(ctx context.Context, req Request, st *prState) Result {
	start := time.Now()
	repo := p.o.Repositories[req.Repository]
	res := Result{Repository: req.Repository, Number: req.Number, Head: req.Head}
	log := p.o.Log.WithFields(logrus.Fields{"repository": req.Repository, "pull_request": req.Number, "head": short(req.Head)})
	// Reports outlive a cancelled preview's context only for the pending status below.
	report := context.WithoutCancel(ctx)
	if req.FromFork {
		res.State = forge.StatusFailure
		res.Err = errors.New("previews of pull requests from forks are not supported yet")
		p.setStatus(report, repo, req.Head, res.State, res.Err.Error(), log)
		return res
	}
	p.setStatus(report, repo, req.Head, forge.StatusPending, "rendering and dry-running this head", log)
	pv, err := p.o.Renderer.Preview(ctx, reconciler.PreviewRequest{Repo: repo.Repo, SourceBranch: req.SourceBranch,
		Head: req.Head, TargetBranch: req.TargetBranch, TrackedBranch: repo.TrackedBranch})
	switch {
	case errors.Is(err, reconciler.ErrNotPreviewed):
		// No pipeline asks for previews: say so on the head, since a required status would
		// otherwise stay pending for ever.
		res.State = forge.StatusSuccess
		p.setStatus(report, repo, req.Head, res.State, "no pipeline previews this pull request (triggers.pullRequest)", log)
		return res
	case ctx.Err() != nil:
		res.Err = ctx.Err()
		log.Info("preview superseded or stopped")
		return res
	case err != nil:
		res.State, res.Err = forge.StatusError, err
		log.WithError(err).Error("preview")
		p.setStatus(report, repo, req.Head, res.State, "preview failed: "+firstLine(err.Error()), log)
		return res
	}
	res.Head = pv.Commit.Hash
	res.State = forge.StatusSuccess
	if pv.Failed() {
		res.State = forge.StatusFailure
	}
	body := Format(pv)
	parts := Split(body, repo.CommentLimit)
	p.mu.Lock()
	previous := st.parts
	p.mu.Unlock()
	for i := range max(len(parts), previous) {
		text := "_(this part of an earlier, longer preview is no longer used)_"
		if i < len(parts) {
			text = parts[i]
		}
		if _, err := repo.Forge.UpsertComment(report, req.Number, partKey(i), text); err != nil {
			res.Err = fmt.Errorf("post preview comment: %w", err)
			log.WithError(err).Error("post preview comment")
			break
		}
	}
	res.Parts = len(parts)
	p.mu.Lock()
	st.parts = len(parts)
	p.mu.Unlock()
	p.setStatus(report, repo, pv.Commit.Hash, res.State, Summary(pv), log)
	log.WithFields(logrus.Fields{"state": res.State, "parts": len(parts), "head": pv.Commit.ShortHash,
		"duration": time.Since(start).Round(time.Millisecond).String()}).Info("preview posted")
	return res
}

func partKey(i int) string {
	if i == 0 {
		return commentKey
	}
	return fmt.Sprintf("%s-%d", commentKey, i+1)
}

// setStatus sets slipway/preview; a forge that cannot be reached is logged, never fatal.
func (p *Previewer) setStatus(ctx context.Context, repo Repository, sha string, state forge.StatusState, desc string, log *logrus.Entry) {
	if sha == "" {
		return
	}
	if err := repo.Forge.SetStatus(ctx, sha, forge.Status{Context: StatusContext, State: state, Description: desc}); err != nil {
		log.WithError(err).Error("set commit status " + StatusContext)
	}
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}
