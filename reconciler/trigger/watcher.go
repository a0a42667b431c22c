package trigger

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/sources"
	"github.com/slipwayhq/slipway/store"
)

// Git is what a watcher reads of a repository.
type Git interface {
	Sync(ctx context.Context, repo sources.Repo, branch string) (sources.SyncResult, error)
	Commit(ctx context.Context, repo sources.Repo, sha string) (sources.Commit, error)
	// ChangedPaths tells which files differ between two commits.
	ChangedPaths(ctx context.Context, repo sources.Repo, from, to string) ([]string, error)
}

// PipelineReader reads and validates the pipeline file at a commit.
type PipelineReader interface {
	Prepare(ctx context.Context, req reconciler.Request) (*reconciler.Checkout, error)
}

// Runs starts runs, and records those a newer push overtook before they could start.
type Runs interface {
	Submit(ctx context.Context, job reconciler.Job) (store.Run, error)
	RecordSuperseded(ctx context.Context, job reconciler.Job, reason string) (store.Run, error)
}

// Records is what a watcher reads and writes in the store.
type Records interface {
	HandledHead(ctx context.Context, repository, branch string) (string, error)
	SetHandledHead(ctx context.Context, repository, branch, head string) error
	ListRuns(ctx context.Context, ref store.PipelineRef, limit int) ([]store.Run, error)
	ListPipelines(ctx context.Context) ([]store.Pipeline, error)
}

// ScheduleSetter hears the tracked branch's pipelines whenever its head is read, so cron
// triggers follow the file.
type ScheduleSetter interface {
	SetSchedules(ctx context.Context, repository string, pipelines []*pipeline.Pipeline) error
}

// Hint says a branch may have moved: a webhook's push. It is only a hint: the watcher
// fetches and reads the commit itself.
type Hint struct {
	DeliveryID string
	Branch     string
	Commit     string // the pushed head, or "" when the forge did not say
}

// BranchWatcherOptions are a BranchWatcher's collaborators and settings.
type BranchWatcherOptions struct {
	Git       Git
	Pipelines PipelineReader
	Runs      Runs
	Records   Records
	Repo      sources.Repo
	Branch    string
	Interval  time.Duration // 0: no polling, webhooks (and one look at start) only
	Limiter   *HostLimiter
	Schedules ScheduleSetter // optional
	Metrics   *Metrics
	Log       *logrus.Entry
}

// BranchWatcher follows one repository's tracked branch. Hints and poll ticks coalesce:
// while a fetch runs, further hints wait and are answered together by the next one.
type BranchWatcher struct {
	git       Git
	pipelines PipelineReader
	runs      Runs
	records   Records
	repo      sources.Repo
	branch    string
	interval  time.Duration
	limiter   *HostLimiter
	schedules ScheduleSetter
	metrics   *Metrics
	log       *logrus.Entry

	mu      sync.Mutex
	pending []Hint
	wake    chan struct{}
	// handled are pushed commits already run or recorded, so a late hint is not recorded
	// twice.
	handled *recentSet
	// cached is the head's checkout, so a look at an unchanged branch reads nothing again.
	cached *reconciler.Checkout
	// invalid is a head whose pipeline file was found invalid and reported, so a look at
	// the unchanged branch does not read and report it again.
	invalid string
}

// NewBranchWatcher makes a watcher; Run starts it.
func NewBranchWatcher(o BranchWatcherOptions) *BranchWatcher {
	if o.Limiter == nil {
		o.Limiter = &HostLimiter{}
	}
	if o.Log == nil {
		o.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	return &BranchWatcher{git: o.Git, pipelines: o.Pipelines, runs: o.Runs, records: o.Records, repo: o.Repo,
		branch: o.Branch, interval: o.Interval, limiter: o.Limiter, schedules: o.Schedules, metrics: o.Metrics,
		log: o.Log, wake: make(chan struct{}, 1), handled: newRecentSet(512)}
}

// Repo is the repository watched.
func (w *BranchWatcher) Repo() sources.Repo { return w.repo }

// Branch is the tracked branch.
func (w *BranchWatcher) Branch() string { return w.branch }

// Hint queues a push hint and wakes the watcher. It never blocks.
func (w *BranchWatcher) Hint(h Hint) {
	w.mu.Lock()
	w.pending = append(w.pending, h)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *BranchWatcher) takeHints() []Hint {
	w.mu.Lock()
	defer w.mu.Unlock()
	hs := w.pending
	w.pending = nil
	return hs
}

// putBack returns hints whose look failed, to be answered by the next one.
func (w *BranchWatcher) putBack(hs []Hint) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = append(hs, w.pending...)
}

