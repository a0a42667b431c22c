package reconciler

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/reconciler/apply"
	"github.com/slipwayhq/slipway/render"
	"github.com/slipwayhq/slipway/store"
)

// deployYAML renders the task's manifests, dry-runs the whole set, applies it, stores the
// revision, prunes what the previous revision had and this one does not, and waits for health.
func (r *Runner) deployYAML(ctx context.Context, rc *runContext, task string, t *pipeline.DeployYAMLTask, tl *taskLog) error {
	ref, id := rc.run.Pipeline, rc.run.BuildID
	ms, err := render.LoadManifests(rc.workspace, t.Path, rc.varsSnapshot())
	if err != nil {
		return fmt.Errorf("render: %w", err)
	}
	tl.Printf("rendered %d objects from %s", len(ms), t.Path)
	cl, err := r.Clusters.Get(ctx, t.Cluster)
	if err != nil {
		return err
	}
	if err := render.SetNamespaces(ms, cl, render.NamespaceOptions{Namespace: t.Namespace, AllowNamespaces: t.AllowedNamespaces}); err != nil {
		return fmt.Errorf("render: %w", err)
	}
	if t.PinImages {
		if n := render.PinImages(ms, rc.pinnedImages()); n > 0 {
			tl.Printf("pinned %d image references to the digests built in this run", n)
		}
	}
	ap := &apply.Applier{Cluster: cl, Log: rc.log.WithField("task", task)}
	previous, err := r.lastInventory(ctx, ref, task)
	if err != nil {
		return err
	}
	owner := apply.OwnerOf(store.TaskRef{Pipeline: ref, Task: task})
	prune := t.Prune == nil || *t.Prune
	res, inventory, pruneErr, err := applySet(ctx, ap, ms, owner, previous, prune, tl)
	if err != nil {
		return err
	}
	objects, err := encodeObjects(ms)
	if err != nil {
		return err
	}
	if _, err := r.Store.SaveRevision(ctx, store.NewRevision{
		Pipeline: ref, BuildID: id, Task: task, Cluster: t.Cluster, Namespace: t.Namespace,
		Kind: store.DeployYAML, Objects: objects, Inventory: inventory, Status: store.RevisionApplied,
		Drift: driftPolicy(t),
	}); err != nil {
		return err
	}
	if pruneErr != nil {
		r.markRevision(ctx, rc, task, store.RevisionFailed, pruneErr.Error())
		return pruneErr
	}
	if t.Wait.Duration > 0 {
		tl.Printf("waiting up to %s for %d objects to become healthy", t.Wait.Duration, len(res.Inventory))
	}
	waited := inHealthWait(ctx)
	err = ap.Wait(ctx, res.Inventory, t.Wait.Duration)
	waited()
	if err != nil {
		if t.Rollback == pipeline.RollbackManual || ctx.Err() != nil {
			r.markRevision(ctx, rc, task, store.RevisionFailed, err.Error())
			return err
		}
		return r.rollbackYAML(ctx, rc, task, t, ap, owner, inventory, tl, err)
	}
	r.markRevision(ctx, rc, task, store.RevisionHealthy, "")
	tl.Printf("all %d objects healthy", len(res.Inventory))
	return nil
}

// applySet plans, dry-runs as a whole, applies and prunes one set of manifests. It returns
// the apply result, the inventory to record (applied objects plus any that failed to be
// pruned, so a later run retries) and the prune error apart, since what was applied stands.
func applySet(ctx context.Context, ap *apply.Applier, ms []render.Manifest, owner apply.Owner, previous []store.InventoryEntry, prune bool, tl *taskLog) (*apply.Result, []store.InventoryEntry, error, error) {
	// The plan skips objects the previous revision applied exactly so and nobody changed.
	plan, err := ap.Plan(ctx, ms, owner, previous)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := ap.DryRun(ctx, plan); err != nil {
		return nil, nil, nil, err
	}
	if unchanged := plan.Len() - plan.Changed(); unchanged > 0 {
		tl.Printf("server-side dry-run of %d objects passed (%d unchanged since the last deploy)", plan.Changed(), unchanged)
	} else {
		tl.Printf("server-side dry-run of %d objects passed", plan.Len())
	}
	res, err := ap.Apply(ctx, plan)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, c := range res.Changes {
		tl.Printf("%s %s", c.Object, c.Action)
	}
	inventory := res.Inventory
	if !prune {
		return res, inventory, nil, nil
	}
	deleted, kept, pruneErr := ap.Prune(ctx, previous, inventory, owner)
	for _, e := range deleted {
		tl.Printf("%s pruned", e)
	}
	return res, append(inventory, kept...), pruneErr, nil
}

