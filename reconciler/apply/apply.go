// Package apply makes a cluster match a rendered set of manifests: a plan that skips what
// nobody changed since the last deploy, server-side dry-run of the rest as a whole, staged
// concurrent server-side apply, pruning of what an earlier revision applied and this one
// does not, and a kstatus health wait that explains failures.
package apply

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/ssa"
	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/slipwayhq/slipway/reconciler/kube"
	"github.com/slipwayhq/slipway/render"
	"github.com/slipwayhq/slipway/store"
)

// Change is what applying did to one object.
type Change struct {
	Object string `json:"object"`
	Action string `json:"action"`
	// Adopted: the object existed without the task's identity and was taken over.
	Adopted bool `json:"adopted,omitempty"`
}

// Result of an apply.
type Result struct {
	Changes   []Change
	Inventory []store.InventoryEntry
	// Skipped counts the objects the plan found unchanged: not sent at all.
	Skipped int
	// Seen is the objects' generations as the apply left them, for the health wait.
	Seen Seen
}

// Untouched tells whether the plan found every object unchanged: nothing was applied.
func (r *Result) Untouched() bool { return r.Skipped == len(r.Inventory) }

// Applier applies manifests to one cluster.
type Applier struct {
	Cluster *kube.Cluster
	Log     *logrus.Entry
	// Slots are shared by every deploy of the process (nil: no shared bound); each object's
	// dry-run and apply hold one.
	Slots *Slots
	// Cache, when set, answers the plan's question "is the live object as we left it" for
	// kinds it watches, instead of a LIST per kind (see Plan).
	Cache OwnedCache
}

// kubectlManagers are the field managers kubectl leaves behind; on first apply their fields
// are taken over so a Deployment created with `kubectl apply` becomes ours cleanly.
var kubectlManagers = []ssa.FieldManager{
	{Name: "kubectl", OperationType: "Apply"},
	{Name: "kubectl", OperationType: "Update"},
	{Name: "kubectl-client-side-apply", OperationType: "Update"},
	{Name: "before-first-apply", OperationType: "Update"},
}

// Prune deletes what previous holds and current does not, but only objects carrying the
// owner's label: never another task's, and never one an older Slipway labelled that no
// deploy has re-stamped (see docs/operations.md, migration of owner labels). It returns
// what was deleted, and what could not be (which stays in the inventory so a later run
// retries); err joins an *ObjectError per object not deleted.
func (a *Applier) Prune(ctx context.Context, previous, current []store.InventoryEntry, owner Owner) (deleted, kept []store.InventoryEntry, err error) {
	keep := map[string]bool{}
	for _, e := range current {
		keep[e.Key()] = true
	}
	var stale []*unstructured.Unstructured
	byObj := map[string]store.InventoryEntry{}
	for _, e := range previous {
		if keep[e.Key()] {
			continue
		}
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(schema.GroupVersionKind{Group: e.Group, Version: e.Version, Kind: e.Kind})
		u.SetNamespace(e.Namespace)
		u.SetName(e.Name)
		stale = append(stale, u)
		byObj[e.String()] = e
	}
	if len(stale) == 0 {
		return nil, nil, nil
	}
	rm := a.Cluster.Manager
	opts := ssa.DefaultDeleteOptions()
	opts.Inclusions = owner.Labels()
	var errs []error
	for _, u := range stale {
		e := byObj[render.ObjectName(u)]
		entry, err := rm.Delete(ctx, u, opts)
		switch {
		case err != nil:
			kept = append(kept, e)
			errs = append(errs, &ObjectError{Op: OpPrune, Object: e.String(), Err: err})
		case entry.Action == ssa.DeletedAction:
			deleted = append(deleted, e)
			a.Log.WithField("object", e.String()).Info("pruned")
		default:
			// Gone already, or not ours (owner labels removed): nothing to keep track of.
			a.Log.WithFields(logrus.Fields{"object": e.String(), "action": entry.Action}).Info("not pruned")
		}
	}
	return deleted, kept, errors.Join(errs...)
}

// Wait waits until every object is healthy (kstatus Current), failing fast when one fails
// and explaining workloads that are not ready with their pods' own reasons (a *WaitError).
// When the cluster's shared watches hold every kind of the set, they drive the wait
// (waitWatched); otherwise the objects are polled.
func (a *Applier) Wait(ctx context.Context, inv []store.InventoryEntry, seen Seen, timeout time.Duration) error {
	if timeout <= 0 || len(inv) == 0 {
		return nil
	}
	if watched, err := a.waitWatched(ctx, inv, seen, timeout); watched {
		return err
	}
	set := make(object.ObjMetadataSet, 0, len(inv))
	for _, e := range inv {
		set = append(set, object.ObjMetadata{
			GroupKind: schema.GroupKind{Group: e.Group, Kind: e.Kind},
			Namespace: e.Namespace, Name: e.Name,
		})
	}
	// The deadline falls half an interval after the asked timeout, between two polls: a poll
	// started at the deadline fails in client-go's rate limiter, and ssa then returns that
	// error ("would exceed context deadline") instead of its verdict naming the objects.
	err := a.Cluster.Manager.WaitForSetWithContext(ctx, set, ssa.WaitOptions{
		Interval: waitInterval, Timeout: timeout + waitInterval/2, FailFast: true,
	})
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("health wait: %w", ctx.Err())
	}
	return &WaitError{Err: err, Reasons: a.workloadReasons(context.WithoutCancel(ctx), inv)}
}

// waitInterval is how often the health wait polls the objects' status.
const waitInterval = time.Second

func sortInventory(inv []store.InventoryEntry) {
	sort.Slice(inv, func(i, j int) bool { return inv[i].Key() < inv[j].Key() })
}
