package reconciler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/internal/repofs"
	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/policy"
	"github.com/slipwayhq/slipway/reconciler/apply"
	"github.com/slipwayhq/slipway/reconciler/kube"
	"github.com/slipwayhq/slipway/sources"
	"github.com/slipwayhq/slipway/store"
)

// Sources is what a run needs from the Git side.
type Sources interface {
	Sync(ctx context.Context, repo sources.Repo, branch string) (sources.SyncResult, error)
	Checkout(ctx context.Context, repo sources.Repo, commit, dir string) error
	Commit(ctx context.Context, repo sources.Repo, sha string) (sources.Commit, error)
	// ChangedPaths lists the files that differ between two commits (previews' path filters).
	ChangedPaths(ctx context.Context, repo sources.Repo, from, to string) ([]string, error)
}

// StageGate decides whether a stage may start: the one seam in front of every stage of
// every run, where approvals and policy plug in.
type StageGate interface {
	MayStart(ctx context.Context, req policy.StageRequest) (policy.Decision, error)
	// MayAnswer reports whether actor may answer the stage's manual approval in a run of
	// the repository, and by which approvers entry (errors.Is policy.ErrNotApprover,
	// policy.ErrApproversUnknown).
	MayAnswer(ctx context.Context, repository string, stage *pipeline.Stage, actor string) (string, error)
}

// AuditLog records the gates' decisions.
type AuditLog interface {
	RecordAudit(ctx context.Context, e store.AuditEntry) (store.AuditEntry, error)
}

// Observer hears about a run's progress, e.g. to print it on a terminal.
type Observer interface {
	RunEvent(e Event)
}

// Observers hands every event to each observer in turn.
type Observers []Observer

// RunEvent implements Observer.
func (os Observers) RunEvent(e Event) {
	for _, o := range os {
		o.RunEvent(e)
	}
}

// Event is one state change of a run or task.
type Event struct {
	Repository string
	Pipeline   string
	BuildID    int64
	Stage      string // "" for run events
	Task       string // "" for run events
	Status     string
	Reason     string
	Time       time.Time
}

// RunnerOptions are a Runner's collaborators.
type RunnerOptions struct {
	Store    store.Store
	Sources  Sources
	Clusters *kube.Clusters
	Config   *config.Config
	Builder  ImageBuilder // for build-image tasks
	Tags     TagPruner    // for build-image retention (keep)
	// Executors run script tasks, by executor name; built from slipway.yaml in one place
	// (daemon.Parts).
	Executors Executors
	Gate      StageGate // nil: policy.Gate
	Audit     AuditLog  // where gate decisions are recorded; optional
	Observer  Observer  // optional
	// ApplySlots bound the objects applied at once across all runs (nil: each deploy's own
	// pool only).
	ApplySlots *apply.Slots
	// BuildSlots bound the image builds and scripts executing at once across all runs (nil:
	// no bound beyond the runs in flight).
	BuildSlots *BuildSlots
	// CheckoutLinger keeps a commit's shared checkout this long after its last reader
	// (see checkouts); 0 removes it at once. The daemon keeps them; a CLI need not.
	CheckoutLinger time.Duration
	Log            *logrus.Entry
}

// Runner executes runs: it reads pipeline files (Prepare), records runs (Queue) and runs
// them to their end (Execute). Only a Dispatcher calls Queue and Execute, so that one
// run per pipeline holds.
type Runner struct {
	store     store.Store
	sources   Sources
	clusters  *kube.Clusters
	config    *config.Config
	builder   ImageBuilder
	tags      TagPruner
	executors Executors
	gate      StageGate
	audit     AuditLog
	observer  Observer
	slots     *apply.Slots
	builds    *BuildSlots
	checkouts *checkouts
	log       *logrus.Entry
}

// NewRunner wires a Runner.
func NewRunner(o RunnerOptions) *Runner {
	r := &Runner{store: o.Store, sources: o.Sources, clusters: o.Clusters, config: o.Config, builder: o.Builder,
		tags: o.Tags, executors: o.Executors, gate: o.Gate, audit: o.Audit, observer: o.Observer, slots: o.ApplySlots,
		builds: o.BuildSlots, log: o.Log}
	if r.gate == nil {
		r.gate = policy.Gate{}
	}
	r.checkouts = &checkouts{src: o.Sources, root: r.workRoot, linger: o.CheckoutLinger}
	if r.log == nil {
		r.log = logrus.NewEntry(logrus.StandardLogger())
	}
	return r
}

// Request asks for runs of a repository's pipelines at a commit.
type Request struct {
	Repo      sources.Repo
	Branch    string
	Commit    string   // "" = the branch head
	Pipelines []string // names; empty = every pipeline in the file
}

// Checkout is a commit whose pipeline file has been read and validated.
type Checkout struct {
	Repo   sources.Repo
	Branch string
	// Tag is the tag the run is for (GIT_TAG, VERSION), "" for a branch's commit.
	Tag       string
	Commit    sources.Commit
	Pipelines []*pipeline.Pipeline
}

