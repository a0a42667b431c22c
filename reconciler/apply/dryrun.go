package apply

import (
	"context"
	"fmt"
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/slipwayhq/slipway/reconciler/kube"
)

// DryRun runs a server-side dry-run apply of every object the plan will apply, checks that
// every one that exists already may be taken (Owner.Admit: the task's own, or adopted),
// and reports every failure, each naming its file and object, as a *DryRunError; nothing
// is applied unless all pass.
// Objects the plan found unchanged are not sent: the same rendering was applied before and
// nobody touched it since. Objects in a namespace the same set creates, and custom
// resources whose CRD the same set installs, cannot be dry-run before that apply; they are
// checked by the API server when the earlier stage has been applied.
func (a *Applier) DryRun(ctx context.Context, p *Plan) error {
	var changed []*planItem
	for _, it := range p.items {
		if !it.unchanged {
			changed = append(changed, it)
		}
	}
	newNamespaces, newKinds, err := a.createdBySet(ctx, changed)
	if err != nil {
		return err
	}
	var (
		mu   sync.Mutex
		errs []error
	)
	err = ForEach(ctx, len(changed), concurrency, func(ctx context.Context, i int) error {
		it := changed[i]
		o := it.obj
		if newNamespaces[o.GetNamespace()] || newKinds[o.GroupVersionKind().GroupKind()] {
			it.deferred = true
			return nil
		}
		release, err := a.Slots.Acquire(ctx)
		if err != nil {
			return err
		}
		defer release()
		obj := o.DeepCopy()
		err = a.Cluster.Client.Patch(ctx, obj, client.Apply, client.DryRunAll,
			client.ForceOwnership, client.FieldOwner(kube.FieldManager))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			mu.Lock()
			errs = append(errs, it.fail(OpDryRun, err))
			mu.Unlock()
			return nil
		}
		// A dry-run create assigns no resourceVersion: Apply reports the object created.
		it.dryRunVersion = obj.GetResourceVersion()
		it.merged = obj
		if it.dryRunVersion == "" {
			return nil
		}
		if err := a.admit(ctx, p, it); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("server-side dry-run: %w", err)
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	if len(errs) > 0 {
		return &DryRunError{Errs: errs}
	}
	p.dryRun = true
	return nil
}

// admit reads the live object's metadata and decides whether the plan may take it; an
// admitted object that is not the task's own is marked adopted.
func (a *Applier) admit(ctx context.Context, p *Plan, it *planItem) error {
	live := &metav1.PartialObjectMetadata{}
	live.SetGroupVersionKind(it.obj.GroupVersionKind())
	if err := a.Cluster.Client.Get(ctx, client.ObjectKeyFromObject(it.obj), live); err != nil {
		return it.fail(OpLookup, err)
	}
	got, err := p.owner.Admit(live.GetLabels(), live.GetAnnotations(), p.previous[it.entry().Key()], p.Adopt)
	if err != nil {
		return it.fail(OpOwnership, err)
	}
	it.adopted = got == Adopt
	return nil
}

// createdBySet finds namespaces and custom kinds the set itself brings, which do not exist yet.
func (a *Applier) createdBySet(ctx context.Context, items []*planItem) (map[string]bool, map[schema.GroupKind]bool, error) {
	namespaces := map[string]bool{}
	kinds := map[schema.GroupKind]bool{}
	for _, it := range items {
		o := it.obj
		switch o.GetKind() {
		case "Namespace":
			var ns corev1.Namespace
			err := a.Cluster.Client.Get(ctx, client.ObjectKey{Name: o.GetName()}, &ns)
			if apierrors.IsNotFound(err) {
				namespaces[o.GetName()] = true
			} else if err != nil {
				return nil, nil, it.fail(OpLookup, err)
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