// Run looks at the branch at start, then on every hint and every interval (with jitter,
// so many repositories' polls spread out), until ctx ends. Errors back off exponentially
// up to ten intervals (maxBackoff); a hint still gets an immediate look.
func (w *BranchWatcher) Run(ctx context.Context) {
	last, err := w.handledHead(ctx)
	if err != nil {
		w.log.WithError(err).Warn("read the head handled last; the branch head will run")
	}
	backoff := w.interval
	for {
		hints := w.takeHints()
		next, err := w.look(ctx, last, hints)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			w.log.WithError(err).Warn("look at the branch")
			w.metrics.poll(w.repo.Name, "error")
			w.putBack(hints)
			backoff = nextBackoff(backoff, w.interval)
		default:
			last, backoff = next, w.interval
		}
		if !w.wait(ctx, backoff) {
			return
		}
	}
}

// maxBackoff caps the wait after errors at ten poll intervals; a webhook-only repository
// (interval 0) retries at most every ten minutes, and any webhook wakes it sooner.
func maxBackoff(interval time.Duration) time.Duration {
	if interval <= 0 {
		return 10 * time.Minute
	}
	return 10 * interval
}

// nextBackoff is the wait after a failed look that followed a wait of cur: twice as long,
// at least a second, at most maxBackoff.
func nextBackoff(cur, interval time.Duration) time.Duration {
	return min(max(cur*2, time.Second), maxBackoff(interval))
}

// jittered is d plus up to a tenth of it at random.
func jittered(d time.Duration) time.Duration {
	return d + time.Duration(rand.Int64N(int64(d)/10+1))
}

// wait sleeps for d plus jitter (forever when d is 0) or until a hint arrives; false
// means ctx ended.
func (w *BranchWatcher) wait(ctx context.Context, d time.Duration) bool {
	var tick <-chan time.Time
	if d > 0 {
		timer := time.NewTimer(jittered(d))
		defer timer.Stop()
		tick = timer.C
	}
	select {
	case <-ctx.Done():
		return false
	case <-tick:
	case <-w.wake:
	}
	return true
}

