package reconciler

import (
	"context"
	"fmt"

	"helm.sh/helm/v3/pkg/chart"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/policy"
	"github.com/slipwayhq/slipway/reconciler/helm"
	"github.com/slipwayhq/slipway/reconciler/kube"
	"github.com/slipwayhq/slipway/render"
)

// checkPolicy evaluates one deploy task's rendered objects against its repository's
// policy before any of them is applied. Every denial is in the task's log and its error.
func (r *Runner) checkPolicy(rc *runContext, target policy.Target, ms []render.Manifest, tl *taskLog) error {
	err := policy.Denied(target.Task, policy.For(r.config, rc.run.Pipeline.Repository).Evaluate(target, ms))
	if err != nil {
		tl.Printf("%s", rc.mask(err.Error()))
		return err
	}
	tl.Printf("policy allowed all %d objects", len(ms))
	return nil
}

// checkChartPolicy renders the release as Helm would install or upgrade it (Helm's dry-run,
// nothing applied) and evaluates what it renders: templates, hooks and, for an install, the
// chart's CRDs. It returns what it rendered.
func (r *Runner) checkChartPolicy(ctx context.Context, rc *runContext, task string, t *pipeline.DeployChartTask,
	cl *kube.Cluster, rel *helm.Release, ch *chart.Chart, values map[string]any, upgrade bool, tl *taskLog) ([]render.Manifest, error) {
	ms, err := rel.Render(ctx, ch, values, upgrade)
	if err != nil {
		return nil, fmt.Errorf("render release %s for policy: %w", t.Release, err)
	}
	// Helm puts namespaced objects that name no namespace in the release's; policy must see
	// them where they will be.
	if err := render.SetNamespaces(ms, cl, render.NamespaceOptions{Namespace: t.Namespace, AllowNamespaces: []string{"*"}}); err != nil {
		return nil, fmt.Errorf("render release %s for policy: %w", t.Release, err)
	}
	return ms, r.checkPolicy(rc, policy.Target{Task: task, Cluster: t.Cluster, Namespace: t.Namespace}, ms, tl)
}