// pipelineFile is the file a repository with pipelines carries.
const pipelineFile = pipeline.DefaultFile

// Prepare syncs the mirror, resolves the commit and reads the pipeline file at that commit.
// A named commit the mirror holds already needs no fetch: a thousand runs of one commit
// asked for through the API would otherwise each fetch the branch again.
func (r *Runner) Prepare(ctx context.Context, req Request) (*Checkout, error) {
	info, err := r.resolve(ctx, req)
	if err != nil {
		return nil, err
	}
	sc, release, err := r.checkouts.acquire(ctx, req.Repo, info.Hash)
	if err != nil {
		return nil, err
	}
	defer release()
	// Read once per commit: a thousand runs asked for one by one through the API each
	// prepare the same commit.
	ps, err := r.checkouts.parse(sc, func() ([]*pipeline.Pipeline, error) {
		repo, err := repofs.Open(sc.dir)
		if err != nil {
			return nil, err
		}
		defer repo.Close()
		return pipeline.LoadFile(repo, pipelineFile, req.Repo.Name+"@"+info.ShortHash+":"+pipelineFile,
			pipeline.Options{Env: r.config, Repo: repo, Limits: r.limitsOf(req.Repo.Name)})
	})
	if err != nil {
		return nil, &PrepareError{Commit: info.Hash, Err: err}
	}
	co := &Checkout{Repo: req.Repo, Branch: req.Branch, Commit: info}
	if len(req.Pipelines) == 0 {
		co.Pipelines = ps
		return co, nil
	}
	for _, name := range req.Pipelines {
		var found *pipeline.Pipeline
		for _, p := range ps {
			if p.Name == name {
				found = p
			}
		}
		if found == nil {
			return nil, fmt.Errorf("pipeline %q is not in %s at %s: %w", name, pipelineFile, info.ShortHash, ErrNoSuchPipeline)
		}
		co.Pipelines = append(co.Pipelines, found)
	}
	return co, nil
}

// Close removes the shared checkouts nobody holds; runs still holding one remove theirs
// when they end.
func (r *Runner) Close() { r.checkouts.close() }

// ErrNoSuchPipeline says a commit's pipeline file lacks the pipeline asked for.
var ErrNoSuchPipeline = errors.New("no such pipeline")

// PrepareError says a commit's pipeline file is invalid or missing (errors.Is
// pipeline.ErrNoFile); nothing of that commit runs.
type PrepareError struct {
	Commit string
	Err    error
}

func (e *PrepareError) Error() string { return e.Err.Error() }
func (e *PrepareError) Unwrap() error { return e.Err }

// workRoot holds the runs' workspaces: private to the daemon's user, each one under a
// random name (os.MkdirTemp), so no run can find or read another's.
func (r *Runner) workRoot() string {
	d := filepath.Join(r.config.DataDir, "workspaces")
	_ = os.MkdirAll(d, 0o700)
	_ = os.Chmod(d, 0o700) // made by an older version, or by hand, with wider permissions
	return d
}

// limitsOf is what a repository's files may cost (slipway.yaml repositories[].limits).
func (r *Runner) limitsOf(repo string) pipeline.Limits {
	if c := r.config.Repository(repo); c != nil {
		return c.PipelineLimits()
	}
	return pipeline.Limits{}.WithDefaults()
}

// resolve is the commit req names: a named commit the mirror holds as it is, else after
// syncing the branch (its head when no commit is named).
func (r *Runner) resolve(ctx context.Context, req Request) (sources.Commit, error) {
	if req.Commit != "" && req.Branch != "" {
		if info, err := r.sources.Commit(ctx, req.Repo, req.Commit); err == nil {
			return info, nil
		}
	}
	commit := req.Commit
	if req.Branch != "" {
		res, err := r.sources.Sync(ctx, req.Repo, req.Branch)
		if err != nil {
			return sources.Commit{}, err
		}
		if commit == "" {
			commit = res.Commit
		}
	}
	if commit == "" {
		return sources.Commit{}, errors.New("neither a branch nor a commit to run")
	}
	return r.sources.Commit(ctx, req.Repo, commit)
}

// Queued is what became of one job of QueueAll: its run, or (Err) why it has none.
type Queued struct {
	Run store.Run
	Err error
}

// QueueAll records new runs of the jobs, with their tasks, and h (the tick, head or tag
// they are for) in one store transaction, so a crash leaves all of them on record or none.
// A job refused before that (a suspended pipeline, a plan that cannot be made) has its
// error in its Queued and no run; h is recorded with the others, even if none is left. An
// error means nothing was recorded (errors.Is store.ErrHandledElsewhere: another process
// recorded h first).
func (r *Runner) QueueAll(ctx context.Context, jobs []Job, holder string, h store.Handled) ([]Queued, error) {
	out := make([]Queued, len(jobs))
	var nrs []store.NewRun
	var at []int
	for i, job := range jobs {
		nr, err := r.newRun(ctx, job, holder)
		if err != nil {
			out[i].Err = err
			continue
		}
		nrs, at = append(nrs, nr), append(at, i)
	}
	if len(nrs) == 0 && h == (store.Handled{}) {
		return out, nil
	}
	runs, err := r.store.CreateRuns(ctx, nrs, h)
	if err != nil {
		return nil, err
	}
	for k, run := range runs {
		out[at[k]].Run = run
		r.emit(Event{Repository: run.Pipeline.Repository, Pipeline: run.Pipeline.Name, BuildID: run.BuildID, Status: string(store.RunQueued)})
	}
	return out, nil
}

