package reconciler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/slipwayhq/slipway/builder"
	"github.com/slipwayhq/slipway/internal/repofs"
	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/reconciler/apply"
	"github.com/slipwayhq/slipway/reconciler/helm"
	"github.com/slipwayhq/slipway/reconciler/kube"
	"github.com/slipwayhq/slipway/render"
	"github.com/slipwayhq/slipway/store"
)

// deployChart installs or upgrades the task's Helm release, waits for the release's objects
// to become healthy, and undoes a deploy that does not: an upgrade is rolled back to the
// previous revision (rollback: auto), a first install is uninstalled.
func (r *Runner) deployChart(ctx context.Context, rc *runContext, task string, t *pipeline.DeployChartTask, tl *taskLog) error {
	cr, err := r.openChartRelease(ctx, rc, task, t, false, tl)
	if err != nil {
		return err
	}
	ch, values, digest, cl, rel, st, log := cr.chart, cr.values, cr.digest, cr.cluster, cr.release, cr.state, cr.log
	// Policy sees what Helm would apply before anything is, the namespace included.
	if _, err := r.checkChartPolicy(ctx, rc, task, t, cl, rel, ch, values, st.Last != nil, tl); err != nil {
		return err
	}
	if t.CreateNamespace {
		if err := ensureNamespace(ctx, cl, t.Namespace, tl); err != nil {
			return err
		}
	}
	// Helm's own timeout bounds the apply of hooks and resources; health is waited for below.
	helmTimeout := max(t.Wait.Duration, time.Minute)
	var deployed *release.Release
	if st.Last == nil {
		tl.Printf("installing release %s: chart %s %s", t.Release, ch.Metadata.Name, ch.Metadata.Version)
		deployed, err = rel.Install(ctx, ch, values, helmTimeout)
		if err != nil {
			undone := false
			if deployed != nil {
				uerr := r.uninstallFailedInstall(rel, helmTimeout, tl)
				undone = uerr == nil
				err = errors.Join(err, uerr)
			}
			return r.recordFailedRelease(ctx, rc, task, t, ch, digest, deployed, undone, err)
		}
	} else {
		tl.Printf("upgrading release %s from revision %d: chart %s %s", t.Release, st.Last.Version, ch.Metadata.Name, ch.Metadata.Version)
		deployed, err = rel.Upgrade(ctx, ch, values, helmTimeout)
		if err != nil {
			if deployed != nil && st.Deployed != nil && t.Rollback == pipeline.RollbackAuto {
				err = r.rollbackRelease(ctx, rel, st.Deployed.Version, helmTimeout, err, tl)
			}
			return r.recordFailedRelease(ctx, rc, task, t, ch, digest, deployed, errors.Is(err, errRolledBack), err)
		}
	}
	tl.Printf("release %s revision %d applied", t.Release, deployed.Version)
	inv, err := releaseInventory(cl, deployed)
	if err != nil {
		return err
	}
	if _, err := r.store.SaveRevision(ctx, store.NewRevision{
		Pipeline: rc.run.Pipeline, BuildID: rc.run.BuildID, Task: task, Cluster: t.Cluster, Namespace: t.Namespace,
		Environment: t.Environment, Kind: store.DeployChart, Objects: []byte(deployed.Manifest), Inventory: inv, Status: store.RevisionApplied,
		Chart: &store.ChartRelease{Chart: ch.Metadata.Name, Version: ch.Metadata.Version, ValuesDigest: digest, ReleaseRevision: deployed.Version},
		Drift: chartDriftPolicy(t), Masks: rc.maskValues(),
	}); err != nil {
		return err
	}
	waitMessage(tl, t.Wait.Duration, t.StableFor.Duration, inv, "the release's %d objects")
	ap := &apply.Applier{Cluster: cl, Log: log, Slots: r.slots}
	// Like a YAML deploy's, a release's health wait (its stability window included) is one a
	// newer commit may supersede.
	done := rc.state.waitingForHealth(ap.Watched(inv))
	waitErr := ap.WaitStable(ctx, inv, nil, t.Wait.Duration, t.StableFor.Duration)
	done()
	if waitErr != nil && ctx.Err() == nil && !rc.state.placed(ctx, rc.run) {
		// The failed release is marked and undone below: Helm's work, so a place first.
		waitErr = errors.Join(waitErr, ctx.Err())
	}
	if waitErr == nil {
		r.markRevision(ctx, rc, task, store.RevisionHealthy, "")
		tl.Printf("release %s revision %d healthy", t.Release, deployed.Version)
		return nil
	}
	// A release revision that failed its health wait (or its stability window) is marked
	// failed in Helm too, so it is never the deployed revision a later rollback goes back to.
	if err := rel.MarkFailed(deployed, "Slipway: "+firstLine(waitErr.Error())); err != nil {
		tl.Printf("%v", err)
	}
	switch {
	case ctx.Err() != nil:
		// Cancelled (superseded by a newer commit, or the daemon stopping): the next run
		// upgrades from here, so undoing this revision first would only add churn.
	case st.Last == nil:
		if err := r.uninstallFailedInstall(rel, helmTimeout, tl); err != nil {
			r.markRevision(ctx, rc, task, store.RevisionFailed, waitErr.Error())
			return errors.Join(waitErr, err)
		}
		// Nothing of it is left on the cluster: it must not count as the task's current
		// revision, or drift correction would bring its objects back.
		r.markRevision(ctx, rc, task, store.RevisionRolledBack, "first install uninstalled after: "+waitErr.Error())
		return waitErr
	case t.Rollback == pipeline.RollbackAuto && st.Deployed != nil:
		err := r.rollbackRelease(ctx, rel, st.Deployed.Version, helmTimeout, waitErr, tl)
		status := store.RevisionRolledBack
		if !errors.Is(err, errRolledBack) {
			status = store.RevisionFailed
		}
		r.markRevision(ctx, rc, task, status, err.Error())
		return err
	}
	r.markRevision(ctx, rc, task, store.RevisionFailed, waitErr.Error())
	return waitErr
}

