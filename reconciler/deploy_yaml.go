package reconciler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/policy"
	"github.com/slipwayhq/slipway/reconciler/apply"
	"github.com/slipwayhq/slipway/render"
	"github.com/slipwayhq/slipway/store"
)

// deployYAML renders the task's manifests and deploys them as a new revision; when the
// health wait fails it rolls back to the task's last healthy revision (rollback: auto).
func (r *Runner) deployYAML(ctx context.Context, rc *runContext, task string, t *pipeline.DeployYAMLTask, tl *taskLog) error {
	ms, err := r.renderYAML(ctx, rc, task, t, tl)
	if err != nil {
		return err
	}
	objects, err := render.EncodeManifests(ms)
	if err != nil {
		return err
	}
	inventory, err := r.deployRevision(ctx, rc, revisionSpec{task: task, environment: t.Environment, cluster: t.Cluster, namespace: t.Namespace,
		manifests: ms, objects: objects, prune: t.Prune == nil || *t.Prune, adopt: t.Adopt, wait: t.Wait.Duration, stableFor: t.StableFor.Duration,
		drift: driftPolicy(t)}, tl)
	var unhealthy *healthError
	if !errors.As(err, &unhealthy) {
		return err
	}
	if t.Rollback == pipeline.RollbackManual {
		r.markRevision(ctx, rc, task, store.RevisionFailed, err.Error())
		return err
	}
	return r.rollbackYAML(ctx, rc, task, t, inventory, tl, unhealthy.err)
}

// renderYAML renders a deploy-yaml task's manifests as a deploy applies them (namespaces
// set, images pinned) and checks them against policy. Deploys and previews both come here.
func (r *Runner) renderYAML(ctx context.Context, rc *runContext, task string, t *pipeline.DeployYAMLTask, tl *taskLog) ([]render.Manifest, error) {
	vars, err := rc.varsFor(t.Environment)
	if err != nil {
		return nil, err
	}
	// Validation let the path reference only variables fixed in the pipeline file.
	path, err := render.Substitute(t.Path, vars)
	if err != nil {
		return nil, fmt.Errorf("render: path: %w", err)
	}
	ms, err := render.LoadManifests(rc.files(), path, rc.limits.Text(), vars)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	tl.Printf("rendered %d objects from %s", len(ms), path)
	cl, err := r.clusters.Get(ctx, t.Cluster)
	if err != nil {
		return nil, err
	}
	if err := render.SetNamespaces(ms, cl, render.NamespaceOptions{Namespace: t.Namespace, AllowNamespaces: t.AllowedNamespaces}); err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	if t.PinImages {
		if n := render.PinImages(ms, rc.pinnedImages()); n > 0 {
			tl.Printf("pinned %d image references to the digests built in this run", n)
		}
	}
	target := policy.Target{Task: task, Cluster: t.Cluster, Namespace: t.Namespace, Namespaces: t.AllowedNamespaces}
	if err := r.checkPolicy(rc, target, ms, tl); err != nil {
		return nil, err
	}
	return ms, nil
}

// revisionSpec is one task's set of objects for one cluster, deployed as a revision.
type revisionSpec struct {
	task, cluster, namespace string
	environment              string // the pipeline environment deployed to, if any
	manifests                []render.Manifest
	objects                  []byte // the manifests as the revision stores them
	prune                    bool
	adopt                    bool // take over existing objects without the task's identity (Owner.Admit)
	wait                     time.Duration
	stableFor                time.Duration // the stability window, part of wait
	drift                    store.DriftPolicy
}

// healthError is a deploy whose objects were applied and stored but did not become
// healthy; the revision stays applied for the caller to mark or roll back.
type healthError struct{ err error }

func (e *healthError) Error() string { return e.err.Error() }
func (e *healthError) Unwrap() error { return e.err }