// newRun is the record of a new run of job, with its tasks, or why it may not run.
func (r *Runner) newRun(ctx context.Context, job Job, holder string) (store.NewRun, error) {
	if job.Trigger == store.TriggerPush || job.Trigger == store.TriggerCron || job.Trigger == store.TriggerRetry {
		switch p, err := r.store.GetPipeline(ctx, job.Ref); {
		case err == nil && p.Suspended:
			return store.NewRun{}, &SuspendedError{Pipeline: p}
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return store.NewRun{}, err
		}
	}
	stages, err := r.plan(ctx, job)
	if err != nil {
		return store.NewRun{}, err
	}
	nr := store.NewRun{Pipeline: job.Ref, Trigger: job.Trigger, ParentBuildID: job.Parent, Holder: holder, Audit: job.Audit}
	if co := job.checkout; co != nil {
		// Only a run of a tag has one: a branch's commit that happens to be tagged runs with
		// the fallback VERSION, as the docs promise.
		nr.Commit, nr.Branch, nr.Tag = co.Commit.Hash, co.Branch, co.Tag
	} else {
		target, err := r.store.GetRun(ctx, job.Ref, job.Parent)
		if err != nil {
			return store.NewRun{}, fmt.Errorf("rollback %s to BUILD_ID %d: %w", job.Ref.Name, job.Parent, err)
		}
		nr.Commit, nr.Branch, nr.Tag = target.Commit, target.Branch, target.Tag
	}
	for _, st := range stages {
		for _, t := range st.tasks {
			nr.Tasks = append(nr.Tasks, store.NewTask{Stage: st.name, Name: t.name, Type: t.typ})
		}
	}
	return nr, nil
}

// RunState is what the dispatcher sees of a running run: the status it is in, whether all
// it does now is wait for health or for an approval (in which case a newer commit's run may
// supersede it), and where people's approvals reach it. The engine says so explicitly;
// nothing rides in the context.
type RunState struct {
	mu       sync.Mutex
	status   store.RunStatus // running or awaiting_approval once Execute has started the run
	running  int             // tasks running
	waiting  int             // of those, tasks waiting for health
	watched  int             // of those, waits the shared watches drive (waitingForHealth)
	builds   int             // of those, tasks that waited for a build slot, until it is given back (building)
	approval approvalState
	place    *place // its share of the bound on runs in flight; nil: unbounded
	// holder is the dispatcher's name in the store's claims: the run's start claims the
	// pipeline for it in the same write ("": no claim, a run executed without a dispatcher).
	// claimed says the start did.
	holder  string
	claimed bool
	// startUnsure says a start answered with an error that may hide its commit (a lost
	// answer): finding the run running afterwards means that start applied.
	startUnsure bool
	// startBackoff is set while the run waits to try a failed start again (backingOff).
	startBackoff bool
	left         int // tasks planned that have not done their work yet (planned)
}

// planned says how many tasks the run will work through, so the last one's end is known.
func (s *RunState) planned(tasks int) {
	s.mu.Lock()
	s.left = tasks
	s.mu.Unlock()
}

// workDone marks one task's work done and reports whether it was the last planned one:
// recording the end of that task and of the run needs no place among the runs in flight.
func (s *RunState) workDone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.left--
	return s.left == 0
}

// Status is the run's status as the engine last recorded it ("" before it started).
func (s *RunState) Status() store.RunStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// InHealthWait reports whether every running task of the run is waiting for health.
func (s *RunState) InHealthWait() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running > 0 && s.waiting == s.running
}

func (s *RunState) taskStarted() (done func()) {
	s.mu.Lock()
	s.running++
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.running--
		s.mu.Unlock()
		// The tasks still running may be ones that need no place.
		s.yieldIfIdle()
	}
}

// waitingForHealth marks one task as waiting for health until done is called. A wait the
// shared watches drive (watched) costs the API server nothing and may last minutes, so it
// needs no place among the runs in flight (yieldIfIdle). It takes a place again before it
// works on the cluster again (placed: the next task, a rollback); recording how the deploy
// ended and the run's end need none, so a run whose objects turned healthy ends at once
// instead of queueing behind runs that have not started.
func (s *RunState) waitingForHealth(watched bool) (done func()) {
	s.mu.Lock()
	s.waiting++
	if watched {
		s.watched++
	}
	s.mu.Unlock()
	s.yieldIfIdle()
	return func() {
		s.mu.Lock()
		s.waiting--
		if watched {
			s.watched--
		}
		s.mu.Unlock()
	}
}