// look fetches the branch if it moved, records overtaken pushes, and submits the runs the
// head triggers. It returns the head now handled. An unchanged branch costs one ref listing
// and nothing else: its checkout and pipeline file are kept from the last look.
func (w *BranchWatcher) look(ctx context.Context, last string, hints []Hint) (string, error) {
	release, err := w.limiter.Acquire(ctx, w.repo.URL)
	if err != nil {
		return last, err
	}
	res, err := w.git.Sync(ctx, w.repo, w.branch)
	release()
	if err != nil {
		return last, err
	}
	head := res.Commit
	if head == last && head == w.invalid {
		w.metrics.poll(w.repo.Name, "unchanged")
		return last, nil
	}
	co := w.cached
	if co == nil || co.Commit.Hash != head {
		if co, err = w.pipelines.Prepare(ctx, reconciler.Request{Repo: w.repo, Commit: head}); err != nil {
			if ctx.Err() != nil {
				return last, err
			}
			// A broken pipeline file at a new commit is recorded once, not retried forever.
			var notPrepared *reconciler.PrepareError
			if errors.As(err, &notPrepared) {
				w.log.WithError(err).WithField("commit", notPrepared.Commit).Error("the new commit's pipeline file is invalid; nothing runs for it")
				w.setHandled(ctx, notPrepared.Commit)
				w.invalid = notPrepared.Commit
				return notPrepared.Commit, nil
			}
			return last, err
		}
		co.Branch = w.branch
		w.cached = co
		if w.schedules != nil {
			if err := w.schedules.SetSchedules(ctx, w.repo.Name, co.Pipelines); err != nil {
				w.log.WithError(err).Error("schedules of the tracked branch")
			}
		}
	}
	marker, skip := pipeline.SkipRequested(co.Commit.Message)
	for _, h := range hints {
		w.overtaken(ctx, co, h, last, skip)
	}
	if head == last {
		w.metrics.poll(w.repo.Name, "unchanged")
		return last, nil
	}
	w.metrics.poll(w.repo.Name, "changed")
	if len(hints) == 0 {
		w.metrics.Received(w.repo.Name, "poll")
	}
	w.markHandled(head)
	log := w.log.WithField("commit", co.Commit.ShortHash)
	if skip {
		log.WithField("marker", marker).Info("the head commit asks to skip push triggers; nothing runs")
		w.metrics.skip(w.repo.Name, "skip_ci")
		w.setHandled(ctx, head)
		return head, nil
	}
	submitted := 0
	for _, pl := range co.Pipelines {
		ev := pipeline.Event{Kind: pipeline.EventPush, Branch: w.branch, TrackedBranch: w.branch,
			ChangedPaths: w.changedSince(ctx, pl, last, head)}
		ok, why := pipeline.Match(pl, ev)
		plog := log.WithFields(logrus.Fields{"pipeline": pl.Name, "reason": why})
		if !ok {
			plog.Info("not triggered")
			continue
		}
		run, err := w.runs.Submit(ctx, reconciler.RunJob(co, pl, store.TriggerPush, 0))
		if err != nil {
			// The head still counts as handled: looking again would start the pipelines
			// that did get their run a second time.
			plog.WithError(err).Error("could not start the run")
			continue
		}
		submitted++
		plog.WithField("build_id", run.BuildID).Info("triggered")
	}
	if submitted == 0 {
		w.metrics.skip(w.repo.Name, "no_match")
	}
	w.setHandled(ctx, head)
	return head, nil
}

// setHandled records the head dealt with, so a restart does not deal with it again.
func (w *BranchWatcher) setHandled(ctx context.Context, head string) {
	if err := w.records.SetHandledHead(ctx, w.repo.Name, w.branch, head); err != nil {
		w.log.WithError(err).Warn("record the head handled; a restart may run it again")
	}
}

// handledHead is the head the last watcher of this branch dealt with; for a store written
// before that was recorded, the newest commit a pipeline of the repository ran.
func (w *BranchWatcher) handledHead(ctx context.Context) (string, error) {
	head, err := w.records.HandledHead(ctx, w.repo.Name, w.branch)
	if err != nil || head != "" {
		return head, err
	}
	return w.lastRunCommit(ctx)
}