// deployRevision applies one set of objects as a new revision of the run's task: plan,
// dry-run the whole set (and check that every existing object may be taken), apply, prune
// what the task's previous revision on the same cluster had and this one does not, store
// the revision, then wait for health (the run says so, so a newer commit may supersede
// it). It returns the revision's inventory; a failed health wait is a *healthError and
// leaves the revision applied. Deploys and rollbacks both come here.
func (r *Runner) deployRevision(ctx context.Context, rc *runContext, spec revisionSpec, tl *taskLog) ([]store.InventoryEntry, error) {
	ref := rc.run.Pipeline
	cl, err := r.clusters.Get(ctx, spec.cluster)
	if err != nil {
		return nil, err
	}
	ap := &apply.Applier{Cluster: cl, Log: rc.log.WithField("task", spec.task), Slots: r.slots, Cache: cl}
	owner := ownerOf(ref, spec.task)
	basis, err := r.store.DeployBasis(ctx, ref, spec.task, spec.cluster)
	if err != nil {
		return nil, err
	}
	previous := basis.Previous()
	reportMove(rc, spec, basis.Newest, tl)
	res, err := applySet(ctx, ap, spec.manifests, owner, previous, spec.adopt, tl)
	if err != nil {
		return nil, err
	}
	inventory := res.Inventory
	var pruneErr error
	if spec.prune {
		var kept []store.InventoryEntry
		kept, pruneErr = pruneSet(ctx, ap, previous, inventory, owner, tl)
		// What could not be pruned stays in the inventory, so a later run retries.
		inventory = append(inventory, kept...)
	} else {
		reportUnpruned(tl, previous, inventory)
	}
	// A set nothing was applied to, whose health the shared watch already shows, is
	// recorded healthy at once: one write instead of two, and no wait.
	healthy := pruneErr == nil && res.Untouched() && ap.HealthyUnchanged(res.Inventory, spec.wait, spec.stableFor)
	status := store.RevisionApplied
	if healthy {
		status = store.RevisionHealthy
	}
	// The task's lines so far ride with the revision: a deploy that ends right after it
	// (the no-op's) makes no write for its log in between.
	err = tl.riding(func(lines []store.LogLine) error {
		_, err := r.store.SaveRevision(ctx, store.NewRevision{
			Pipeline: ref, BuildID: rc.run.BuildID, Task: spec.task, Cluster: spec.cluster, Namespace: spec.namespace, Environment: spec.environment,
			Kind: store.DeployYAML, Objects: spec.objects, Inventory: inventory, Status: status,
			Drift: spec.drift, Masks: rc.maskValues(), Prune: spec.prune, Logs: lines,
		})
		return err
	})
	if err != nil {
		return inventory, err
	}
	if healthy {
		tl.Printf("all %d objects healthy", len(res.Inventory))
		return inventory, nil
	}
	if pruneErr != nil {
		r.markRevision(ctx, rc, spec.task, store.RevisionFailed, pruneErr.Error())
		return inventory, pruneErr
	}
	// The wait may last minutes, its run's place given up, beside hundreds of others: it
	// keeps what newHealthWait takes. Neither spec nor res is used past this line, so the
	// rendered set, its encoding and the apply's result are garbage while it waits (a use
	// of either after the wait would keep them all reachable).
	return inventory, r.awaitHealth(ctx, rc, ap, newHealthWait(spec, res), tl)
}

// healthWait is what a deploy's health wait keeps: the applied set's inventory and what
// the apply saw of it. Nothing of the rendered manifests, their encoding or the plan.
type healthWait struct {
	task            string
	inventory       []store.InventoryEntry // the set as applied (without what prune kept)
	seen            apply.Seen             // the generations the apply answered
	untouched       bool                   // nothing was applied: the shared watch's view holds
	wait, stableFor time.Duration
}

// newHealthWait takes from a deploy what its health wait needs.
func newHealthWait(spec revisionSpec, res *apply.Result) healthWait {
	return healthWait{task: spec.task, inventory: res.Inventory, seen: res.Seen, untouched: res.Untouched(),
		wait: spec.wait, stableFor: spec.stableFor}
}

// awaitHealth waits for a stored revision's objects to become healthy (and stay so for
// the stability window) and records how it ended; an unhealthy set is a *healthError.
func (r *Runner) awaitHealth(ctx context.Context, rc *runContext, ap *apply.Applier, hw healthWait, tl *taskLog) error {
	waitMessage(tl, hw.wait, hw.stableFor, hw.inventory, "%d objects")
	// The stability window is part of the health wait: a newer commit may supersede it too.
	done := rc.state.waitingForHealth(ap.Watched(hw.inventory))
	var err error
	if hw.untouched {
		// Nothing was applied: the shared watch's view of the objects' health holds.
		err = ap.WaitStableUnchanged(ctx, hw.inventory, hw.wait, hw.stableFor)
	} else {
		err = ap.WaitStable(ctx, hw.inventory, hw.seen, hw.wait, hw.stableFor)
	}
	done()
	if errors.Is(err, apply.ErrUnhealthy) && ctx.Err() == nil {
		return &healthError{err: err}
	}
	if err != nil {
		// Cancelled, or the objects could not even be looked at: nothing to roll back for.
		r.markRevision(ctx, rc, hw.task, store.RevisionFailed, err.Error())
		return err
	}
	r.markRevision(ctx, rc, hw.task, store.RevisionHealthy, "")
	tl.Printf("all %d objects healthy", len(hw.inventory))
	return nil
}

