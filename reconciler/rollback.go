package reconciler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/render"
	"github.com/slipwayhq/slipway/store"
)

// rollbackWait bounds the health wait of a manual rollback; the stored revision does not
// carry its task's wait.
const rollbackWait = 5 * time.Minute

// rollbackStableFor is the stability window of a manual rollback: the default of the
// deploy tasks' stableFor, which the stored revision does not carry either.
const rollbackStableFor = 10 * time.Second

// rollbackPlan is the one stage of a rollback run: re-apply each YAML revision run `to`
// stored, prune what later revisions added, and wait for health.
func (r *Runner) rollbackPlan(ctx context.Context, ref store.PipelineRef, to int64) ([]stagePlan, error) {
	revs, err := r.store.ListRevisions(ctx, ref, to)
	if err != nil {
		return nil, fmt.Errorf("rollback %s to BUILD_ID %d: %w", ref.Name, to, err)
	}
	if len(revs) == 0 {
		return nil, fmt.Errorf("rollback %s to BUILD_ID %d: that run deployed nothing", ref.Name, to)
	}
	st := stagePlan{name: "rollback"}
	for _, rev := range revs {
		if rev.Kind != store.DeployYAML {
			return nil, fmt.Errorf("rollback %s to BUILD_ID %d: task %s is a %s deploy; only YAML deploys roll back this way yet", ref.Name, to, rev.Task, rev.Kind)
		}
		st.tasks = append(st.tasks, taskPlan{name: rev.Task, typ: string(pipeline.TypeDeployYAML),
			do: func(ctx context.Context, rc *runContext, tl *taskLog) (map[string]string, error) {
				return nil, r.reapply(ctx, rc, rev, tl)
			}})
	}
	return []stagePlan{st}, nil
}

// reapply re-applies one stored revision as a task of the rollback run: a new revision of
// the same objects, with the restored revision's drift policy.
func (r *Runner) reapply(ctx context.Context, rc *runContext, rev store.Revision, tl *taskLog) error {
	ms, err := render.ParseManifests(fmt.Sprintf("revision of BUILD_ID %d", rev.BuildID), rev.Objects)
	if err != nil {
		return err
	}
	tl.Printf("re-applying the %d objects of BUILD_ID %d", len(ms), rev.BuildID)
	// prune: false holds: when the revision restored or the one it replaces on that cluster
	// was deployed with it, nothing is pruned.
	prune := rev.Prune
	cur, err := r.store.CurrentRevisionOn(ctx, rc.run.Pipeline, rev.Task, rev.Cluster)
	switch {
	case err == nil:
		prune = prune && cur.Prune
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	_, err = r.deployRevision(ctx, rc, revisionSpec{task: rev.Task, environment: rev.Environment, cluster: rev.Cluster, namespace: rev.Namespace,
		manifests: ms, objects: rev.Objects, prune: prune, wait: rollbackWait, stableFor: rollbackStableFor, drift: rev.Drift}, tl)
	if err != nil {
		var unhealthy *healthError
		if errors.As(err, &unhealthy) {
			r.markRevision(ctx, rc, rev.Task, store.RevisionFailed, err.Error())
		}
		return err
	}
	tl.Printf("the objects of BUILD_ID %d are healthy again", rev.BuildID)
	return nil
}