// rollbackYAML answers a failed health wait: it re-applies the task's last healthy
// revision, prunes what the failed one added, waits for health again, and marks the failed
// revision rolled back. The task still fails, saying where it went back to.
func (r *Runner) rollbackYAML(ctx context.Context, rc *runContext, task string, t *pipeline.DeployYAMLTask, ap *apply.Applier, owner apply.Owner, failed []store.InventoryEntry, tl *taskLog, cause error) error {
	ref := rc.run.Pipeline
	target, err := r.Store.LatestRevision(ctx, ref, task, store.RevisionHealthy)
	if errors.Is(err, store.ErrNotFound) {
		r.markRevision(ctx, rc, task, store.RevisionFailed, cause.Error())
		return fmt.Errorf("%w\nno earlier healthy revision to roll back to: the objects are left as they are for inspection", cause)
	}
	if err != nil {
		r.markRevision(ctx, rc, task, store.RevisionFailed, cause.Error())
		return fmt.Errorf("%w\nrollback: %v", cause, err)
	}
	tl.Printf("health wait failed; rolling back to the revision of BUILD_ID %d", target.BuildID)
	ms, err := render.ParseManifests(fmt.Sprintf("revision of BUILD_ID %d", target.BuildID), target.Objects)
	if err == nil {
		var res *apply.Result
		var pruneErr error
		res, _, pruneErr, err = applySet(ctx, ap, ms, owner, failed, true, tl)
		if err == nil {
			err = pruneErr
		}
		if err == nil {
			err = ap.Wait(ctx, res.Inventory, t.Wait.Duration)
		}
	}
	if err != nil {
		r.markRevision(ctx, rc, task, store.RevisionFailed, cause.Error())
		return fmt.Errorf("%w\nrollback to BUILD_ID %d failed: %v", cause, target.BuildID, err)
	}
	msg := fmt.Sprintf("rolled back to BUILD_ID %d", target.BuildID)
	r.markRevision(ctx, rc, task, store.RevisionRolledBack, msg+" after: "+cause.Error())
	tl.Printf("%s: its objects are healthy again", msg)
	return fmt.Errorf("%s: %w", msg, cause)
}

func (r *Runner) markRevision(ctx context.Context, rc *runContext, task string, to store.RevisionStatus, reason string) {
	_, err := r.Store.TransitionRevision(context.WithoutCancel(ctx), rc.run.Pipeline, rc.run.BuildID, task,
		store.RevisionApplied, to, rc.mask(reason))
	if err != nil {
		rc.log.WithError(err).WithField("task", task).Error("record revision status")
	}
}

// lastInventory is what the newest earlier revision still on the cluster put there, healthy
// or not: that is what prune compares with.
func (r *Runner) lastInventory(ctx context.Context, ref store.PipelineRef, task string) ([]store.InventoryEntry, error) {
	newest, err := r.newestRevision(ctx, ref, task)
	if err != nil || newest == nil {
		return nil, err
	}
	return newest.Inventory, nil
}

// encodeObjects serialises the rendered set as a multi-document YAML stream, the revision's
// record of exactly what was applied.
func encodeObjects(ms []render.Manifest) ([]byte, error) {
	var b strings.Builder
	for _, m := range ms {
		y, err := yaml.Marshal(m.Object.Object)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", m, err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return []byte(b.String()), nil
}

// driftPolicy is the task's drift settings as the revision keeps them for the drift watcher.
func driftPolicy(t *pipeline.DeployYAMLTask) store.DriftPolicy {
	p := store.DriftPolicy{Mode: string(t.Drift)}
	for _, r := range t.DriftIgnore {
		p.Ignore = append(p.Ignore, store.DriftIgnoreRule{Kind: r.Kind, Name: r.Name, Paths: r.Paths})
	}
	return p
}