// waitMessage says what the health wait is about to wait for, window included; what names
// the objects ("%d objects", "the release's %d objects").
func waitMessage(tl *taskLog, wait, stableFor time.Duration, inv []store.InventoryEntry, what string) {
	objects := fmt.Sprintf(what, len(inv))
	switch {
	case wait <= 0:
	case stableFor > 0 && apply.HasWorkloads(inv):
		tl.Printf("waiting up to %s for %s to become healthy and stay so for %s", wait, objects, stableFor)
	default:
		tl.Printf("waiting up to %s for %s to become healthy", wait, objects)
	}
}

// ownerOf is the identity stamped on the objects a pipeline's task applies.
func ownerOf(ref store.PipelineRef, task string) apply.Owner {
	return apply.OwnerOf(store.TaskRef{Pipeline: ref, Task: task})
}

// applySet plans, dry-runs as a whole and applies one set of manifests; adopt lets it take
// over existing objects that are not the owner's (apply.Owner.Admit).
func applySet(ctx context.Context, ap *apply.Applier, ms []render.Manifest, owner apply.Owner, previous []store.InventoryEntry, adopt bool, tl *taskLog) (*apply.Result, error) {
	// The plan skips objects the previous revision applied exactly so and nobody changed.
	plan, err := ap.Plan(ctx, ms, owner, previous)
	if err != nil {
		return nil, err
	}
	plan.Adopt = adopt
	if err := ap.DryRun(ctx, plan); err != nil {
		return nil, err
	}
	if unchanged := plan.Len() - plan.Changed(); unchanged > 0 {
		tl.Printf("server-side dry-run of %d objects passed (%d unchanged since the last deploy)", plan.Changed(), unchanged)
	} else {
		tl.Printf("server-side dry-run of %d objects passed", plan.Len())
	}
	res, err := ap.Apply(ctx, plan)
	if err != nil {
		return nil, err
	}
	for _, c := range res.Changes {
		if c.Adopted {
			tl.Printf("%s %s: adopted (it existed without this task's owner label)", c.Object, c.Action)
			continue
		}
		tl.Printf("%s %s", c.Object, c.Action)
	}
	return res, nil
}

// pruneSet deletes what previous holds and current does not (only objects carrying the
// owner's labels). It returns what could not be deleted.
func pruneSet(ctx context.Context, ap *apply.Applier, previous, current []store.InventoryEntry, owner apply.Owner, tl *taskLog) ([]store.InventoryEntry, error) {
	deleted, kept, err := ap.Prune(ctx, previous, current, owner)
	for _, e := range deleted {
		tl.Printf("%s pruned", e)
	}
	return kept, err
}

// rollbackYAML answers a failed health wait: it re-applies the task's last healthy
// revision, prunes what the failed one added, waits for health again, and marks the failed
// revision rolled back. The task still fails, saying where it went back to.
func (r *Runner) rollbackYAML(ctx context.Context, rc *runContext, task string, t *pipeline.DeployYAMLTask, failed []store.InventoryEntry, tl *taskLog, cause error) error {
	ref := rc.run.Pipeline
	target, err := r.store.LatestRevision(ctx, ref, task, store.RevisionHealthy)
	if errors.Is(err, store.ErrNotFound) {
		r.markRevision(ctx, rc, task, store.RevisionFailed, cause.Error())
		return fmt.Errorf("%w\nno earlier healthy revision to roll back to: the objects are left as they are for inspection", cause)
	}
	if err != nil {
		r.markRevision(ctx, rc, task, store.RevisionFailed, cause.Error())
		return fmt.Errorf("%w\nrollback: %w", cause, err)
	}
	if target.Cluster != t.Cluster {
		// Its objects are on another cluster: re-applying them here would deploy what was
		// never deployed here, and pruning by the failed inventory's names would be wrong.
		r.markRevision(ctx, rc, task, store.RevisionFailed, cause.Error())
		return fmt.Errorf("%w\nthe last healthy revision (BUILD_ID %d) is on cluster %s, not %s: no rollback across clusters; the objects are left as they are for inspection",
			cause, target.BuildID, target.Cluster, t.Cluster)
	}
	tl.Printf("health wait failed; rolling back to the revision of BUILD_ID %d", target.BuildID)
	// prune: false, now or when the target was deployed, holds for the rollback too.
	prune := (t.Prune == nil || *t.Prune) && target.Prune
	err = r.restoreRevision(ctx, rc, target, failed, prune, t.Adopt, t.Wait.Duration, t.StableFor.Duration, tl)
	if err != nil {
		r.markRevision(ctx, rc, task, store.RevisionFailed, cause.Error())
		return fmt.Errorf("%w\nrollback to BUILD_ID %d failed: %w", cause, target.BuildID, err)
	}
	msg := fmt.Sprintf("rolled back to BUILD_ID %d", target.BuildID)
	r.markRevision(ctx, rc, task, store.RevisionRolledBack, msg+" after: "+cause.Error())
	tl.Printf("%s: its objects are healthy again", msg)
	return fmt.Errorf("%s: %w", msg, cause)
}

