package trigger

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
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
	// SyncListed fetches branch if it moved from listed, a Refs listing (an empty one: it
	// lists the refs itself).
	SyncListed(ctx context.Context, repo sources.Repo, branch string, listed sources.Refs) (sources.SyncResult, error)
	Commit(ctx context.Context, repo sources.Repo, sha string) (sources.Commit, error)
	// ChangedPaths tells which files differ between two commits.
	ChangedPaths(ctx context.Context, repo sources.Repo, from, to string) ([]string, error)
	// Refs lists the repository's branches and tags (one ls-remote, nothing fetched).
	Refs(ctx context.Context, repo sources.Repo) (sources.Refs, error)
	// FetchTag brings a tag into the mirror and returns the commit it points at.
	FetchTag(ctx context.Context, repo sources.Repo, tag string) (string, error)
	// Prefetch brings a pushed commit into the mirror without moving a ref (one pack
	// request, no listing), so it can overlap the look's ref listing.
	Prefetch(ctx context.Context, repo sources.Repo, commit string) (bool, error)
	// InHistory reports whether commit is head or an ancestor of it in the mirror.
	InHistory(ctx context.Context, repo sources.Repo, head, commit string) (bool, error)
}

// PipelineReader reads and validates the pipeline file at a commit.
type PipelineReader interface {
	Prepare(ctx context.Context, req reconciler.Request) (*reconciler.Checkout, error)
}

// Runs starts runs, and records those a newer push overtook before they could start.
type Runs interface {
	Submit(ctx context.Context, job reconciler.Job) (store.Run, error)
	// SubmitAll records the jobs' runs and h (the head or tag they are for) in one store
	// transaction, then starts them (reconciler.Dispatcher.SubmitAll).
	SubmitAll(ctx context.Context, jobs []reconciler.Job, h store.Handled) ([]reconciler.Queued, error)
	RecordSuperseded(ctx context.Context, job reconciler.Job, reason string) (store.Run, error)
}

// Records is what a watcher reads and writes in the store.
type Records interface {
	HandledHead(ctx context.Context, repository, branch string) (string, error)
	SetHandledHead(ctx context.Context, repository, branch, head string) error
	ListRuns(ctx context.Context, ref store.PipelineRef, limit int) ([]store.Run, error)
	ListPipelines(ctx context.Context) ([]store.Pipeline, error)
	TagsScanned(ctx context.Context, repository string) (bool, error)
	RecordTagBaseline(ctx context.Context, repository string, tags map[string]string) error
	ListTagRefs(ctx context.Context, repository string) (map[string]store.TagRef, error)
	SetTagRef(ctx context.Context, t store.TagRef) error
	RunsOfTag(ctx context.Context, repository, tag string) ([]store.Run, error)
}

// ScheduleSetter hears the default branch's pipelines whenever its head is read, so cron
// triggers follow the file.
type ScheduleSetter interface {
	SetSchedules(ctx context.Context, repository string, pipelines []*pipeline.Pipeline) error
}

// Hint says a branch or a tag may have moved: a webhook's push. It is only a hint: the
// watcher lists the refs, fetches and reads the commit itself. The commit a branch's hint
// names is fetched while the refs are listed, but a run starts only at the head the
// listing shows.
type Hint struct {
	DeliveryID string
	Branch     string
	Commit     string // the pushed head, or "" when the forge did not say
	Tag        string // a tag push: the tag (Branch is then "")
	// Resumed names a pipeline just resumed: the watcher runs it at Branch's head if it
	// should have run there and no run of it has (pushes were refused while suspended).
	Resumed string
	// Received is when the hint arrived (set by Hint when zero): the log line of the run it
	// starts says how long each step after it took.
	Received time.Time
}

