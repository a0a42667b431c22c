package trigger

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/policy"
	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/reconciler/schedule"
	"github.com/slipwayhq/slipway/sources"
	"github.com/slipwayhq/slipway/store"
)

// ErrRequest marks an error the caller can fix: an unknown repository or pipeline, an
// ambiguous name, a run that cannot be re-run.
var ErrRequest = errors.New("invalid request")

// Dispatcher starts and cancels runs: what the hub needs of the run engine.
type Dispatcher interface {
	Submit(ctx context.Context, job reconciler.Job) (store.Run, error)
	SubmitAll(ctx context.Context, jobs []reconciler.Job, h store.Handled) ([]reconciler.Queued, error)
	SubmitIfIdleWith(ctx context.Context, job reconciler.Job, h store.Handled) (reconciler.Queued, error)
	Cancel(ctx context.Context, ref store.PipelineRef, buildID int64, reason string) error
	CancelActive(ctx context.Context, ref store.PipelineRef, reason string)
	Active(ref store.PipelineRef) bool
	Answer(ctx context.Context, ref store.PipelineRef, buildID int64, a policy.Answer) error
}

// RunRecords is what the hub reads of recorded runs.
type RunRecords interface {
	GetRun(ctx context.Context, ref store.PipelineRef, buildID int64) (store.Run, error)
	ListPipelines(ctx context.Context) ([]store.Pipeline, error)
}

// HubOptions are a Hub's collaborators.
type HubOptions struct {
	Pipelines  PipelineReader
	Dispatcher Dispatcher
	Records    RunRecords
	Metrics    *Metrics
	// Audit records who triggered, re-ran or cancelled what.
	Audit AuditLog
	// States keeps pipelines' suspension (Suspend).
	States PipelineStates
	// Interruptions records what becomes of interrupted runs (RetryInterrupted).
	Interruptions Interruptions
	// Handoff, when set (several replicas), hands a hint for a repository another replica
	// watches to that replica, and says whether it did; false: this replica's watcher takes it.
	Handoff func(ctx context.Context, repository string, h Hint) (bool, error)
	// Requests, when set, relays a cancel or an approval answer for a run this process
	// does not hold to the process that does, through the store, and waits for its outcome.
	Requests RunRequester
	// RelayWait bounds how long a relayed request waits for its outcome (0: 5s).
	RelayWait time.Duration
}

// AuditLog is where the hub records the actions people ask for.
type AuditLog interface {
	RecordAudit(ctx context.Context, e store.AuditEntry) (store.AuditEntry, error)
}

// Hub is the one place runs are asked for from outside: webhooks, people (through the
// API) and the scheduler. It knows every repository's BranchWatcher.
type Hub struct {
	pipelines  PipelineReader
	dispatcher Dispatcher
	records    RunRecords
	metrics    *Metrics
	audit      AuditLog
	states     PipelineStates
	interrupts Interruptions
	handoff    func(ctx context.Context, repository string, h Hint) (bool, error)
	requests   RunRequester
	relayWait  time.Duration
	watchers   map[string]*BranchWatcher
}

// NewHub makes a hub; Add its watchers before serving.
func NewHub(o HubOptions) *Hub {
	return &Hub{pipelines: o.Pipelines, dispatcher: o.Dispatcher, records: o.Records,
		metrics: o.Metrics, audit: o.Audit, states: o.States, interrupts: o.Interruptions, handoff: o.Handoff,
		requests: o.Requests, relayWait: o.RelayWait, watchers: map[string]*BranchWatcher{}}
}

// Add registers a repository's watcher. Call before serving.
func (h *Hub) Add(w *BranchWatcher) {
	h.watchers[w.repo.Name] = w
}

// Hint passes a webhook's push to the repository's watcher, or to the replica watching it.
func (h *Hub) Hint(ctx context.Context, repository string, hint Hint) error {
	w, ok := h.watchers[repository]
	if !ok {
		return fmt.Errorf("repository %q: %w", repository, ErrRequest)
	}
	return h.hint(ctx, w, hint)
}