// restoreRevision puts a healthy revision's objects back in place of a failed deploy's,
// without recording a new revision: the failed one is marked rolled back instead.
func (r *Runner) restoreRevision(ctx context.Context, rc *runContext, target store.Revision, failed []store.InventoryEntry, prune, adopt bool, wait, stableFor time.Duration, tl *taskLog) error {
	if !rc.state.placed(ctx, rc.run) {
		return ctx.Err()
	}
	rc.addMasks(target.Masks)
	ms, err := render.ParseManifests(fmt.Sprintf("revision of BUILD_ID %d", target.BuildID), target.Objects)
	if err != nil {
		return err
	}
	cl, err := r.clusters.Get(ctx, target.Cluster)
	if err != nil {
		return err
	}
	ap := &apply.Applier{Cluster: cl, Log: rc.log.WithField("task", target.Task), Slots: r.slots, Cache: cl}
	owner := ownerOf(rc.run.Pipeline, target.Task)
	res, err := applySet(ctx, ap, ms, owner, failed, adopt, tl)
	if err != nil {
		return err
	}
	if prune {
		if _, err := pruneSet(ctx, ap, failed, res.Inventory, owner, tl); err != nil {
			return err
		}
	} else {
		reportUnpruned(tl, failed, res.Inventory)
	}
	// Held to the same window as the deploy: "healthy again" means the same as "healthy".
	return ap.WaitStable(ctx, res.Inventory, res.Seen, wait, stableFor)
}

func (r *Runner) markRevision(ctx context.Context, rc *runContext, task string, to store.RevisionStatus, reason string) {
	_, err := r.store.TransitionRevision(context.WithoutCancel(ctx), rc.run.Pipeline, rc.run.BuildID, task,
		store.RevisionApplied, to, rc.mask(reason))
	if err != nil {
		rc.log.WithError(err).WithField("task", task).Error("record revision status")
	}
}

// lastInventory is what the task's newest earlier revision on the cluster, healthy or not,
// put there: that is what prune compares with (store.DeployBasis.Previous).
func (r *Runner) lastInventory(ctx context.Context, ref store.PipelineRef, task, cluster string) ([]store.InventoryEntry, error) {
	basis, err := r.store.DeployBasis(ctx, ref, task, cluster)
	if err != nil {
		return nil, err
	}
	return basis.Previous(), nil
}

// reportMove says, in the task's log, when the task's newest revision (newest, nil when
// none) is on another cluster and applied something there: the task moved, and what it
// applied there stays there, not pruned.
func reportMove(rc *runContext, spec revisionSpec, newest *store.Revision, tl *taskLog) {
	if newest == nil || newest.Cluster == spec.cluster || len(newest.Inventory) == 0 {
		return
	}
	tl.Printf("task moved from cluster %s to %s: the %d objects BUILD_ID %d applied on %s are left there, not pruned (delete them there if they are no longer wanted)",
		newest.Cluster, spec.cluster, len(newest.Inventory), newest.BuildID, newest.Cluster)
	for _, e := range newest.Inventory {
		tl.Printf("  left on %s: %s", newest.Cluster, e)
	}
	rc.log.WithFields(logrus.Fields{"task": spec.task, "from": newest.Cluster, "to": spec.cluster,
		"objects": len(newest.Inventory)}).Warn("task moved to another cluster: objects left on the old one")
}

// reportUnpruned says which objects prune would have deleted, when prune is off.
func reportUnpruned(tl *taskLog, previous, current []store.InventoryEntry) {
	keep := make(map[string]bool, len(current))
	for _, e := range current {
		keep[e.Key()] = true
	}
	for _, e := range previous {
		if !keep[e.Key()] {
			tl.Printf("%s not pruned (prune: false)", e)
		}
	}
}

// driftPolicy is the task's drift settings as the revision keeps them for the drift watcher.
func driftPolicy(t *pipeline.DeployYAMLTask) store.DriftPolicy {
	p := store.DriftPolicy{Mode: string(t.Drift), Health: string(t.HealthWatch)}
	for _, r := range t.DriftIgnore {
		p.Ignore = append(p.Ignore, store.DriftIgnoreRule{Kind: r.Kind, Name: r.Name, Paths: r.Paths})
	}
	return p
}
