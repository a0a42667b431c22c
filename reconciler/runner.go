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
	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/reconciler/kube"
	"github.com/slipwayhq/slipway/sources"
	"github.com/slipwayhq/slipway/store"
)

// Sources is what a run needs from the Git side.
type Sources interface {
	Sync(ctx context.Context, repo sources.Repo, branch string) (sources.SyncResult, error)
	Checkout(ctx context.Context, repo sources.Repo, commit, dir string) error
	Commit(ctx context.Context, repo sources.Repo, sha string) (sources.Commit, error)
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

// Runner executes pipelines.
type Runner struct {
	Store    store.Store
	Sources  Sources
	Clusters *kube.Clusters
	Config   *config.Config
	Builder  ImageBuilder // for build-image tasks
	Tags     TagPruner    // for build-image retention (keep)
	Log      *logrus.Entry
	Observer Observer // optional
}

// Request asks for runs of a repository's pipelines at a commit.
type Request struct {
	Repo          sources.Repo
	Branch        string
	Commit        string // "" = the branch head
	Trigger       store.Trigger
	Pipelines     []string // names; empty = every pipeline in the file
	ParentBuildID int64
}

// Checkout is a commit whose pipeline file has been read and validated.
type Checkout struct {
	Repo      sources.Repo
	Branch    string
	Commit    sources.Commit
	Pipelines []*pipeline.Pipeline
}

// pipelineFile is the file every repository carries.
const pipelineFile = ".pipeline.yaml"

// Prepare syncs the mirror, resolves the commit and reads the pipeline file at that commit.
func (r *Runner) Prepare(ctx context.Context, req Request) (*Checkout, error) {
	commit := req.Commit
	if req.Branch != "" {
		res, err := r.Sources.Sync(ctx, req.Repo, req.Branch)
		if err != nil {
			return nil, err
		}
		if commit == "" {
			commit = res.Commit
		}
	}
	if commit == "" {
		return nil, errors.New("neither a branch nor a commit to run")
	}
	info, err := r.Sources.Commit(ctx, req.Repo, commit)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(r.workRoot(), "prepare-")
	if err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := r.Sources.Checkout(ctx, req.Repo, info.Hash, dir); err != nil {
		return nil, err
	}
	ps, err := pipeline.LoadFile(os.DirFS(dir), pipelineFile, req.Repo.Name+"@"+info.ShortHash+":"+pipelineFile,
		pipeline.Options{Env: r.Config, Repo: os.DirFS(dir)})
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

// ErrNoSuchPipeline says a commit's pipeline file lacks the pipeline asked for.
var ErrNoSuchPipeline = errors.New("no such pipeline")

// PrepareError says a commit's pipeline file is invalid; nothing of that commit runs.
type PrepareError struct {
	Commit string
	Err    error
}

func (e *PrepareError) Error() string { return e.Err.Error() }
func (e *PrepareError) Unwrap() error { return e.Err }

func (r *Runner) workRoot() string {
	d := filepath.Join(r.Config.DataDir, "workspaces")
	_ = os.MkdirAll(d, 0o700)
	return d
}

// Queue records a new run of p (allocating its BUILD_ID) without starting it.
func (r *Runner) Queue(ctx context.Context, co *Checkout, p *pipeline.Pipeline, trigger store.Trigger, parent int64) (store.Run, error) {
	ref := store.PipelineRef{Repository: co.Repo.Name, Name: p.Name}
	if _, err := r.Store.EnsurePipeline(ctx, ref); err != nil {
		return store.Run{}, err
	}
	tag := ""
	if len(co.Commit.Tags) > 0 {
		tag = co.Commit.Tags[0]
	}
	run, err := r.Store.CreateRun(ctx, store.NewRun{
		Pipeline: ref, Commit: co.Commit.Hash, Branch: co.Branch, Tag: tag, Trigger: trigger, ParentBuildID: parent,
	})
	if err != nil {
		return store.Run{}, err
	}
	for _, st := range p.Stages {
		for _, t := range st.Tasks {
			if _, err := r.Store.AddTask(ctx, ref, run.BuildID, store.NewTask{Stage: st.Name, Name: t.Name, Type: string(t.Type)}); err != nil {
				return run, err
			}
		}
	}
	r.emit(Event{Repository: run.Pipeline.Repository, Pipeline: p.Name, BuildID: run.BuildID, Status: string(store.RunQueued)})
	return run, nil
}

// Execute runs a queued run to its end and returns its final record. Cancelling ctx
// cancels the run: builds, applies and health waits stop, and nothing more is applied.
func (r *Runner) Execute(ctx context.Context, co *Checkout, p *pipeline.Pipeline, run store.Run) (store.Run, error) {
	ref := run.Pipeline
	log := r.Log.WithFields(logrus.Fields{"pipeline": p.Name, "build_id": run.BuildID, "commit": co.Commit.ShortHash})
	if ctx.Err() != nil {
		// Cancelled or superseded before it started: it ends without running.
		status, reason := cancelOutcome(ctx)
		return run, r.EndQueued(context.WithoutCancel(ctx), run, status, reason)
	}
	if _, err := r.Store.TransitionRun(context.WithoutCancel(ctx), ref, run.BuildID, store.RunQueued, store.RunRunning, ""); err != nil {
		return run, err
	}
	r.emit(Event{Repository: run.Pipeline.Repository, Pipeline: p.Name, BuildID: run.BuildID, Status: string(store.RunRunning)})
	log.Info("run started")

	timeout := p.Timeout.Duration
	if timeout <= 0 {
		timeout = 60 * time.Minute
	}
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	rc, err := r.newRunContext(runCtx, co, p, run, log)
	var status store.RunStatus
	var reason string
	var stageErr error
	if err == nil {
		defer rc.close()
		status, reason, stageErr = r.runStages(runCtx, rc)
		if status == store.RunSucceeded {
			rc.runAfterSuccess(runCtx)
		}
	} else {
		status, reason = store.RunFailed, err.Error()
	}
	if status == store.RunFailed && ctx.Err() != nil {
		status, reason = cancelOutcome(ctx)
	} else if status == store.RunFailed && errors.Is(runCtx.Err(), context.DeadlineExceeded) {
		status, reason = store.RunTimedOut, fmt.Sprintf("pipeline timeout of %s exceeded: %s", timeout, reason)
	} else if status == store.RunFailed && errors.As(stageErr, new(*taskTimeout)) {
		status = store.RunTimedOut
	}
	final, terr := r.Store.TransitionRun(context.WithoutCancel(ctx), ref, run.BuildID, store.RunRunning, status, reason)
	if terr != nil {
		return run, terr
	}
	r.emit(Event{Repository: run.Pipeline.Repository, Pipeline: p.Name, BuildID: run.BuildID, Status: string(status), Reason: reason})
	log.WithFields(logrus.Fields{"status": status, "reason": reason}).Info("run finished")
	return final, nil
}

// EndQueued ends a run that never started (superseded, or the daemon shut down).
func (r *Runner) EndQueued(ctx context.Context, run store.Run, to store.RunStatus, reason string) error {
	if _, err := r.Store.TransitionRun(ctx, run.Pipeline, run.BuildID, store.RunQueued, to, reason); err != nil {
		return err
	}
	r.emit(Event{Repository: run.Pipeline.Repository, Pipeline: run.Pipeline.Name, BuildID: run.BuildID, Status: string(to), Reason: reason})
	return nil
}

// superseded is the cancellation cause when a newer commit's run replaces a run that is
// only waiting for health.
type superseded struct{ by int64 }

func (s *superseded) Error() string { return "superseded by BUILD_ID " + buildIDString(s.by) }

// cancelOutcome says how a run whose context ended is recorded, from the cancellation's
// cause: superseded by a newer run, cancelled on request (with its reason), or cancelled
// because the daemon is shutting down.
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

// runStages runs stage after stage; a failed stage stops the run and later tasks are
// skipped. It returns the stage's error too, so a task timeout can end the run timed_out.
func (r *Runner) runStages(ctx context.Context, rc *runContext) (store.RunStatus, string, error) {
	for i, st := range rc.pipeline.Stages {
		if err := r.runStage(ctx, rc, st); err != nil {
			for _, later := range rc.pipeline.Stages[i+1:] {
				for _, t := range later.Tasks {
					r.finishTask(context.WithoutCancel(ctx), rc, later.Name, t.Name, store.TaskPending, store.TaskSkipped, "an earlier stage failed")
				}
			}
			return store.RunFailed, err.Error(), err
		}
	}
	return store.RunSucceeded, "", nil
}

// taskTimeout is a task that ran out of its own timeout.
type taskTimeout struct{ task, reason string }

func (e *taskTimeout) Error() string { return "task " + e.task + ": " + e.reason }

func (r *Runner) runStage(ctx context.Context, rc *runContext, st pipeline.Stage) error {
	if !st.Parallel {
		for i, t := range st.Tasks {
			if err := r.runTask(ctx, rc, st.Name, t); err != nil {
				for _, rest := range st.Tasks[i+1:] {
					r.finishTask(context.WithoutCancel(ctx), rc, st.Name, rest.Name, store.TaskPending, store.TaskSkipped, "an earlier task failed")
				}
				return err
			}
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make([]error, len(st.Tasks))
	for i, t := range st.Tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.runTask(ctx, rc, st.Name, t)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// runTask runs one task with its own timeout and records how it ended.
func (r *Runner) runTask(ctx context.Context, rc *runContext, stage string, t pipeline.Task) error {
	ref, id := rc.run.Pipeline, rc.run.BuildID
	if _, err := r.Store.TransitionTask(ctx, ref, id, t.Name, store.TaskPending, store.TaskRunning, ""); err != nil {
		return fmt.Errorf("task %s: %w", t.Name, err)
	}
	r.emit(Event{Repository: ref.Repository, Pipeline: ref.Name, BuildID: id, Stage: stage, Task: t.Name, Status: string(store.TaskRunning)})
	tctx := ctx
	if t.Timeout.Duration > 0 {
		var cancel context.CancelFunc
		tctx, cancel = context.WithTimeout(ctx, t.Timeout.Duration)
		defer cancel()
	}
	tl := rc.taskLog(t.Name)
	outputs, err := r.dispatch(tctx, rc, t, tl)
	tl.flush(context.WithoutCancel(ctx))
	if len(outputs) > 0 {
		if serr := r.Store.SetTaskOutputs(context.WithoutCancel(ctx), ref, id, t.Name, outputs); serr != nil && err == nil {
			err = serr
		}
		rc.setOutputs(t.Name, outputs)
	}
	status, reason := store.TaskSucceeded, ""
	switch {
	case err == nil:
	case ctx.Err() != nil:
		status, reason = store.TaskCancelled, rc.mask(err.Error())
	case errors.Is(tctx.Err(), context.DeadlineExceeded):
		status, reason = store.TaskTimedOut, rc.mask(fmt.Sprintf("task timeout of %s exceeded: %v", t.Timeout.Duration, err))
	default:
		status, reason = store.TaskFailed, rc.mask(err.Error())
	}
	r.finishTask(context.WithoutCancel(ctx), rc, stage, t.Name, store.TaskRunning, status, reason)
	if status == store.TaskTimedOut {
		return &taskTimeout{task: t.Name, reason: reason}
	}
	if err != nil {
		return fmt.Errorf("task %s: %s", t.Name, reason)
	}
	return nil
}

func (r *Runner) finishTask(ctx context.Context, rc *runContext, stage, task string, from, to store.TaskStatus, reason string) {
	ref, id := rc.run.Pipeline, rc.run.BuildID
	if _, err := r.Store.TransitionTask(ctx, ref, id, task, from, to, reason); err != nil {
		rc.log.WithError(err).WithField("task", task).Error("record task status")
	}
	r.emit(Event{Repository: ref.Repository, Pipeline: ref.Name, BuildID: id, Stage: stage, Task: task, Status: string(to), Reason: reason})
}

// dispatch runs the task's type.
func (r *Runner) dispatch(ctx context.Context, rc *runContext, t pipeline.Task, tl *taskLog) (map[string]string, error) {
	switch t.Type {
	case pipeline.TypeBuildImage:
		return r.buildImage(ctx, rc, t.Name, t.BuildImage, tl)
	case pipeline.TypeDeployYAML:
		return nil, r.deployYAML(ctx, rc, t.Name, t.DeployYAML, tl)
	case pipeline.TypePublishChart:
		return r.publishChart(ctx, rc, t.PublishChart, tl)
	case pipeline.TypeDeployChart:
		return nil, r.deployChart(ctx, rc, t.Name, t.DeployChart, tl)
	default:
		return nil, fmt.Errorf("task type %s is not available in this version of Slipway yet", t.Type)
	}
}

func (r *Runner) emit(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if r.Observer != nil {
		r.Observer.RunEvent(e)
	}
}

// buildIDString is how BUILD_ID appears in variables.
func buildIDString(id int64) string { return strconv.FormatInt(id, 10) }
