package reconciler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/reconciler/apply"
	"github.com/slipwayhq/slipway/render"
	"github.com/slipwayhq/slipway/store"
)

// rollbackWait bounds the health wait of a manual rollback; the stored revision does not
// carry its task's wait.
const rollbackWait = 5 * time.Minute

// Rollback starts a new run (a new BUILD_ID, trigger rollback, parent `to`) that re-applies
// every YAML revision run `to` stored, prunes what later revisions added, and waits for
// health. Polling does not re-deploy the head commit afterwards: only a new commit does.
func (r *Runner) Rollback(ctx context.Context, ref store.PipelineRef, to int64) (store.Run, error) {
	target, err := r.Store.GetRun(ctx, ref, to)
	if err != nil {
		return store.Run{}, fmt.Errorf("rollback %s to BUILD_ID %d: %w", ref.Name, to, err)
	}
	revs, err := r.Store.ListRevisions(ctx, ref, to)
	if err != nil {
		return store.Run{}, err
	}
	if len(revs) == 0 {
		return store.Run{}, fmt.Errorf("rollback %s to BUILD_ID %d: that run deployed nothing", ref.Name, to)
	}
	for _, rev := range revs {
		if rev.Kind != store.DeployYAML {
			return store.Run{}, fmt.Errorf("rollback %s to BUILD_ID %d: task %s is a %s deploy; only YAML deploys roll back this way yet", ref.Name, to, rev.Task, rev.Kind)
		}
	}
	run, err := r.Store.CreateRun(ctx, store.NewRun{Pipeline: ref, Commit: target.Commit, Branch: target.Branch,
		Tag: target.Tag, Trigger: store.TriggerRollback, ParentBuildID: to})
	if err != nil {
		return run, err
	}
	for _, rev := range revs {
		if _, err := r.Store.AddTask(ctx, ref, run.BuildID, store.NewTask{Stage: "rollback", Name: rev.Task, Type: string(pipeline.TypeDeployYAML)}); err != nil {
			return run, err
		}
	}
	if _, err := r.Store.TransitionRun(ctx, ref, run.BuildID, store.RunQueued, store.RunRunning, ""); err != nil {
		return run, err
	}
	r.emit(Event{Repository: ref.Repository, Pipeline: ref.Name, BuildID: run.BuildID, Status: string(store.RunRunning)})
	rc := &runContext{run: run, log: r.Log.WithFields(logrus.Fields{"pipeline": ref.Name, "build_id": run.BuildID}), store: r.Store}
	status, reason := store.RunSucceeded, fmt.Sprintf("rolled back to BUILD_ID %d", to)
	for _, rev := range revs {
		if err := r.rollbackTask(ctx, rc, rev); err != nil {
			status, reason = store.RunFailed, err.Error()
			if ctx.Err() != nil {
				status = store.RunCancelled
			}
			break
		}
	}
	final, err := r.Store.TransitionRun(context.WithoutCancel(ctx), ref, run.BuildID, store.RunRunning, status, reason)
	if err != nil {
		return run, err
	}
	r.emit(Event{Repository: ref.Repository, Pipeline: ref.Name, BuildID: run.BuildID, Status: string(status), Reason: reason})
	return final, nil
}

// rollbackTask re-applies one stored revision as a task of the rollback run.
func (r *Runner) rollbackTask(ctx context.Context, rc *runContext, rev store.Revision) error {
	ref, id := rc.run.Pipeline, rc.run.BuildID
	if _, err := r.Store.TransitionTask(ctx, ref, id, rev.Task, store.TaskPending, store.TaskRunning, ""); err != nil {
		return err
	}
	r.emit(Event{Repository: ref.Repository, Pipeline: ref.Name, BuildID: id, Stage: "rollback", Task: rev.Task, Status: string(store.TaskRunning)})
	tl := rc.taskLog(rev.Task)
	err := r.reapply(ctx, rc, rev, tl)
	tl.flush(context.WithoutCancel(ctx))
	status, reason := store.TaskSucceeded, ""
	if err != nil {
		status, reason = store.TaskFailed, err.Error()
	}
	r.finishTask(context.WithoutCancel(ctx), rc, "rollback", rev.Task, store.TaskRunning, status, reason)
	return err
}

func (r *Runner) reapply(ctx context.Context, rc *runContext, rev store.Revision, tl *taskLog) error {
	ref := rc.run.Pipeline
	cl, err := r.Clusters.Get(ctx, rev.Cluster)
	if err != nil {
		return err
	}
	ms, err := render.ParseManifests(fmt.Sprintf("revision of BUILD_ID %d", rev.BuildID), rev.Objects)
	if err != nil {
		return err
	}
	tl.Printf("re-applying the %d objects of BUILD_ID %d", len(ms), rev.BuildID)
	previous, err := r.lastInventory(ctx, ref, rev.Task)
	if err != nil {
		return err
	}
	ap := &apply.Applier{Cluster: cl, Log: rc.log.WithField("task", rev.Task)}
	owner := apply.OwnerOf(rev.TaskRef())
	res, inventory, pruneErr, err := applySet(ctx, ap, ms, owner, previous, true, tl)
	if err != nil {
		return err
	}
	if _, err := r.Store.SaveRevision(ctx, store.NewRevision{
		Pipeline: ref, BuildID: rc.run.BuildID, Task: rev.Task, Cluster: rev.Cluster, Namespace: rev.Namespace,
		Kind: store.DeployYAML, Objects: rev.Objects, Inventory: inventory, Status: store.RevisionApplied,
		Drift: rev.Drift, // the restored revision's policy comes back with its objects
	}); err != nil {
		return err
	}
	if err := errors.Join(pruneErr, ap.Wait(ctx, res.Inventory, rollbackWait)); err != nil {
		r.markRevision(ctx, rc, rev.Task, store.RevisionFailed, err.Error())
		return err
	}
	r.markRevision(ctx, rc, rev.Task, store.RevisionHealthy, "")
	tl.Printf("the objects of BUILD_ID %d are healthy again", rev.BuildID)
	return nil
}