// BranchWatcherOptions are a BranchWatcher's collaborators and settings.
type BranchWatcherOptions struct {
	Git       Git
	Pipelines PipelineReader
	Runs      Runs
	Records   Records
	Repo      sources.Repo
	Branch    string         // the default branch: its file holds the schedules
	Branches  []string       // the tracked branches as globs; empty: Branch only
	Interval  time.Duration  // 0: no polling, webhooks (and one look at start) only
	Schedules ScheduleSetter // optional
	Metrics   *Metrics
	Log       *logrus.Entry
	// Audit records tags moved or deleted after their runs.
	Audit AuditLog
	// Looks, shared by all watchers, bounds the looks in flight per Git host; nil starts
	// each look at once.
	Looks *LookQueue
}

// BranchWatcher follows one repository: its tracked branches and its tags. Each look lists
// the repository's refs once; only a branch that moved (or a webhook named) is fetched, and
// only a new tag. Hints and poll ticks coalesce: while a look runs, further hints wait and
// are answered together by the next one.
type BranchWatcher struct {
	git       Git
	pipelines PipelineReader
	runs      Runs
	records   Records
	repo      sources.Repo
	branch    string   // the default branch
	branches  []string // tracked branch globs
	interval  time.Duration
	schedules ScheduleSetter
	metrics   *Metrics
	log       *logrus.Entry
	audit     AuditLog
	looks     *LookQueue

	mu      sync.Mutex
	pending []Hint
	// following is the current Start's state; nil while the watcher is stopped, when
	// hints only queue.
	following *following
	// handled are pushed commits already run or recorded, so a late hint is not recorded
	// twice.
	handled *recentSet
	// states are the tracked branches seen, by name; only the look in flight uses them
	// (one at a time: the next starts under mu after the last ended).
	states map[string]*branchState
}

// branchState is what the watcher keeps of one tracked branch between looks.
type branchState struct {
	loaded bool   // last was read from the store
	last   string // the head handled
	// stored is the handled head the store holds ("" for none), the base of the next
	// compare-and-set (store.HeadClaim); last may differ when it came from the runs.
	stored string
	// prepared is the head whose pipeline file was read (and, on the default branch, its
	// schedules set), so a look at an unchanged branch reads nothing again. Only the hash
	// is kept: a thousand repositories' parsed files kept between looks were 3–4 MB of
	// the heap at rest, and the runs of a head read its file again only when nothing
	// holds it still.
	prepared string
	// invalid is a head whose pipeline file was found invalid and reported, so a look at
	// the unchanged branch does not read and report it again.
	invalid string
}