// chartRelease is a deploy-chart task's chart, merged values and release, as a deploy and a
// preview both start from.
type chartRelease struct {
	chart   *chart.Chart
	values  map[string]any
	digest  string
	cluster *kube.Cluster
	release *helm.Release
	state   helm.State
	log     *logrus.Entry
}

// openChartRelease loads the task's chart and values and reads its release. A deploy
// (readOnly false) unlocks a revision an interrupted operation left pending; a preview
// changes nothing.
func (r *Runner) openChartRelease(ctx context.Context, rc *runContext, task string, t *pipeline.DeployChartTask, readOnly bool, tl *taskLog) (*chartRelease, error) {
	vars, err := rc.varsFor(t.Environment)
	if err != nil {
		return nil, err
	}
	ch, err := r.loadDeployChart(ctx, rc, t, vars)
	if err != nil {
		return nil, err
	}
	values, err := chartValues(rc.files(), rc.limits.Text(), t, vars)
	if err != nil {
		return nil, err
	}
	digest, err := helm.ValuesDigest(values)
	if err != nil {
		return nil, err
	}
	cl, err := r.clusters.Get(ctx, t.Cluster)
	if err != nil {
		return nil, err
	}
	log := rc.log.WithField("task", task)
	rel, err := helm.Open(cl, t.Namespace, t.Release, t.MaxHistory, func(f string, a ...any) {
		log.Debug(rc.mask(fmt.Sprintf(f, a...)))
	})
	if err != nil {
		return nil, err
	}
	// The release's objects carry the owner labels YAML deploys' objects carry, so the drift
	// watcher's label selector covers them too.
	rel.Owner = apply.OwnerOf(store.TaskRef{Pipeline: rc.run.Pipeline, Task: task})
	var st helm.State
	if readOnly {
		st, err = rel.State(ctx)
	} else {
		st, err = rel.Prepare(ctx)
	}
	if err != nil {
		return nil, err
	}
	if st.Last != nil {
		// An upgrade takes every object of the release: it must be the task's own release.
		if err := r.checkReleaseOwner(ctx, rc, task, t, rel.Owner, st.Last); err != nil {
			return nil, err
		}
	}
	if st.Unlocked > 0 {
		tl.Printf("release %s revision %d was left pending by an interrupted operation: marked it failed to proceed", t.Release, st.Unlocked)
	}
	return &chartRelease{chart: ch, values: values, digest: digest, cluster: cl, release: rel, state: st, log: log}, nil
}

// checkReleaseOwner refuses to upgrade a release that is not the task's: one installed by
// hand, by another tool, or by another task (of this or another repository). The release is
// the task's when its newest revision's manifest is exactly what the task's current
// revision on the cluster recorded, or when every object of that manifest carries the
// task's identity (the post-renderer stamps it; apply.Owner.Admit decides, without adopt,
// the task's current revision on the cluster telling old-labelled objects apart).
// Objects Helm would create beside an existing release are Helm's own check: it refuses
// any existing object without this release's ownership metadata.
func (r *Runner) checkReleaseOwner(ctx context.Context, rc *runContext, task string, t *pipeline.DeployChartTask, owner apply.Owner, last *release.Release) error {
	cur, err := r.store.CurrentRevisionOn(ctx, rc.run.Pipeline, task, t.Cluster)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return releaseOwned(owner, cur, t.Namespace, last)
}