func (h *Hub) hint(ctx context.Context, w *BranchWatcher, hint Hint) error {
	if h.handoff != nil {
		if handed, err := h.handoff(ctx, w.repo.Name, hint); handed || err != nil {
			return err
		}
	}
	w.Hint(hint)
	return nil
}

// Trigger starts a manual run of the pipeline on branch ("" = the default branch) at commit
// ("" = the branch's head) for actor, and records that in the audit log. The pipeline file
// is the one at that commit.
func (h *Hub) Trigger(ctx context.Context, ref store.PipelineRef, branch, commit, actor string) (store.Run, error) {
	if actor == "" {
		return store.Run{}, fmt.Errorf("trigger %s: no actor to record", ref)
	}
	return h.start(ctx, ref, target{branch: branch, commit: commit}, store.TriggerManual, 0, func(co *reconciler.Checkout) store.AuditEntry {
		return store.AuditEntry{Actor: actor, Action: store.AuditTrigger, Reason: "manual run at " + short(co.Commit.Hash)}
	})
}

// Rerun starts a new run of the commit run buildID ran, with that run as its parent, for
// actor, and records that in the audit log.
func (h *Hub) Rerun(ctx context.Context, ref store.PipelineRef, buildID int64, actor string) (store.Run, error) {
	if actor == "" {
		return store.Run{}, fmt.Errorf("re-run %s #%d: no actor to record", ref.Name, buildID)
	}
	parent, err := h.records.GetRun(ctx, ref, buildID)
	if err != nil {
		return store.Run{}, fmt.Errorf("re-run %s #%d: %w", ref.Name, buildID, err)
	}
	if parent.Trigger == store.TriggerRollback {
		return store.Run{}, fmt.Errorf("re-run %s #%d: it is a rollback; roll back again instead: %w", ref.Name, buildID, ErrRequest)
	}
	return h.start(ctx, ref, h.targetOf(ref, parent), store.TriggerManual, buildID, func(co *reconciler.Checkout) store.AuditEntry {
		return store.AuditEntry{Actor: actor, Action: store.AuditRerun, Reason: fmt.Sprintf("re-run of #%d at %s", buildID, short(co.Commit.Hash))}
	})
}