// building marks one task as waiting for a build slot, then running its build or script
// under it, until done is called. That work is bounded by the build slots, not by the
// places among the runs in flight, so it needs no place (yieldIfIdle); the run takes one
// again before its next task (placed).
func (s *RunState) building() (done func()) {
	s.mu.Lock()
	s.builds++
	s.mu.Unlock()
	s.yieldIfIdle()
	return func() {
		s.mu.Lock()
		s.builds--
		s.mu.Unlock()
	}
}

// yieldIfIdle gives the run's place among the runs in flight to a run with work to do when
// every running task of the run waits for health the shared watches report, or waits for
// or holds a build slot: none of them needs a place. A task that needs one again takes it
// back (placed).
func (s *RunState) yieldIfIdle() {
	// Decided under the place's lock (place before run, never the other way round), so a
	// sibling task starting meanwhile keeps the place.
	s.place.releaseIf(func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.running > 0 && s.watched+s.builds == s.running
	})
}

// placed takes the run's place among the runs in flight again if a health wait or a build
// gave it up (at once when it holds it); false when ctx ended first.
func (s *RunState) placed(ctx context.Context, run store.Run) bool {
	return s.place.take(ctx, run, false)
}

// outcome is how a run ends.
type outcome struct {
	status store.RunStatus
	reason string
	err    error // the stage error behind a failure, to tell a task timeout apart
}

// Execute runs a queued run to its end and returns its final record; the outcome is
// recorded here and nowhere else. Cancelling ctx cancels the run: builds, applies and
// health waits stop, and nothing more is applied. A *StartError means the store could not
// record the start: the run did not start, and Execute may be called again with the same
// state (a start whose answer was lost is then found applied).
func (r *Runner) Execute(ctx context.Context, job Job, run store.Run, state *RunState) (store.Run, error) {
	ref := run.Pipeline
	log := r.log.WithFields(logrus.Fields{"repository": ref.Repository, "pipeline": ref.Name, "build_id": run.BuildID,
		"commit": shortCommit(run.Commit), "trigger": run.Trigger})
	if state == nil {
		state = &RunState{}
	}
	if ctx.Err() != nil {
		// Cancelled or superseded before it started: it ends without running.
		status, reason := cancelOutcome(ctx)
		if !state.mayHaveStarted() {
			return run, r.EndQueued(context.WithoutCancel(ctx), run, status, reason)
		}
		// A start failed before: the store may still be out, and a start whose answer was
		// lost may have applied (the run is running, though nothing of it has worked yet).
		final, err := r.transitionRetrying(ctx, run, store.RunQueued, store.RunRunning, status, reason, log)
		if err != nil {
			return run, err
		}
		r.skipUnstarted(context.WithoutCancel(ctx), run, status, reason)
		return final, nil
	}
	state.mu.Lock()
	state.status = store.RunQueued
	state.mu.Unlock()
	if err := r.start(ctx, run, state); err != nil {
		return run, err
	}
	log.Info("run started")

	timeout := defaultRunTimeout
	if p := job.pipeline; p != nil && p.Timeout.Duration > 0 {
		timeout = p.Timeout.Duration
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	deadline := newRunDeadline(timeout, cancel)
	defer deadline.stop()
	out := r.runPlan(runCtx, job, run, state, deadline, log)
	// Nothing of the run works on a cluster or a registry any more.
	state.place.release()
	var timedOut *runTimedOut
	switch {
	case out.status != store.RunFailed:
	case errors.As(out.err, new(*errApprovalTimedOut)):
		out.status = store.RunApprovalTimedOut
	case ctx.Err() != nil:
		out.status, out.reason = cancelOutcome(ctx)
	case errors.As(context.Cause(runCtx), &timedOut):
		out.status, out.reason = store.RunTimedOut, fmt.Sprintf("%s: %s", timedOut, out.reason)
	case errors.As(out.err, new(*taskTimeout)):
		out.status = store.RunTimedOut
	}
	final, err := r.transitionRetrying(ctx, run, state.Status(), "", out.status, out.reason, log)
	if err != nil {
		return run, err
	}
	r.emit(Event{Repository: ref.Repository, Pipeline: ref.Name, BuildID: run.BuildID, Status: string(out.status), Reason: out.reason})
	log.WithFields(logrus.Fields{"status": out.status, "reason": out.reason}).Info("run finished")
	return final, nil
}

// start moves the queued run to running, claiming its pipeline for the dispatcher's holder
// in the same write: one commit where a claim and a move were two. A *store.ClaimedError
// leaves the run queued, for the dispatcher to wait for the other process; a *StartError
// (the store could not be written) too, for the dispatcher to try again.
func (r *Runner) start(ctx context.Context, run store.Run, state *RunState) error {
	state.mu.Lock()
	holder, unsure := state.holder, state.startUnsure
	state.mu.Unlock()
	var err error
	if holder == "" {
		_, err = r.store.TransitionRun(context.WithoutCancel(ctx), run.Pipeline, run.BuildID, store.RunQueued, store.RunRunning, "")
	} else {
		_, err = r.store.StartRun(context.WithoutCancel(ctx), run.Pipeline, run.BuildID, holder)
	}
	var moved *store.TransitionError
	switch {
	case err == nil:
	case unsure && errors.As(err, &moved) && moved.Current == string(store.RunRunning):
		// Only this process starts its runs: an earlier start whose answer was lost applied,
		// the claim with it.
	case retryable(err):
		state.mu.Lock()
		state.startUnsure = true
		state.mu.Unlock()
		return &StartError{Run: run, Err: err}
	default:
		return err
	}
	state.mu.Lock()
	state.status, state.claimed = store.RunRunning, holder != ""
	state.mu.Unlock()
	r.emit(Event{Repository: run.Pipeline.Repository, Pipeline: run.Pipeline.Name, BuildID: run.BuildID, Status: string(store.RunRunning)})
	return nil
}

// StartError says the store could not record a run's start (it could not be reached, say,
// past its own retries): the run is still queued, or its start applied and only the answer
// was lost. Either way trying the start again with the same RunState is right.
type StartError struct {
	Run store.Run
	Err error
}

func (e *StartError) Error() string {
	return fmt.Sprintf("start %s BUILD_ID %d: %v", e.Run.Pipeline, e.Run.BuildID, e.Err)
}

func (e *StartError) Unwrap() error { return e.Err }

// mayHaveStarted reports whether a start answered with an error that may hide its commit.
func (s *RunState) mayHaveStarted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startUnsure
}