// releaseOwned is checkReleaseOwner's decision; cur is the task's current revision on the
// cluster (zero when it has none).
func releaseOwned(owner apply.Owner, cur store.Revision, namespace string, last *release.Release) error {
	inPrevious := map[string]bool{}
	for _, e := range cur.Inventory {
		inPrevious[e.Key()] = true
	}
	ms, err := render.ParseManifests("release "+last.Name, []byte(last.Manifest))
	if err != nil {
		return fmt.Errorf("read release %s/%s manifest: %w", namespace, last.Name, err)
	}
	refuse := func(why string) error {
		return fmt.Errorf("release %s/%s (revision %d) is not this task's: %s; %w: Slipway does not take over a release it did not install (uninstall it, or deploy under another release name)",
			namespace, last.Name, last.Version, why, apply.ErrNotOwned)
	}
	if cur.Kind == store.DeployChart && cur.Namespace == namespace && string(cur.Objects) == last.Manifest {
		// Exactly what the task's current revision on the cluster deployed: releases
		// installed before the post-renderer stamped owners, and ones without objects.
		return nil
	}
	if len(ms) == 0 {
		return refuse("it has no objects to tell its owner by, and this task did not deploy it")
	}
	for _, m := range ms {
		o := m.Object
		gvk := o.GroupVersionKind()
		e := store.InventoryEntry{Group: gvk.Group, Kind: gvk.Kind, Namespace: o.GetNamespace(), Name: o.GetName()}
		listed := inPrevious[e.Key()]
		if e.Namespace == "" {
			// The manifest leaves namespaced objects' namespace to the release.
			e.Namespace = namespace
			listed = listed || inPrevious[e.Key()]
		}
		_, err := owner.Admit(o.GetLabels(), o.GetAnnotations(), listed, false)
		var ne *apply.NotOwnedError
		switch {
		case errors.As(err, &ne) && ne.Holder == "":
			return refuse(render.ObjectName(o) + " in its manifest carries no Slipway owner")
		case errors.As(err, &ne):
			return refuse(render.ObjectName(o) + " in its manifest belongs to " + ne.Holder)
		case err != nil:
			return err
		}
	}
	return nil
}

// recordFailedRelease stores a revision for a deploy that Helm itself failed, so the run's
// history shows what was attempted, and returns cause. undone says the release was rolled
// back or uninstalled afterwards: the revision is then recorded rolled_back, so it never
// counts as what is on the cluster (the drift watcher would otherwise restore it).
func (r *Runner) recordFailedRelease(ctx context.Context, rc *runContext, task string, t *pipeline.DeployChartTask,
	ch *chart.Chart, digest string, rel *release.Release, undone bool, cause error) error {
	nr := store.NewRevision{
		Pipeline: rc.run.Pipeline, BuildID: rc.run.BuildID, Task: task, Cluster: t.Cluster, Namespace: t.Namespace,
		Environment: t.Environment, Kind: store.DeployChart, Status: store.RevisionFailed, Reason: rc.mask(cause.Error()),
		Chart: &store.ChartRelease{Chart: ch.Metadata.Name, Version: ch.Metadata.Version, ValuesDigest: digest},
		Drift: chartDriftPolicy(t), Masks: rc.maskValues(),
	}
	if rel != nil {
		nr.Objects, nr.Chart.ReleaseRevision = []byte(rel.Manifest), rel.Version
	}
	ctx = context.WithoutCancel(ctx)
	if _, err := r.store.SaveRevision(ctx, nr); err != nil {
		rc.log.WithError(err).WithField("task", task).Error("record failed chart revision")
		return cause
	}
	if undone {
		if _, err := r.store.TransitionRevision(ctx, rc.run.Pipeline, rc.run.BuildID, task, store.RevisionFailed,
			store.RevisionRolledBack, nr.Reason); err != nil {
			rc.log.WithError(err).WithField("task", task).Error("record revision status")
		}
	}
	return cause
}

// chartDriftPolicy is the task's drift settings as the revision keeps them for the drift
// watcher.
func chartDriftPolicy(t *pipeline.DeployChartTask) store.DriftPolicy {
	p := store.DriftPolicy{Mode: string(t.Drift), Health: string(t.HealthWatch)}
	for _, r := range t.DriftIgnore {
		p.Ignore = append(p.Ignore, store.DriftIgnoreRule{Kind: r.Kind, Name: r.Name, Paths: r.Paths})
	}
	return p
}

// errRolledBack marks a deploy error after which the release was rolled back successfully.
var errRolledBack = errors.New("rolled back")

// rollbackRelease rolls back to revision to after cause, and says so in the run's error.
func (r *Runner) rollbackRelease(ctx context.Context, rel *helm.Release, to int, timeout time.Duration, cause error, tl *taskLog) error {
	tl.Printf("rolling release %s back to revision %d", rel.Name, to)
	back, err := rel.Rollback(context.WithoutCancel(ctx), to, timeout)
	if err != nil {
		return errors.Join(cause, err)
	}
	tl.Printf("release %s rolled back to revision %d (now revision %d)", rel.Name, to, back.Version)
	return fmt.Errorf("%w\n%w to release revision %d", cause, errRolledBack, to)
}