// Cancel cancels a queued or running run for actor, and records that in the audit log.
func (h *Hub) Cancel(ctx context.Context, ref store.PipelineRef, buildID int64, actor string) error {
	if actor == "" {
		return fmt.Errorf("cancel %s #%d: no actor to record", ref.Name, buildID)
	}
	reason := reconciler.CancelReason(actor)
	if err := h.dispatcher.Cancel(ctx, ref, buildID, reason); err != nil {
		if errors.Is(err, reconciler.ErrNotActive) && h.requests != nil {
			// Not held here: its holder cancels it and records who asked.
			return h.relay(ctx, err, store.NewRunRequest{Pipeline: ref, BuildID: buildID, Kind: store.RequestCancel, Actor: actor})
		}
		return err
	}
	// The run is cancelled whatever happens here; the error says it went unrecorded.
	e := store.AuditEntry{Actor: actor, Action: store.AuditCancel, Pipeline: ref, BuildID: buildID, Reason: reason}
	if _, err := h.audit.RecordAudit(context.WithoutCancel(ctx), e); err != nil {
		return fmt.Errorf("%s #%d was cancelled, but the audit log did not record it: %w", ref.Name, buildID, err)
	}
	return nil
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

// Approve answers a run waiting at a manual approval gate: approve lets the stage start,
// otherwise the run fails as rejected. Only the stage's approvers may answer
// (errors.Is policy.ErrNotApprover).
func (h *Hub) Approve(ctx context.Context, ref store.PipelineRef, buildID int64, actor string, approve bool, comment string) error {
	if actor == "" {
		return fmt.Errorf("answer %s #%d: no actor to record", ref.Name, buildID)
	}
	if err := h.dispatcher.Answer(ctx, ref, buildID, policy.Answer{Actor: actor, Approve: approve, Comment: comment, At: time.Now()}); err != nil {
		if errors.Is(err, reconciler.ErrNotActive) && h.requests != nil {
			// Not held here: its holder checks the actor, hands the answer to the gate and
			// records it.
			kind := store.RequestApprove
			if !approve {
				kind = store.RequestReject
			}
			return h.relay(ctx, err, store.NewRunRequest{Pipeline: ref, BuildID: buildID, Kind: kind, Actor: actor, Comment: comment})
		}
		return err
	}
	action := store.AuditApprove
	if !approve {
		action = store.AuditReject
	}
	e := store.AuditEntry{Actor: actor, Action: action, Pipeline: ref, BuildID: buildID, Reason: comment}
	if _, err := h.audit.RecordAudit(context.WithoutCancel(ctx), e); err != nil {
		return fmt.Errorf("%s #%d was answered, but the audit log did not record it: %w", ref.Name, buildID, err)
	}
	return nil
}

// Active reports whether a run of the pipeline is queued or running.
func (h *Hub) Active(ref store.PipelineRef) bool { return h.dispatcher.Active(ref) }

// CancelActive cancels the pipeline's queued and running runs.
func (h *Hub) CancelActive(ctx context.Context, ref store.PipelineRef, reason string) error {
	h.dispatcher.CancelActive(ctx, ref, reason)
	return nil
}

// Start starts a run for a cron tick at the default branch's head (schedule.Runs). The run
// and the tick's claim are recorded in one transaction (store.Handled), so a crash at any
// point leaves either both on record or neither, and the scheduler that reads the store
// next runs the tick exactly when it is not.
func (h *Hub) Start(ctx context.Context, f schedule.Fire) (bool, error) {
	co, err := h.prepare(ctx, f.Pipeline, target{})
	if err != nil {
		return false, err
	}
	job := reconciler.RunJob(co, co.Pipelines[0], store.TriggerCron, 0)
	handled := store.Handled{Tick: &f.Claim}
	var q reconciler.Queued
	if f.Concurrency == pipeline.ConcurrencyForbid {
		q, err = h.dispatcher.SubmitIfIdleWith(ctx, job, handled)
	} else {
		var all []reconciler.Queued
		if all, err = h.dispatcher.SubmitAll(ctx, []reconciler.Job{job}, handled); err == nil {
			q = all[0]
		}
	}
	switch {
	case errors.Is(err, store.ErrHandledElsewhere):
		return false, fmt.Errorf("%w: %w", schedule.ErrTickTaken, err)
	case errors.Is(err, reconciler.ErrBusy):
		return false, fmt.Errorf("%w: %w", schedule.ErrActive, err)
	case err != nil:
		return false, err
	case q.Err != nil:
		return true, q.Err
	}
	h.metrics.Received(f.Pipeline.Repository, "cron")
	w := h.watchers[f.Pipeline.Repository]
	w.log.WithFields(logrus.Fields{"pipeline": f.Pipeline.Name, "build_id": q.Run.BuildID, "schedule": f.Schedule,
		"tick": f.Tick, "missed": f.Missed}).Info("triggered by schedule")
	return true, nil
}

// Schedules feeds the scheduler the default branch's schedules (ScheduleSetter).
type Schedules struct{ Scheduler *schedule.Scheduler }

// SetSchedules implements ScheduleSetter.
func (s Schedules) SetSchedules(ctx context.Context, repository string, pipelines []*pipeline.Pipeline) error {
	return s.Scheduler.Set(ctx, repository, schedule.SchedulesOf(pipelines))
}

// target is what a run the hub starts runs: a branch ("" = the default branch; ignored for
// a tag) and a commit ("" = the branch's head), or the commit of a tag.
type target struct {
	branch, commit, tag string
}

// targetOf is what a run that repeats run (a re-run, a promotion) runs: its commit, of its
// tag, or of its branch where that is still tracked (else the default branch's name), so
// GIT_BRANCH, GIT_TAG and VERSION stay what they were.
func (h *Hub) targetOf(ref store.PipelineRef, run store.Run) target {
	at := target{commit: run.Commit, tag: run.Tag}
	if run.Tag == "" {
		at.branch = run.Branch
		if w, ok := h.watchers[ref.Repository]; ok && !w.Tracks(at.branch) {
			at.branch = ""
		}
	}
	return at
}

// start queues a run of the pipeline at the target, recorded with the audit entry audit
// makes of its checkout.
func (h *Hub) start(ctx context.Context, ref store.PipelineRef, at target, trig store.Trigger, parent int64,
	audit func(co *reconciler.Checkout) store.AuditEntry) (store.Run, error) {
	co, err := h.prepare(ctx, ref, at)
	if err != nil {
		return store.Run{}, err
	}
	job := reconciler.RunJob(co, co.Pipelines[0], trig, parent)
	e := audit(co)
	job.Audit = &e
	return h.dispatcher.Submit(ctx, job)
}

// prepare fetches the target's branch (the default one unless named; none for a tag) and
// reads the pipeline at its commit (or the branch's head).
func (h *Hub) prepare(ctx context.Context, ref store.PipelineRef, at target) (*reconciler.Checkout, error) {
	w, ok := h.watchers[ref.Repository]
	if !ok {
		return nil, fmt.Errorf("repository %q is not configured: %w", ref.Repository, ErrRequest)
	}
	branch := at.branch
	switch {
	case at.tag != "":
		branch = ""
	case branch == "":
		branch = w.branch
	case !w.Tracks(branch):
		return nil, fmt.Errorf("branch %q is not tracked by repository %s (slipway.yaml branches): %w", branch, ref.Repository, ErrRequest)
	}
	co, err := h.pipelines.Prepare(ctx, reconciler.Request{Repo: w.repo, Branch: branch, Commit: at.commit, Pipelines: []string{ref.Name}})
	if err != nil {
		var notPrepared *reconciler.PrepareError
		if errors.As(err, &notPrepared) || errors.Is(err, reconciler.ErrNoSuchPipeline) || errors.Is(err, sources.ErrCommitNotFound) {
			return nil, fmt.Errorf("%w: %w", ErrRequest, err)
		}
		return nil, err
	}
	co.Tag = at.tag
	return co, nil
}

// Resolve names a pipeline: repository and name when the repository is given, else the
// only repository whose recorded runs or (with one repository configured) file has it.
func (h *Hub) Resolve(ctx context.Context, repository, name string) (store.PipelineRef, error) {
	if name == "" {
		return store.PipelineRef{}, fmt.Errorf("a pipeline name is needed: %w", ErrRequest)
	}
	if repository != "" {
		if _, ok := h.watchers[repository]; !ok {
			return store.PipelineRef{}, fmt.Errorf("repository %q is not configured: %w", repository, ErrRequest)
		}
		return store.PipelineRef{Repository: repository, Name: name}, nil
	}
	if len(h.watchers) == 1 {
		for r := range h.watchers {
			return store.PipelineRef{Repository: r, Name: name}, nil
		}
	}
	all, err := h.records.ListPipelines(ctx)
	if err != nil {
		return store.PipelineRef{}, err
	}
	var found []string
	for _, p := range all {
		if _, configured := h.watchers[p.Ref.Repository]; configured && p.Ref.Name == name {
			found = append(found, p.Ref.Repository)
		}
	}
	sort.Strings(found)
	switch len(found) {
	case 1:
		return store.PipelineRef{Repository: found[0], Name: name}, nil
	case 0:
		return store.PipelineRef{}, fmt.Errorf("no runs of pipeline %q recorded; name its repository: %w", name, ErrRequest)
	default:
		return store.PipelineRef{}, fmt.Errorf("pipeline %q is in repositories %s; name one: %w", name, strings.Join(found, ", "), ErrRequest)
	}
}