// NewBranchWatcher makes a watcher; Run starts it.
func NewBranchWatcher(o BranchWatcherOptions) *BranchWatcher {
	if o.Log == nil {
		o.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	if len(o.Branches) == 0 {
		o.Branches = []string{o.Branch}
	}
	return &BranchWatcher{git: o.Git, pipelines: o.Pipelines, runs: o.Runs, records: o.Records, repo: o.Repo,
		branch: o.Branch, branches: o.Branches, interval: o.Interval, schedules: o.Schedules,
		metrics: o.Metrics, log: o.Log, audit: o.Audit, looks: o.Looks, handled: newRecentSet(512),
		states: map[string]*branchState{}}
}

// Repo is the repository watched.
func (w *BranchWatcher) Repo() sources.Repo { return w.repo }

// Branch is the default branch: schedules and manual runs without a branch use it.
func (w *BranchWatcher) Branch() string { return w.branch }

// Tracks reports whether pushes to branch concern the repository's pipelines.
func (w *BranchWatcher) Tracks(branch string) bool { return pipeline.MatchesAny(w.branches, branch) }

// Hint queues a push hint and wakes the watcher. It never blocks.
func (w *BranchWatcher) Hint(h Hint) {
	if h.Received.IsZero() {
		h.Received = time.Now()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = append(w.pending, h)
	if w.following != nil {
		w.following.wakeLocked()
	}
}

func (w *BranchWatcher) takeHintsLocked() []Hint {
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

// Start follows the repository until ctx ends: a look at start, then on every hint and
// every interval (with jitter, so many repositories' polls spread out). Errors back off
// exponentially up to ten intervals (maxBackoff); a hint still gets an immediate look.
// firstLook (when not nil) is called once the first look ended, with its error: a
// replica taking a repository over reports when the new owner first looked. The channel
// returned is closed once ctx ended and no look is in flight (a look still waiting its
// turn in the look queue is withdrawn).
//
// No goroutine waits between looks: a timer or a hint starts the next one, so a
// thousand repositories at rest hold a thousand timers, not a thousand stacks.
//
// Start may be called again after the watcher stopped (a replica owning the repository
// again): it then starts afresh from what the store records, since another replica may
// have handled pushes meanwhile. Calling it while the watcher still follows is a bug of
// the caller's (two schedules would share the branch states): it panics.
func (w *BranchWatcher) Start(ctx context.Context, firstLook func(error)) <-chan struct{} {
	f := &following{w: w, backoff: w.interval, firstLook: firstLook, stopped: make(chan struct{})}
	// The one place a context outlives the call that got it: a hint or the timer, which
	// have none, start the looks, and each look must end with this Start's ctx.
	f.look = func() { f.loop(ctx) }
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.following != nil {
		panic("trigger: BranchWatcher.Start while the watcher still follows " + w.repo.Name)
	}
	w.states = map[string]*branchState{}
	w.following = f
	f.wakeLocked()
	context.AfterFunc(ctx, f.end)
	return f.stopped
}

// following is one Start's schedule of looks. Its fields are guarded by the watcher's mu,
// except backoff and firstLook, which only the look in flight uses.
type following struct {
	w *BranchWatcher
	// look is one look (loop); it closes over Start's ctx.
	look    func()
	looking bool // a look is in flight or waiting its turn; a wake then asks for another
	// withdraw takes the look out of the look queue if it has not started yet.
	withdraw  func() bool
	again     bool
	ended     bool // ctx ended: no new look starts
	timer     *time.Timer
	timerGen  int // which timer may wake the watcher: a stopped timer's late firing is ignored
	backoff   time.Duration
	firstLook func(error)
	stopped   chan struct{}
}

// wakeLocked starts a look now (once the look queue gives the host a turn), or asks the
// look in flight for another once it ends.
func (f *following) wakeLocked() {
	switch {
	case f.ended:
	case f.looking:
		f.again = true
	default:
		f.looking = true
		f.timerGen++
		if f.timer != nil {
			f.timer.Stop()
			f.timer = nil
		}
		f.withdraw = f.w.looks.Go(f.w.repo, f.look)
	}
}

// loop makes one look, then queues the next if a wake asked for one meanwhile, or sets
// the timer of the next poll.
func (f *following) loop(ctx context.Context) {
	w := f.w
	// A look that started past ctx's end (it raced end's withdrawal) does nothing: its
	// hints stay queued for the next Start.
	err := ctx.Err()
	if err == nil {
		err = w.lookAll(ctx, f.takeHints())
	}
	if f.firstLook != nil && ctx.Err() == nil {
		f.firstLook(err)
		f.firstLook = nil
	}
	switch {
	case err != nil && ctx.Err() != nil:
	case err != nil:
		w.log.WithError(err).Warn("look at the repository")
		w.metrics.poll(w.repo.Name, "error")
		f.backoff = nextBackoff(f.backoff, w.interval)
	default:
		f.backoff = w.interval
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if f.again && !f.ended {
		// The look asked for meanwhile waits its turn behind other repositories': a
		// repository pushed to during each of its looks must not keep its host's turn.
		f.again = false
		f.withdraw = w.looks.Go(w.repo, f.look)
		return
	}
	f.looking, f.again, f.withdraw = false, false, nil
	if f.ended {
		f.stopLocked()
	} else if f.backoff > 0 {
		gen := f.timerGen
		f.timer = time.AfterFunc(jittered(f.backoff), func() { f.tick(gen) })
	}
}

// takeHints takes the hints for the look starting now, which answers every wake so far:
// one that came while the look waited its turn asks for no other.
func (f *following) takeHints() []Hint {
	f.w.mu.Lock()
	defer f.w.mu.Unlock()
	f.again = false
	return f.w.takeHintsLocked()
}

// tick is the poll timer's firing: a look unless a wake started one since it was set.
func (f *following) tick(gen int) {
	f.w.mu.Lock()
	defer f.w.mu.Unlock()
	if gen == f.timerGen {
		f.wakeLocked()
	}
}

// end is ctx's end: no new look starts, a look still waiting its turn is withdrawn, and
// the watcher stops once none is in flight. A replica giving a repository up waits for
// that, holding its Leases' work: it must not wait for other repositories' looks.
func (f *following) end() {
	f.w.mu.Lock()
	defer f.w.mu.Unlock()
	f.ended = true
	if f.timer != nil {
		f.timer.Stop()
		f.timer = nil
	}
	if f.looking && f.withdraw != nil && f.withdraw() {
		f.looking, f.again, f.withdraw = false, false, nil
	}
	if !f.looking {
		f.stopLocked()
	}
}

func (f *following) stopLocked() {
	if f.w.following == f {
		f.w.following = nil
	}
	close(f.stopped)
}

// lookAll lists the repository's refs once, looks at each tracked branch that moved or a
// hint named, then at the tags. Hints of a branch whose look failed are put back for the
// next look; the first error is returned after every branch had its turn.
func (w *BranchWatcher) lookAll(ctx context.Context, hints []Hint) error {
	trace := newLookTrace(hints)
	prefetching := w.prefetch(ctx, hints)
	refs, err := w.git.Refs(ctx, w.repo)
	trace.mark("refs")
	prefetched := prefetching()
	if err != nil {
		w.putBack(hints)
		return err
	}
	trace.mark("prefetch")
	byBranch := map[string][]Hint{}
	for _, h := range hints {
		if h.Branch != "" {
			byBranch[h.Branch] = append(byBranch[h.Branch], h)
		}
	}
	var errs []error
	if _, ok := refs.Heads[w.branch]; !ok {
		errs = append(errs, fmt.Errorf("%s: %w: %s (the default branch)", w.repo.Name, sources.ErrBranchNotFound, w.branch))
	}
	names := make([]string, 0, len(refs.Heads))
	for b := range refs.Heads {
		if w.Tracks(b) {
			names = append(names, b)
		}
	}
	sort.Strings(names)
	for _, b := range names {
		st, err := w.state(ctx, b)
		if err != nil {
			w.putBack(byBranch[b])
			errs = append(errs, err)
			continue
		}
		head, bh := refs.Heads[b], byBranch[b]
		if len(bh) == 0 && head == st.last && (st.invalid == head || st.prepared == head) {
			w.metrics.poll(w.repo.Name, "unchanged")
			continue
		}
		next, err := w.lookBranch(ctx, b, st.last, bh, refs, prefetched, trace)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			w.putBack(bh)
			errs = append(errs, fmt.Errorf("branch %s: %w", b, err))
			continue
		}
		st.last = next
	}
	if err := w.lookTags(ctx, refs.Tags); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// prefetch starts fetching the commit the newest hint of each tracked branch names, which
// the watcher has not handled yet, alongside the look's ref listing: a push then costs the
// longer of the two round trips to the Git server rather than both. It moves no ref, so a
// stale or forged payload changes nothing the look decides: the sync that follows takes
// the head the listing shows, and fetches it itself unless it is the commit prefetched.
// The returned func waits for the prefetch to end and returns the commits it brought into
// the mirror. Its failures only cost that fetch.
func (w *BranchWatcher) prefetch(ctx context.Context, hints []Hint) (wait func() map[string]bool) {
	newest := map[string]string{}
	var order []string
	for _, h := range hints {
		if h.Branch == "" || h.Commit == "" || !w.Tracks(h.Branch) {
			continue
		}
		if _, ok := newest[h.Branch]; !ok {
			order = append(order, h.Branch)
		}
		newest[h.Branch] = h.Commit
	}
	var commits []string
	for _, b := range order {
		c := newest[b]
		if st := w.states[b]; (st == nil || st.last != c) && !w.seen(c) {
			commits = append(commits, c)
		}
	}
	if len(commits) == 0 {
		return func() map[string]bool { return nil }
	}
	done := make(chan struct{})
	fetched := map[string]bool{}
	go func() {
		defer close(done)
		for _, c := range commits {
			ok, err := w.git.Prefetch(ctx, w.repo, c)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				w.log.WithError(err).WithField("commit", c).Debug("prefetch of the pushed commit failed; the sync fetches it")
			}
			fetched[c] = ok
		}
	}()
	return func() map[string]bool { <-done; return fetched }
}

// state is what the watcher keeps of branch, read from the store on first use.
func (w *BranchWatcher) state(ctx context.Context, branch string) (*branchState, error) {
	st := w.states[branch]
	if st == nil {
		st = &branchState{}
		w.states[branch] = st
	}
	if !st.loaded {
		last, stored, err := w.handledHeadOf(ctx, branch)
		if err != nil {
			return nil, fmt.Errorf("read the head of %s handled last: %w", branch, err)
		}
		st.last, st.stored, st.loaded = last, stored, true
	}
	return st, nil
}

// stateOf is the kept state of branch, without reading the store.
func (w *BranchWatcher) stateOf(branch string) *branchState {
	st := w.states[branch]
	if st == nil {
		st = &branchState{}
		w.states[branch] = st
	}
	return st
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

// look is lookBranch of the default branch.
func (w *BranchWatcher) look(ctx context.Context, last string, hints []Hint) (string, error) {
	return w.lookBranch(ctx, w.branch, last, hints, sources.Refs{}, nil, newLookTrace(hints))
}

// lookBranch fetches the branch if it moved, records overtaken pushes, and submits the runs
// the head triggers. It returns the head now handled. An unchanged branch costs one ref
// listing and nothing else: the head whose file was read is remembered from the last look.
// refs is the look's listing of the repository, so the fetch does not list them again;
// prefetched are the commits the look's prefetch brought into the mirror.
func (w *BranchWatcher) lookBranch(ctx context.Context, branch, last string, hints []Hint, refs sources.Refs,
	prefetched map[string]bool, trace *lookTrace) (string, error) {
	st := w.stateOf(branch)
	log := w.log.WithField("branch", branch)
	res, err := w.git.SyncListed(ctx, w.repo, branch, refs)
	if err != nil {
		return last, err
	}
	trace.mark("sync")
	head := res.Commit
	if head == last && head == st.invalid {
		w.metrics.poll(w.repo.Name, "unchanged")
		return last, nil
	}
	if head == last && head == st.prepared && len(hints) == 0 {
		w.metrics.poll(w.repo.Name, "unchanged")
		return last, nil
	}
	co, err := w.pipelines.Prepare(ctx, reconciler.Request{Repo: w.repo, Commit: head})
	if err != nil {
		if ctx.Err() != nil {
			return last, err
		}
		// A broken or missing pipeline file at a new commit is recorded once, not retried
		// forever.
		// A head read fine before (a hint for the head handled) is not invalid: its error is
		// passing, and the look is tried again with its hints.
		var notPrepared *reconciler.PrepareError
		if errors.As(err, &notPrepared) && head != st.prepared {
			logNotPrepared(log.WithField("commit", notPrepared.Commit), err, "the new commit", "it")
			w.setHandled(ctx, branch, notPrepared.Commit)
			st.invalid = notPrepared.Commit
			return notPrepared.Commit, nil
		}
		return last, err
	}
	co.Branch = branch
	if st.prepared != head {
		st.prepared = head
		if w.schedules != nil && branch == w.branch {
			if err := w.schedules.SetSchedules(ctx, w.repo.Name, co.Pipelines); err != nil {
				log.WithError(err).Error("schedules of the default branch")
			}
		}
	}
	trace.mark("prepare")
	marker, skip := pipeline.SkipRequested(co.Commit.Message)
	for _, h := range hints {
		w.overtaken(ctx, branch, co, h, last, skip, prefetched[h.Commit])
	}
	if head == last {
		for _, h := range hints {
			if h.Resumed != "" {
				w.catchUp(ctx, co, branch, h.Resumed, log)
			}
		}
		w.metrics.poll(w.repo.Name, "unchanged")
		return last, nil
	}
	// A resumed pipeline needs no catching up: the new head's runs include it.
	w.metrics.poll(w.repo.Name, "changed")
	if len(hints) == 0 {
		w.metrics.Received(w.repo.Name, "poll")
	}
	w.markHandled(head)
	log = log.WithField("commit", co.Commit.ShortHash)
	if skip {
		log.WithField("marker", marker).Info("the head commit asks to skip push triggers; nothing runs")
		w.metrics.skip(w.repo.Name, "skip_ci")
		w.setHandled(ctx, branch, head)
		return head, nil
	}
	diffs := diffCache{}
	claim := &store.HeadClaim{Repository: w.repo.Name, Branch: branch, From: st.stored, To: head}
	err = w.submitMatching(ctx, co, log, trace, "triggered", store.Handled{Head: claim}, func(pl *pipeline.Pipeline) pipeline.Event {
		return pipeline.Event{Kind: pipeline.EventPush, Branch: branch, TrackedBranch: branch,
			ChangedPaths: w.changedSince(ctx, pl, branch, last, head, diffs)}
	})
	switch {
	case errors.Is(err, store.ErrHandledElsewhere):
		// Another process handled a head of the branch since we read it: carry on from
		// what the store says, starting nothing for this look.
		log.Info("the branch's head was handled by another process; nothing runs here")
		st.loaded = false
		return last, nil
	case err != nil:
		// Nothing was recorded, unless a commit's answer was lost: read the store again
		// before the next look, so the head runs once either way.
		st.loaded = false
		return last, err
	}
	st.stored = head
	return head, nil
}

// logNotPrepared says why nothing runs for a commit (what: "the new commit") whose pipeline
// file could not be read, for a PrepareError err. A repository without a pipeline file is a
// warning, not an error: a daemon watching many repositories, some without pipelines yet,
// would otherwise log an error for each of them at every start.
func logNotPrepared(log *logrus.Entry, err error, what, forWhat string) {
	if errors.Is(err, pipeline.ErrNoFile) {
		log.WithField("file", pipeline.DefaultFile).Warnf("the repository has no pipeline file at %s; nothing runs for %s", what, forWhat)
		return
	}
	log.WithError(err).Errorf("%s's pipeline file is invalid; nothing runs for %s", what, forWhat)
}

// submitMatching starts a push run of each pipeline of the checkout that the event
// eventOf gives it matches, recording the runs and h (the head or tag they are for) in one
// store transaction: a crash leaves both on record or neither, so the next look (here, on
// a restart, or on the replica that takes the repository over) starts them exactly once.
// h is recorded even when nothing matched or a run was refused (a suspended pipeline): the
// commit is handled then too. An error means nothing was recorded.
func (w *BranchWatcher) submitMatching(ctx context.Context, co *reconciler.Checkout, log *logrus.Entry, trace *lookTrace, triggered string, h store.Handled, eventOf func(*pipeline.Pipeline) pipeline.Event) error {
	var jobs []reconciler.Job
	var logs []*logrus.Entry
	var traces []*lookTrace
	for _, pl := range co.Pipelines {
		start := time.Now()
		ok, why := pipeline.Match(pl, eventOf(pl))
		plog := log.WithFields(logrus.Fields{"pipeline": pl.Name, "reason": why})
		if !ok {
			plog.Info("not triggered")
			continue
		}
		jobs = append(jobs, reconciler.RunJob(co, pl, store.TriggerPush, 0))
		logs, traces = append(logs, plog), append(traces, trace.with("match", start))
	}
	submitStart := time.Now()
	queued, err := w.runs.SubmitAll(ctx, jobs, h)
	if err != nil {
		return err
	}
	submitted := 0
	for i, q := range queued {
		if q.Err != nil {
			logs[i].WithError(q.Err).Error("could not start the run")
			continue
		}
		submitted++
		logs[i].WithField("build_id", q.Run.BuildID).WithFields(traces[i].with("submit", submitStart).fields()).Info(triggered)
	}
	if submitted == 0 {
		w.metrics.skip(w.repo.Name, "no_match")
	}
	return nil
}

// catchUp runs the resumed pipeline name at co, the branch's handled head, if its triggers
// match the head as a push and no push, manual or promoted run of it has run that commit:
// the head's push was refused while it was suspended. Run twice, it starts one run.
func (w *BranchWatcher) catchUp(ctx context.Context, co *reconciler.Checkout, branch, name string, log *logrus.Entry) {
	var pl *pipeline.Pipeline
	for _, p := range co.Pipelines {
		if p.Name == name {
			pl = p
		}
	}
	if pl == nil {
		return
	}
	plog := log.WithFields(logrus.Fields{"pipeline": name, "commit": co.Commit.ShortHash})
	runs, err := w.records.ListRuns(ctx, store.PipelineRef{Repository: w.repo.Name, Name: name}, 20)
	if err != nil {
		plog.WithError(err).Error("resumed pipeline: its runs are not readable; the next push runs it")
		return
	}
	for _, r := range runs {
		if r.Trigger == store.TriggerRollback || r.Tag != "" || !onBranch(r, branch) {
			continue
		}
		if r.Commit == co.Commit.Hash {
			plog.WithField("build_id", r.BuildID).Info("resumed pipeline already ran the branch's head")
			return
		}
		break
	}
	ok, why := pipeline.Match(pl, pipeline.Event{Kind: pipeline.EventPush, Branch: branch, TrackedBranch: branch,
		ChangedPaths: w.changedSince(ctx, pl, branch, "", co.Commit.Hash, nil)})
	if !ok {
		plog.WithField("reason", why).Info("resumed pipeline: the branch's head does not trigger it")
		return
	}
	run, err := w.runs.Submit(ctx, reconciler.RunJob(co, pl, store.TriggerPush, 0))
	if err != nil {
		plog.WithError(err).Error("resumed pipeline: could not start the run of the branch's head")
		return
	}
	plog.WithField("build_id", run.BuildID).Info("resumed: running the branch's head, refused while suspended")
}

// setHandled records the head dealt with, so a restart does not deal with it again.
func (w *BranchWatcher) setHandled(ctx context.Context, branch, head string) {
	if err := w.records.SetHandledHead(ctx, w.repo.Name, branch, head); err != nil {
		w.log.WithError(err).WithField("branch", branch).Warn("record the head handled; a restart may read the commit again")
		return
	}
	w.stateOf(branch).stored = head
}

// handledHead is handledHeadOf the default branch.
func (w *BranchWatcher) handledHead(ctx context.Context) (string, error) {
	last, _, err := w.handledHeadOf(ctx, w.branch)
	return last, err
}

// handledHeadOf is the head the last watcher of branch dealt with, and the record of it
// in the store ("" when none), the base of the next compare-and-set. For a store written
// before that was recorded, the head is the newest commit a pipeline of the repository
// ran on it. A branch never seen before has none: its head runs.
func (w *BranchWatcher) handledHeadOf(ctx context.Context, branch string) (last, stored string, err error) {
	stored, err = w.records.HandledHead(ctx, w.repo.Name, branch)
	if err != nil || stored != "" {
		return stored, stored, err
	}
	last, err = w.lastRunCommit(ctx, branch)
	return last, "", err
}

// overtaken records a hinted push the head has already replaced, as a superseded run of
// every pipeline the push would have started, so no pushed commit vanishes unrecorded. A
// commit some run already has (it ran, or a restart's late hint) is left alone. A commit
// the look prefetched is in the mirror whatever the branch holds: it counts only when it
// is in the history of the head.
func (w *BranchWatcher) overtaken(ctx context.Context, branch string, head *reconciler.Checkout, h Hint, last string, headSkipped, prefetched bool) {
	if h.Commit == "" || h.Commit == head.Commit.Hash || h.Commit == last || (h.Branch != "" && h.Branch != branch) {
		return
	}
	if w.seen(h.Commit) {
		return
	}
	log := w.log.WithFields(logrus.Fields{"commit": h.Commit, "delivery": h.DeliveryID})
	info, err := w.git.Commit(ctx, w.repo, h.Commit)
	if err == nil && prefetched {
		var in bool
		if in, err = w.git.InHistory(ctx, w.repo, head.Commit.Hash, h.Commit); err == nil && !in {
			err = fmt.Errorf("%s is not in the history of the branch's head %s: %w", h.Commit, head.Commit.ShortHash, sources.ErrCommitNotFound)
		}
	}
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
	diffs := diffCache{}
	for _, pl := range head.Pipelines {
		ref := store.PipelineRef{Repository: w.repo.Name, Name: pl.Name}
		if w.hasRunAt(ctx, ref, info.Hash) {
			continue
		}
		ev := pipeline.Event{Kind: pipeline.EventPush, Branch: branch, TrackedBranch: branch,
			ChangedPaths: w.changedSince(ctx, pl, branch, last, info.Hash, diffs)}
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

// diffCache keeps the files changed between two commits for one look, so pipelines of one
// file that last deployed the same commit share one diff; nil keeps nothing.
type diffCache map[[2]string][]string

// changedSince lists the files changed since the pipeline last deployed successfully on the
// branch (or, for a pipeline that never did, since the last commit handled). nil means
// unknown, which path filters let through. A pipeline whose push trigger has no path
// filter needs no list: nothing is read for it.
func (w *BranchWatcher) changedSince(ctx context.Context, pl *pipeline.Pipeline, branch, last, to string, diffs diffCache) []string {
	if pl.Triggers == nil || pl.Triggers.Push == nil || len(pl.Triggers.Push.Paths) == 0 {
		return nil
	}
	base := last
	runs, err := w.records.ListRuns(ctx, store.PipelineRef{Repository: w.repo.Name, Name: pl.Name}, 50)
	if err == nil {
		for _, r := range runs {
			if r.Status == store.RunSucceeded && r.Trigger != store.TriggerRollback && onBranch(r, branch) {
				base = r.Commit
				break
			}
		}
	}
	if base == "" || base == to {
		return nil
	}
	if paths, ok := diffs[[2]string{base, to}]; ok {
		return paths
	}
	paths, err := w.git.ChangedPaths(ctx, w.repo, base, to)
	if err != nil {
		w.log.WithError(err).Warn("changed paths unknown; path filters let the commit through")
		return nil
	}
	if diffs != nil {
		diffs[[2]string{base, to}] = paths
	}
	return paths
}

// onBranch reports whether run ran a commit of branch; runs recorded without a branch count
// for every branch.
func onBranch(run store.Run, branch string) bool {
	return run.Branch == "" || run.Branch == branch
}

// lastRunCommit is the newest commit any pipeline of the repository ran on branch for a
// push or by hand, so a restarted daemon does not run the same head again.
func (w *BranchWatcher) lastRunCommit(ctx context.Context, branch string) (string, error) {
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
			if run.Trigger == store.TriggerRollback || run.Tag != "" || !onBranch(run, branch) {
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