// uninstallFailedInstall removes a first install that failed, so the next run installs
// afresh instead of upgrading a release that never worked.
func (r *Runner) uninstallFailedInstall(rel *helm.Release, timeout time.Duration, tl *taskLog) error {
	if err := rel.Uninstall(timeout); err != nil {
		return err
	}
	tl.Printf("first install of release %s failed: uninstalled it", rel.Name)
	return nil
}

// loadDeployChart is the chart from the chart repository (chart + version) or the checkout.
func (r *Runner) loadDeployChart(ctx context.Context, rc *runContext, t *pipeline.DeployChartTask, vars render.Map) (*chart.Chart, error) {
	if t.ChartDir != "" {
		dir, cleanup, err := copyChart(rc.files(), t.ChartDir, rc.limits.Text(), []string{"values.yaml"})
		if err != nil {
			return nil, err
		}
		defer cleanup()
		// Like publish-chart, the chart's values.yaml is substituted, so one chart folder
		// reads the same whether it is deployed from the checkout or published first.
		if err := substituteFile(dir, "values.yaml", vars); err != nil && !errors.Is(err, errNoSuchFile) {
			return nil, fmt.Errorf("substitute: %w", render.InFile(t.ChartDir+"/values.yaml", err))
		}
		ch, err := loader.LoadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("load chart %s: %w", t.ChartDir, err)
		}
		return ch, nil
	}
	version, err := render.Substitute(t.Version, vars)
	if err != nil {
		return nil, fmt.Errorf("version: %w", err)
	}
	repo, err := r.chartRepository(t.Repository)
	if err != nil {
		return nil, err
	}
	reg, err := r.chartRegistry()
	if err != nil {
		return nil, err
	}
	ref := builder.ChartRef{Repository: repo, Name: t.Chart, Version: version}
	data, _, err := reg.PullChart(ctx, ref)
	if err != nil {
		return nil, err
	}
	ch, err := builder.LoadChartPackage(data)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", ref, err)
	}
	if ch.Metadata.Name != t.Chart || ch.Metadata.Version != version {
		return nil, fmt.Errorf("chart %s holds %s %s", ref, ch.Metadata.Name, ch.Metadata.Version)
	}
	return ch, nil
}

// chartValues merges the values files in order, then the inline values, all substituted.
func chartValues(repo *repofs.Repo, limits repofs.TextLimits, t *pipeline.DeployChartTask, vars render.Map) (map[string]any, error) {
	out := map[string]any{}
	for _, f := range t.ValuesFiles {
		raw, err := repo.ReadText(f, limits)
		if err != nil {
			return nil, fmt.Errorf("valuesFiles: %w", err)
		}
		text, err := render.SubstituteYAML(raw, vars)
		if err != nil {
			return nil, fmt.Errorf("valuesFiles: %w", render.InFile(f, err))
		}
		var v map[string]any
		if err := yaml.Unmarshal(text, &v); err != nil {
			return nil, fmt.Errorf("valuesFiles %s: %w", f, err)
		}
		helm.MergeValues(out, v)
	}
	inline, err := helm.SubstituteValues(t.Values, vars, "values")
	if err != nil {
		return nil, err
	}
	helm.MergeValues(out, inline)
	return out, nil
}

func ensureNamespace(ctx context.Context, cl *kube.Cluster, ns string, tl *taskLog) error {
	_, err := cl.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{FieldManager: kube.FieldManager})
	switch {
	case err == nil:
		tl.Printf("created namespace %s", ns)
	case !apierrors.IsAlreadyExists(err):
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	return nil
}

// releaseInventory lists the objects in the release's manifest, namespaced ones in the
// release's namespace when the chart left it out.
func releaseInventory(cl *kube.Cluster, rel *release.Release) ([]store.InventoryEntry, error) {
	ms, err := render.ParseManifests("release "+rel.Name, []byte(rel.Manifest))
	if err != nil {
		return nil, fmt.Errorf("read release %s manifest: %w", rel.Name, err)
	}
	inv := make([]store.InventoryEntry, 0, len(ms))
	for _, m := range ms {
		o := m.Object
		gvk := o.GroupVersionKind()
		ns := o.GetNamespace()
		if ns == "" {
			namespaced, err := cl.Namespaced(gvk)
			if err != nil {
				return nil, err
			}
			if namespaced {
				ns = rel.Namespace
			}
		}
		inv = append(inv, store.InventoryEntry{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: ns, Name: o.GetName()})
	}
	return inv, nil
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}