// retryingStart reports whether the run waits to try again a start the store could not
// record: only the wait between tries, when it holds no place and counts in neither of the
// dispatcher's InFlight figures.
func (s *RunState) retryingStart() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startBackoff
}

// backingOff marks the wait between a failed start and its next try, until done is called.
func (s *RunState) backingOff() (done func()) {
	s.mu.Lock()
	s.startBackoff = true
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.startBackoff = false
		s.mu.Unlock()
	}
}

// retryable reports whether a store write's error may pass when the write is tried again:
// anything but an answer the store decided (a move no longer possible, a run not found,
// another process's claim). A context error is no such answer: the writes are made without
// the run's cancellation, so one can only come from the driver (a connect timeout), and the
// callers look at their own context to stop.
func retryable(err error) bool {
	return err != nil && !errors.As(err, new(*store.TransitionError)) && !errors.Is(err, store.ErrNotFound) &&
		!errors.Is(err, store.ErrClaimed)
}

// Between two attempts of a write a run cannot do without (its start, its end), the wait
// starts at storeRetryFirst and doubles up to storeRetryMax: quick after a blip, one
// warning every few seconds through an outage.
const (
	storeRetryFirst = 100 * time.Millisecond
	storeRetryMax   = 5 * time.Second
)

// nextStoreRetry is the wait after one that lasted d (0: none yet).
func nextStoreRetry(d time.Duration) time.Duration {
	if d <= 0 {
		return storeRetryFirst
	}
	return min(2*d, storeRetryMax)
}

// sleepCtx waits d, or until ctx ends (false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// endRetryLimit bounds how long a run's end is tried again while the store cannot be
// written. The run's context is cancelled by then, if at all: this bound is what lets a
// shutdown through an outage end.
const endRetryLimit = 3 * time.Minute

// transitionRetrying moves the run from `from` (or from alsoFrom, when it is found there:
// a start whose answer was lost; "" for none) to `to`. A run left queued or running on
// record would stay so for as long as this process beats, so a write the store could not
// make is tried again (storeRetryFirst to storeRetryMax apart) for up to endRetryLimit,
// whatever becomes of ctx. A write whose answer was lost may have applied: the next attempt
// then finds the run moved already, and its record is read.
func (r *Runner) transitionRetrying(ctx context.Context, run store.Run, from, alsoFrom, to store.RunStatus, reason string, log *logrus.Entry) (store.Run, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endRetryLimit)
	defer cancel()
	ref := run.Pipeline
	var wait time.Duration
	for {
		final, err := r.store.TransitionRun(ctx, ref, run.BuildID, from, to, reason)
		var moved *store.TransitionError
		switch {
		case err == nil:
			return final, nil
		case alsoFrom != "" && from != alsoFrom && errors.As(err, &moved) && moved.Current == string(alsoFrom):
			from = alsoFrom
			continue
		case wait > 0 && errors.As(err, &moved) && moved.Current == string(to):
			return r.store.GetRun(ctx, ref, run.BuildID)
		case ctx.Err() != nil:
			return run, fmt.Errorf("gave up recording the run's end (%s) after %s: %w", to, endRetryLimit, err)
		case !retryable(err):
			return run, err
		}
		wait = nextStoreRetry(wait)
		log.WithError(err).WithField("retry_in", wait.String()).Warn("record the run's end; trying again")
		if !sleepCtx(ctx, wait) {
			return run, fmt.Errorf("gave up recording the run's end (%s) after %s: %w", to, endRetryLimit, err)
		}
	}
}

