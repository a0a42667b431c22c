// Package apply makes a cluster match a rendered set of manifests: server-side dry-run of
// the whole set, staged server-side apply, pruning of what an earlier revision applied and
// this one does not, and a kstatus health wait that explains failures.
package apply

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/ssa"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/slipwayhq/slipway/reconciler/kube"
	"github.com/slipwayhq/slipway/render"
)

// InventoryEntry identifies one applied object, with the group-version needed to delete it later.
type InventoryEntry struct {
	Group     string `json:"group"`
	Version   string `json:"version"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

func (e InventoryEntry) String() string {
	if e.Namespace != "" {
		return e.Kind + "/" + e.Namespace + "/" + e.Name
	}
	return e.Kind + "/" + e.Name
}

func (e InventoryEntry) key() string {
	return e.Group + "|" + e.Kind + "|" + e.Namespace + "|" + e.Name
}

// Owner is the identity stamped on every applied object as owner labels; prune deletes
// only objects that carry it.
type Owner struct {
	Name      string // the pipeline
	Namespace string // the task, so two deploy tasks of one pipeline never prune each other
}

// Change is what applying did to one object.
type Change struct {
	Object string `json:"object"`
	Action string `json:"action"`
}

// Result of an apply.
type Result struct {
	Changes   []Change
	Inventory []InventoryEntry
}

// Applier applies manifests to one cluster.
type Applier struct {
	Cluster *kube.Cluster
	Log     *logrus.Entry
}

// kubectlManagers are the field managers kubectl leaves behind; on first apply their fields
// are taken over so a Deployment created with `kubectl apply` becomes ours cleanly.
var kubectlManagers = []ssa.FieldManager{
	{Name: "kubectl", OperationType: "Apply"},
	{Name: "kubectl", OperationType: "Update"},
	{Name: "kubectl-client-side-apply", OperationType: "Update"},
	{Name: "before-first-apply", OperationType: "Update"},
}

// DryRun runs a server-side dry-run apply of every object and reports every failure, each
// naming its file and object. Objects in a namespace the same set creates, and custom
// resources whose CRD the same set installs, cannot be dry-run before that apply; they are
// checked by the API server when the earlier stage has been applied.
func (a *Applier) DryRun(ctx context.Context, ms []render.Manifest) error {
	newNamespaces, newKinds, err := a.createdBySet(ctx, ms)
	if err != nil {
		return err
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 16)
	)
	for _, m := range ms {
		o := m.Object
		if newNamespaces[o.GetNamespace()] || newKinds[o.GroupVersionKind().GroupKind()] {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			obj := o.DeepCopy()
			err := a.Cluster.Client.Patch(ctx, obj, client.Apply, client.DryRunAll,
				client.ForceOwnership, client.FieldOwner(kube.FieldManager))
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %s", m, apiMessage(err)))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	if len(errs) > 0 {
		return &DryRunError{Errs: errs}
	}
	return nil
}

// DryRunError lists every object the API server refused; nothing was applied.
type DryRunError struct{ Errs []error }

func (e *DryRunError) Error() string {
	msgs := make([]string, len(e.Errs))
	for i, err := range e.Errs {
		msgs[i] = err.Error()
	}
	return "server-side dry-run failed, nothing was applied:\n  " + strings.Join(msgs, "\n  ")
}

// createdBySet finds namespaces and custom kinds the set itself brings, which do not exist yet.
func (a *Applier) createdBySet(ctx context.Context, ms []render.Manifest) (map[string]bool, map[schema.GroupKind]bool, error) {
	namespaces := map[string]bool{}
	kinds := map[schema.GroupKind]bool{}
	for _, m := range ms {
		o := m.Object
		switch o.GetKind() {
		case "Namespace":
			var ns corev1.Namespace
			err := a.Cluster.Client.Get(ctx, client.ObjectKey{Name: o.GetName()}, &ns)
			if apierrors.IsNotFound(err) {
				namespaces[o.GetName()] = true
			} else if err != nil {
				return nil, nil, fmt.Errorf("look up namespace %s: %w", o.GetName(), err)
			}
		case "CustomResourceDefinition":
			group, _, _ := unstructured.NestedString(o.Object, "spec", "group")
			kind, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
			gk := schema.GroupKind{Group: group, Kind: kind}
			if _, err := a.Cluster.Mapper.RESTMapping(gk); err != nil {
				kinds[gk] = true
			}
		}
	}
	return namespaces, kinds, nil
}

// Apply stamps owner labels on the objects and applies them in stages (CRDs and Namespaces
// first), taking over fields and annotations kubectl left behind.
func (a *Applier) Apply(ctx context.Context, ms []render.Manifest, owner Owner) (*Result, error) {
	objs := make([]*unstructured.Unstructured, len(ms))
	for i, m := range ms {
		objs[i] = m.Object.DeepCopy()
	}
	rm := a.Cluster.Manager
	rm.SetOwnerLabels(objs, owner.Name, owner.Namespace)
	opts := ssa.DefaultApplyOptions()
	opts.Force = false
	opts.WaitInterval = 500 * time.Millisecond
	opts.Cleanup = ssa.ApplyCleanupOptions{
		Annotations:   []string{corev1.LastAppliedConfigAnnotation},
		FieldManagers: kubectlManagers,
	}
	cs, err := rm.ApplyAllStaged(ctx, objs, opts)
	if err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}
	res := &Result{}
	for _, e := range cs.Entries {
		res.Changes = append(res.Changes, Change{Object: e.Subject, Action: string(e.Action)})
		// ssa's ChangeSetEntry.GroupVersion holds only the version; the group is in ObjMetadata.
		res.Inventory = append(res.Inventory, InventoryEntry{
			Group: e.ObjMetadata.GroupKind.Group, Version: e.GroupVersion, Kind: e.ObjMetadata.GroupKind.Kind,
			Namespace: e.ObjMetadata.Namespace, Name: e.ObjMetadata.Name,
		})
	}
	sortInventory(res.Inventory)
	return res, nil
}

// Prune deletes what previous holds and current does not, but only objects carrying our
// owner labels. It returns what was deleted, and what could not be (which stays in the
// inventory so a later run retries).
func (a *Applier) Prune(ctx context.Context, previous, current []InventoryEntry, owner Owner) (deleted, kept []InventoryEntry, err error) {
	keep := map[string]bool{}
	for _, e := range current {
		keep[e.key()] = true
	}
	var stale []*unstructured.Unstructured
	byObj := map[string]InventoryEntry{}
	for _, e := range previous {
		if keep[e.key()] {
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
	opts.Inclusions = rm.GetOwnerLabels(owner.Name, owner.Namespace)
	var errs []error
	for _, u := range stale {
		e := byObj[render.ObjectName(u)]
		entry, err := rm.Delete(ctx, u, opts)
		switch {
		case err != nil:
			kept = append(kept, e)
			errs = append(errs, fmt.Errorf("prune %s: %w", e, err))
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
// and explaining workloads that are not ready with their pods' own reasons.
func (a *Applier) Wait(ctx context.Context, inv []InventoryEntry, timeout time.Duration) error {
	if timeout <= 0 || len(inv) == 0 {
		return nil
	}
	set := make(object.ObjMetadataSet, 0, len(inv))
	for _, e := range inv {
		set = append(set, object.ObjMetadata{
			GroupKind: schema.GroupKind{Group: e.Group, Kind: e.Kind},
			Namespace: e.Namespace, Name: e.Name,
		})
	}
	err := a.Cluster.Manager.WaitForSetWithContext(ctx, set, ssa.WaitOptions{
		Interval: time.Second, Timeout: timeout, FailFast: true,
	})
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("health wait: %w", ctx.Err())
	}
	reasons := a.workloadReasons(context.WithoutCancel(ctx), inv)
	if len(reasons) > 0 {
		return fmt.Errorf("health wait: %w\n  %s", err, strings.Join(reasons, "\n  "))
	}
	return fmt.Errorf("health wait: %w", err)
}

func sortInventory(inv []InventoryEntry) {
	sort.Slice(inv, func(i, j int) bool { return inv[i].key() < inv[j].key() })
}

// apiMessage prefers the API server's own message over client-side wrapping.
func apiMessage(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return status.Status().Message
	}
	return err.Error()
}
