package reconciler

import (
	"context"
	"errors"
	"fmt"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/render"
	"github.com/slipwayhq/slipway/store"
)

// ErrNotPromotable marks a promotion that cannot start: the run did not succeed, or what it
// built is not what is healthy in the environment it would be promoted from.
var ErrNotPromotable = errors.New("not promotable")

// deployKey is the name a deploy task's revisions, ownership labels and prune go by: the
// task's name, and "TASK.ENV" for a task that deploys to an environment. A promotion deploys
// the same task to another environment, maybe on the same cluster, and neither deploy may
// prune or claim the other's objects.
func deployKey(task, environment string) string {
	if environment == "" {
		return task
	}
	return task + "." + environment
}

// promotion is what a promote job deploys again: the run that built the artifact, and the
// environments it moves between.
type promotion struct {
	artifact int64  // BUILD_ID of the run that built and first deployed it
	from, to string // environments
}

// PromoteJob is a run that deploys what run `artifact` of pipeline p deployed to the
// environment before `to` again, to `to`: the same commit, variables and task outputs (so the
// same image digests and chart versions), with to's cluster, namespace, variables, gate and
// windows. Nothing is built. co is the checkout of the artifact run's commit and p its
// pipeline as loaded there.
func PromoteJob(co *Checkout, p *pipeline.Pipeline, artifact int64, to string) (Job, error) {
	promoted, from, err := p.Promotion(to)
	if err != nil {
		return Job{}, err
	}
	j := RunJob(co, promoted, store.TriggerPromote, artifact)
	j.promote = &promotion{artifact: artifact, from: from, to: to}
	return j, nil
}

// checkPromotion makes sure the artifact run succeeded and that what is healthy in the
// environment promoted from is that artifact (deployed by the run itself or promoted there).
func (r *Runner) checkPromotion(ctx context.Context, ref store.PipelineRef, p *promotion) error {
	run, err := r.store.GetRun(ctx, ref, p.artifact)
	if err != nil {
		return fmt.Errorf("promote %s #%d: %w", ref.Name, p.artifact, err)
	}
	if run.Trigger == store.TriggerPromote || run.Trigger == store.TriggerRollback {
		return fmt.Errorf("promote %s #%d: it is a %s run, not one that built something; promote BUILD_ID %d: %w",
			ref.Name, p.artifact, run.Trigger, run.ParentBuildID, ErrNotPromotable)
	}
	if run.Status != store.RunSucceeded {
		return fmt.Errorf("promote %s #%d: the run %s; only a succeeded run is promoted: %w", ref.Name, p.artifact, run.Status, ErrNotPromotable)
	}
	deployed, err := r.store.EnvironmentRevisions(ctx, ref)
	if err != nil {
		return err
	}
	current := map[int64]bool{}
	for _, rev := range deployed {
		if rev.Environment == p.from {
			current[rev.BuildID] = true
		}
	}
	if len(current) == 0 {
		return fmt.Errorf("promote %s #%d to %s: nothing is deployed healthy in %s yet: %w", ref.Name, p.artifact, p.to, p.from, ErrNotPromotable)
	}
	for id := range current {
		if id == p.artifact {
			continue
		}
		by, err := r.store.GetRun(ctx, ref, id)
		if err != nil {
			return err
		}
		if by.Trigger != store.TriggerPromote || by.ParentBuildID != p.artifact {
			return fmt.Errorf("promote %s #%d to %s: %s runs BUILD_ID %d's artifact, not #%d's; promote what was verified in %s: %w",
				ref.Name, p.artifact, p.to, p.from, artifactOf(by), p.artifact, p.from, ErrNotPromotable)
		}
	}
	return nil
}

// artifactOf is the BUILD_ID whose artifact run deployed.
func artifactOf(run store.Run) int64 {
	if run.Trigger == store.TriggerPromote {
		return run.ParentBuildID
	}
	return run.BuildID
}

// artifactVars is what a promotion renders with from its artifact run: its BUILD_ID and
// its tasks' outputs (image references and digests, chart versions).
type artifactVars struct {
	buildID int64
	outputs map[string]map[string]string
}

func (r *Runner) loadArtifact(ctx context.Context, ref store.PipelineRef, buildID int64) (*artifactVars, error) {
	tasks, err := r.store.ListTasks(ctx, ref, buildID)
	if err != nil {
		return nil, fmt.Errorf("outputs of %s #%d: %w", ref.Name, buildID, err)
	}
	a := &artifactVars{buildID: buildID, outputs: map[string]map[string]string{}}
	for _, t := range tasks {
		if len(t.Outputs) > 0 {
			a.outputs[t.Name] = t.Outputs
		}
	}
	return a, nil
}

// restore sets the artifact run's BUILD_ID and outputs in vars.
func (a *artifactVars) restore(vars render.Map) {
	vars["BUILD_ID"] = buildIDString(a.buildID)
	for task, outs := range a.outputs {
		for k, v := range outs {
			vars["tasks."+task+"."+k] = v
		}
	}
}