// claimedAtStart reports whether the run's start claimed its pipeline.
func (s *RunState) claimedAtStart() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.claimed
}

// NoteQueued records why queued runs wait, in one write.
func (r *Runner) NoteQueued(ctx context.Context, runs []store.Run, reason string) error {
	if err := r.store.NoteQueuedRuns(ctx, runs, reason); err != nil {
		return err
	}
	for _, run := range runs {
		r.emit(Event{Repository: run.Pipeline.Repository, Pipeline: run.Pipeline.Name, BuildID: run.BuildID, Status: string(store.RunQueued), Reason: reason})
	}
	return nil
}

// defaultRunTimeout bounds a run whose pipeline sets no timeout (and every rollback).
const defaultRunTimeout = 60 * time.Minute

// runPlan is the story of a run: plan its stages, set up what its tasks share, then for
// each stage ask the gate, run its tasks, and stop at the first failure. Whatever does not
// run is recorded skipped, with the reason.
func (r *Runner) runPlan(ctx context.Context, job Job, run store.Run, state *RunState, deadline *runDeadline, log *logrus.Entry) outcome {
	stages, err := r.plan(ctx, job)
	if err != nil {
		return outcome{status: store.RunFailed, reason: err.Error(), err: err}
	}
	tasks := 0
	for _, st := range stages {
		tasks += len(st.tasks)
	}
	state.planned(tasks)
	// Every deploy task's cluster and namespace are checked before the first stage, so a
	// denied later stage does not let an earlier one apply.
	if err := policy.CheckRun(r.config, job.Ref.Repository, job.pipeline); err != nil {
		r.skipStages(ctx, run, stages, err.Error())
		return outcome{status: store.RunFailed, reason: err.Error(), err: err}
	}
	rc, err := r.newRunContext(ctx, job, run, state, log)
	if err != nil {
		reason := "the run could not start: " + err.Error()
		r.skipStages(ctx, run, stages, reason)
		return outcome{status: store.RunFailed, reason: reason, err: err}
	}
	defer rc.close()
	for i, st := range stages {
		if st.stage != nil {
			if err := r.passGate(ctx, rc, job, st.stage, deadline); err != nil {
				reason := rc.mask(err.Error())
				r.skipStages(ctx, run, stages[i:], reason)
				return outcome{status: store.RunFailed, reason: reason, err: err}
			}
		}
		if err := r.awaitWindows(ctx, rc, st, deadline); err != nil {
			reason := rc.mask(err.Error())
			r.skipStages(ctx, run, stages[i:], reason)
			return outcome{status: store.RunFailed, reason: reason, err: err}
		}
		if err := r.runStage(ctx, rc, st); err != nil {
			r.skipStages(ctx, run, stages[i+1:], "an earlier stage failed")
			return outcome{status: store.RunFailed, reason: err.Error(), err: err}
		}
	}
	// Retention deletes tags in registries: a place again if a wait for a build slot or for
	// health gave it up. Cancelled while waiting for it, the run still succeeded (its tasks
	// did); the next successful run's retention deletes what this one would have.
	if !rc.hasAfterSuccess() || rc.state.placed(ctx, run) {
		rc.runAfterSuccess(ctx)
	} else {
		r.log.WithFields(logrus.Fields{"pipeline": run.Pipeline.Name, "build_id": run.BuildID}).
			Warn("image tag retention skipped: the run was cancelled while it waited for a place")
	}
	if job.IsRollback() {
		return outcome{status: store.RunSucceeded, reason: fmt.Sprintf("rolled back to BUILD_ID %d", job.Parent)}
	}
	return outcome{status: store.RunSucceeded}
}

// GateError says a stage's gate did not let it start.
type GateError struct {
	Stage    string
	Decision policy.Decision
}

func (e *GateError) Error() string { return e.Decision.Reason }

// setRunStatus moves the run from the status it is in to `to`, and says so.
func (r *Runner) setRunStatus(ctx context.Context, run store.Run, state *RunState, to store.RunStatus, reason string) error {
	state.mu.Lock()
	from := state.status
	state.mu.Unlock()
	if from == to {
		return nil
	}
	if _, err := r.store.TransitionRun(context.WithoutCancel(ctx), run.Pipeline, run.BuildID, from, to, reason); err != nil {
		return err
	}
	state.mu.Lock()
	state.status = to
	state.mu.Unlock()
	r.emit(Event{Repository: run.Pipeline.Repository, Pipeline: run.Pipeline.Name, BuildID: run.BuildID, Status: string(to), Reason: reason})
	return nil
}

// skipStages records every task of the stages skipped, with reason.
func (r *Runner) skipStages(ctx context.Context, run store.Run, stages []stagePlan, reason string) {
	for _, st := range stages {
		for _, t := range st.tasks {
			r.finishTask(context.WithoutCancel(ctx), run, st.name, t.name, store.TaskPending, store.TaskSkipped, reason)
		}
	}
}