// overtaken records a hinted push the head has already replaced, as a superseded run of
// every pipeline the push would have started, so no pushed commit vanishes unrecorded. A
// commit some run already has (it ran, or a restart's late hint) is left alone.
func (w *BranchWatcher) overtaken(ctx context.Context, head *reconciler.Checkout, h Hint, last string, headSkipped bool) {
	if h.Commit == "" || h.Commit == head.Commit.Hash || h.Commit == last || (h.Branch != "" && h.Branch != w.branch) {
		return
	}
	if w.seen(h.Commit) {
		return
	}
	log := w.log.WithFields(logrus.Fields{"commit": h.Commit, "delivery": h.DeliveryID})
	info, err := w.git.Commit(ctx, w.repo, h.Commit)
	if err != nil {
		if errors.Is(err, sources.ErrCommitNotFound) {
			log.WithError(err).Warn("a webhook named a commit the branch does not have; ignored")
			w.metrics.Rejected(w.repo.Name, "unknown_commit")
			w.markHandled(h.Commit)
		} else {
			log.WithError(err).Warn("read the overtaken commit; it is not recorded")
		}
		return
	}
	w.markHandled(h.Commit)
	if _, skip := pipeline.SkipRequested(info.Message); skip {
		return
	}
	co := &reconciler.Checkout{Repo: head.Repo, Branch: head.Branch, Commit: info}
	reason := "superseded by commit " + head.Commit.ShortHash + ", pushed before this one could start"
	if headSkipped {
		reason = "superseded by commit " + head.Commit.ShortHash + ", pushed before this one could start; that commit asked to skip CI, so neither ran"
	}
	for _, pl := range head.Pipelines {
		ref := store.PipelineRef{Repository: w.repo.Name, Name: pl.Name}
		if w.hasRunAt(ctx, ref, info.Hash) {
			continue
		}
		ev := pipeline.Event{Kind: pipeline.EventPush, Branch: w.branch, TrackedBranch: w.branch,
			ChangedPaths: w.changedSince(ctx, pl, last, info.Hash)}
		if ok, _ := pipeline.Match(pl, ev); !ok {
			continue
		}
		run, err := w.runs.RecordSuperseded(ctx, reconciler.RunJob(co, pl, store.TriggerPush, 0), reason)
		if err != nil {
			log.WithError(err).WithField("pipeline", pl.Name).Error("record the overtaken push")
			continue
		}
		log.WithFields(logrus.Fields{"pipeline": pl.Name, "build_id": run.BuildID}).Info("recorded superseded")
	}
}

// hasRunAt reports whether one of the pipeline's recent runs is at commit.
func (w *BranchWatcher) hasRunAt(ctx context.Context, ref store.PipelineRef, commit string) bool {
	runs, err := w.records.ListRuns(ctx, ref, 100)
	if err != nil {
		return false
	}
	for _, r := range runs {
		if r.Commit == commit {
			return true
		}
	}
	return false
}

func (w *BranchWatcher) seen(commit string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.handled.has(commit)
}

func (w *BranchWatcher) markHandled(commit string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.handled.add(commit)
}

// changedSince lists the files changed since the pipeline last deployed successfully (or,
// for a pipeline that never did, since the last commit handled). nil means unknown, which
// path filters let through.
func (w *BranchWatcher) changedSince(ctx context.Context, pl *pipeline.Pipeline, last, to string) []string {
	base := last
	runs, err := w.records.ListRuns(ctx, store.PipelineRef{Repository: w.repo.Name, Name: pl.Name}, 50)
	if err == nil {
		for _, r := range runs {
			if r.Status == store.RunSucceeded && r.Trigger != store.TriggerRollback {
				base = r.Commit
				break
			}
		}
	}
	if base == "" || base == to {
		return nil
	}
	paths, err := w.git.ChangedPaths(ctx, w.repo, base, to)
	if err != nil {
		w.log.WithError(err).Warn("changed paths unknown; path filters let the commit through")
		return nil
	}
	return paths
}

// lastRunCommit is the newest commit any pipeline of the repository ran for a push or by
// hand, so a restarted daemon does not run the same head again.
func (w *BranchWatcher) lastRunCommit(ctx context.Context) (string, error) {
	st := w.records
	all, err := st.ListPipelines(ctx)
	if err != nil {
		return "", err
	}
	var newest store.Run
	for _, pl := range all {
		if pl.Ref.Repository != w.repo.Name {
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

// recentSet remembers the last n strings added.
type recentSet struct {
	n     int
	order []string
	seen  map[string]bool
}

func newRecentSet(n int) *recentSet { return &recentSet{n: n, seen: map[string]bool{}} }

func (r *recentSet) has(s string) bool { return r.seen[s] }

// add reports whether s is new, remembering it.
func (r *recentSet) add(s string) bool {
	if r.seen[s] {
		return false
	}
	r.seen[s] = true
	r.order = append(r.order, s)
	if len(r.order) > r.n {
		delete(r.seen, r.order[0])
		r.order = r.order[1:]
	}
	return true
}