// EndQueued ends a run that never started (superseded, cancelled, or the daemon shut
// down); its tasks are recorded skipped.
func (r *Runner) EndQueued(ctx context.Context, run store.Run, to store.RunStatus, reason string) error {
	if _, err := r.store.TransitionRun(ctx, run.Pipeline, run.BuildID, store.RunQueued, to, reason); err != nil {
		return err
	}
	r.skipUnstarted(ctx, run, to, reason)
	return nil
}

// skipUnstarted records the tasks of a run that ended before it worked skipped, and says
// that the run ended.
func (r *Runner) skipUnstarted(ctx context.Context, run store.Run, to store.RunStatus, reason string) {
	if tasks, err := r.store.ListTasks(ctx, run.Pipeline, run.BuildID); err == nil {
		for _, t := range tasks {
			if t.Status == store.TaskPending {
				r.finishTask(ctx, run, t.Stage, t.Name, store.TaskPending, store.TaskSkipped, "the run did not start: "+reason)
			}
		}
	}
	r.emit(Event{Repository: run.Pipeline.Repository, Pipeline: run.Pipeline.Name, BuildID: run.BuildID, Status: string(to), Reason: reason})
}

// superseded is the cancellation cause when a newer commit's run replaces a run that is
// only waiting for health.
type superseded struct{ by int64 }

func (s *superseded) Error() string { return "superseded by BUILD_ID " + buildIDString(s.by) }

// cancelOutcome says how a run whose context ended is recorded, from the cancellation's
// cause: superseded by a newer run, cancelled on request (with its reason), or cancelled
// because the process is shutting down.
func cancelOutcome(ctx context.Context) (store.RunStatus, string) {
	var sup *superseded
	var byRequest *cancelled
	switch cause := context.Cause(ctx); {
	case errors.As(cause, &sup):
		return store.RunSuperseded, sup.Error()
	case errors.As(cause, &byRequest):
		return store.RunCancelled, byRequest.reason
	}
	return store.RunCancelled, "cancelled"
}

// stagePlan is one stage of a run as the engine runs it: the pipeline's stage, or the one
// stage of a rollback.
type stagePlan struct {
	name     string
	stage    *pipeline.Stage // nil for a rollback's stage: no gate, nothing to declare
	parallel bool
	tasks    []taskPlan
}

// taskPlan is one task: its record and what running it does.
type taskPlan struct {
	name    string
	typ     string
	timeout time.Duration
	do      func(ctx context.Context, rc *runContext, tl *taskLog) (outputs map[string]string, err error)
}

// plan lays out the job's stages: the pipeline's, or for a rollback one stage re-applying
// each revision the target run stored.
func (r *Runner) plan(ctx context.Context, job Job) ([]stagePlan, error) {
	if job.IsRollback() {
		return r.rollbackPlan(ctx, job.Ref, job.Parent)
	}
	if job.promote != nil {
		if err := r.checkPromotion(ctx, job.Ref, job.promote); err != nil {
			return nil, err
		}
	}
	out := make([]stagePlan, 0, len(job.pipeline.Stages))
	for i := range job.pipeline.Stages {
		st := &job.pipeline.Stages[i]
		sp := stagePlan{name: st.Name, stage: st, parallel: st.Parallel}
		for _, t := range st.Tasks {
			sp.tasks = append(sp.tasks, taskPlan{name: t.Name, typ: string(t.Type), timeout: t.Timeout.Duration,
				do: func(ctx context.Context, rc *runContext, tl *taskLog) (map[string]string, error) {
					return r.dispatch(ctx, rc, t, tl)
				}})
		}
		out = append(out, sp)
	}
	return out, nil
}

// taskTimeout is a task that ran out of its own timeout.
type taskTimeout struct{ task, reason string }

func (e *taskTimeout) Error() string { return "task " + e.task + ": " + e.reason }

func (r *Runner) runStage(ctx context.Context, rc *runContext, st stagePlan) error {
	if !st.parallel {
		for i, t := range st.tasks {
			if err := r.runTask(ctx, rc, st.name, t); err != nil {
				r.skipStages(ctx, rc.run, []stagePlan{{name: st.name, tasks: st.tasks[i+1:]}}, "an earlier task failed")
				return err
			}
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make([]error, len(st.tasks))
	for i, t := range st.tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.runTask(ctx, rc, st.name, t)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// runTask runs one task with its own timeout and records how it ended.
func (r *Runner) runTask(ctx context.Context, rc *runContext, stage string, t taskPlan) error {
	ref, id := rc.run.Pipeline, rc.run.BuildID
	if _, err := r.store.TransitionTask(ctx, ref, id, t.name, store.TaskPending, store.TaskRunning, ""); err != nil {
		return fmt.Errorf("task %s: %w", t.name, err)
	}
	r.emit(Event{Repository: ref.Repository, Pipeline: ref.Name, BuildID: id, Stage: stage, Task: t.name, Status: string(store.TaskRunning)})
	defer rc.state.taskStarted()()
	// A task of a parallel stage, or the next stage's, works while another waited for health.
	if !rc.state.placed(ctx, rc.run) {
		err := fmt.Errorf("task %s: %w", t.name, ctx.Err())
		r.finishTask(context.WithoutCancel(ctx), rc.run, stage, t.name, store.TaskRunning, store.TaskCancelled, err.Error())
		return err
	}
	tctx := ctx
	if t.timeout > 0 {
		var cancel context.CancelFunc
		tctx, cancel = context.WithTimeout(ctx, t.timeout)
		defer cancel()
	}
	tl := rc.taskLog(t.name)
	stopFlushing := tl.flushEvery(ctx, liveLogFlush)
	outputs, err := t.do(tctx, rc, tl)
	stopFlushing()
	var stored map[string]string
	if len(outputs) > 0 {
		// Later tasks get the values; the record gets them masked.
		stored = make(map[string]string, len(outputs))
		for k, v := range outputs {
			stored[k] = rc.mask(v)
		}
		rc.setOutputs(t.name, outputs)
	}
	if rc.state.workDone() && !rc.hasAfterSuccess() {
		// The run's last task has done its work: what is left is recording the end.
		rc.state.place.release()
	}
	status, reason := store.TaskSucceeded, ""
	switch {
	case err == nil:
	case ctx.Err() != nil:
		status, reason = store.TaskCancelled, rc.mask(err.Error())
	case errors.Is(tctx.Err(), context.DeadlineExceeded):
		status, reason = store.TaskTimedOut, rc.mask(fmt.Sprintf("task timeout of %s exceeded: %v", t.timeout, err))
	default:
		status, reason = store.TaskFailed, rc.mask(err.Error())
	}
	tl.ending(func(lines []store.LogLine) {
		r.endTask(context.WithoutCancel(ctx), rc.run, stage, t.name,
			store.TaskEnd{From: store.TaskRunning, To: status, Reason: reason, Logs: lines, Outputs: stored})
	})
	if status == store.TaskTimedOut {
		return &taskTimeout{task: t.name, reason: reason}
	}
	if err != nil {
		return fmt.Errorf("task %s: %s", t.name, reason)
	}
	return nil
}

func (r *Runner) finishTask(ctx context.Context, run store.Run, stage, task string, from, to store.TaskStatus, reason string) {
	r.endTask(ctx, run, stage, task, store.TaskEnd{From: from, To: to, Reason: reason})
}

// endTask records the task's move with what it leaves (its last log lines, its outputs) in
// one write, and says so.
func (r *Runner) endTask(ctx context.Context, run store.Run, stage, task string, end store.TaskEnd) {
	ref, id := run.Pipeline, run.BuildID
	if _, err := r.store.EndTask(ctx, ref, id, task, end); err != nil {
		log := r.log.WithFields(logrus.Fields{"pipeline": ref.Name, "build_id": id, "task": task})
		log.WithError(err).Error("record task status")
		// The lines may be what explains the end: kept even when the end is not recorded.
		if len(end.Logs) > 0 {
			if err := r.store.AppendLogs(ctx, ref, id, task, end.Logs); err != nil {
				log.WithError(err).Error("store task log")
			}
		}
	}
	r.emit(Event{Repository: ref.Repository, Pipeline: ref.Name, BuildID: id, Stage: stage, Task: task, Status: string(end.To), Reason: end.Reason})
}

// dispatch runs the task's type.
func (r *Runner) dispatch(ctx context.Context, rc *runContext, t pipeline.Task, tl *taskLog) (map[string]string, error) {
	switch t.Type {
	case pipeline.TypeBuildImage:
		return r.buildImage(ctx, rc, t.Name, t.BuildImage, tl)
	case pipeline.TypeDeployYAML:
		return nil, r.deployYAML(ctx, rc, deployKey(t.Name, t.DeployYAML.Environment), t.DeployYAML, tl)
	case pipeline.TypePublishChart:
		// No build slot: packaging a chart is a few files the repository's limits keep
		// small, and its push waits on the registry as a deploy waits on the API server.
		return r.publishChart(ctx, rc, t.Name, t.PublishChart, tl)
	case pipeline.TypeDeployChart:
		return nil, r.deployChart(ctx, rc, deployKey(t.Name, t.DeployChart.Environment), t.DeployChart, tl)
	case pipeline.TypeScript:
		return r.runScript(ctx, rc, t.Name, t.Script, tl)
	default:
		return nil, fmt.Errorf("task type %s is not available in this version of Slipway yet", t.Type)
	}
}

func (r *Runner) emit(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if r.observer != nil {
		r.observer.RunEvent(e)
	}
}

// buildIDString is how BUILD_ID appears in variables.
func buildIDString(id int64) string { return strconv.FormatInt(id, 10) }

func shortCommit(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}
