package apply

import (
	"context"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/slipwayhq/slipway/render"
	"github.com/slipwayhq/slipway/store"
)

// Outcome is what applying a plan would do to one object.
type Outcome string

// The outcomes of a preview.
const (
	OutcomeCreated   Outcome = "created"
	OutcomeChanged   Outcome = "changed"
	OutcomeUnchanged Outcome = "unchanged"
)

// ObjectPreview is what a deploy of the plan would do to one object.
type ObjectPreview struct {
	Object  string // Kind/namespace/name
	File    string // the manifest it was rendered from
	Doc     int
	Entry   store.InventoryEntry
	Outcome Outcome
	// Live and Merged are, for a changed object, the object on the cluster and what the
	// dry-run says applying would leave there; Merged alone, for a created one, is the
	// object as it would be sent. Both are Comparable: no server bookkeeping, no owner
	// metadata. Secret data is as is: callers mask it.
	Live, Merged *unstructured.Unstructured
}

// Preview dry-runs the plan exactly as a deploy does (DryRun) and says per object what
// applying it would do, with the live and merged objects of each change. Nothing is
// applied: the plan stays usable for Apply.
func (a *Applier) Preview(ctx context.Context, p *Plan) ([]ObjectPreview, error) {
	if err := a.DryRun(ctx, p); err != nil {
		return nil, err
	}
	out := make([]ObjectPreview, len(p.items))
	err := ForEach(ctx, len(p.items), concurrency, func(ctx context.Context, i int) error {
		it := p.items[i]
		op := ObjectPreview{Object: render.ObjectName(it.m.Object), File: it.m.File, Doc: it.m.Doc, Entry: it.entry()}
		switch {
		case it.unchanged:
			op.Outcome = OutcomeUnchanged
		case it.deferred || it.dryRunVersion == "":
			op.Outcome, op.Merged = OutcomeCreated, Comparable(it.obj)
		default:
			live := &unstructured.Unstructured{}
			live.SetGroupVersionKind(it.obj.GroupVersionKind())
			err := a.Cluster.Client.Get(ctx, client.ObjectKeyFromObject(it.obj), live)
			switch {
			case apierrors.IsNotFound(err):
				// Deleted between the dry-run and now: applying would create it.
				op.Outcome, op.Merged = OutcomeCreated, Comparable(it.obj)
			case err != nil:
				return it.fail(OpLookup, err)
			default:
				l, m := Comparable(live), Comparable(it.merged)
				if apiequality.Semantic.DeepEqual(l.Object, m.Object) {
					op.Outcome = OutcomeUnchanged
				} else {
					op.Outcome, op.Live, op.Merged = OutcomeChanged, l, m
				}
			}
		}
		out[i] = op
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Comparable is a copy of o without what the API server keeps for itself (managed fields,
// versions, uid, timestamps, status) and without Slipway's owner metadata: what is left is
// what a deploy decides.
func Comparable(o *unstructured.Unstructured) *unstructured.Unstructured {
	c := o.DeepCopy()
	for _, f := range []string{"managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink"} {
		unstructured.RemoveNestedField(c.Object, "metadata", f)
	}
	unstructured.RemoveNestedField(c.Object, "status")
	labels, annotations := c.GetLabels(), c.GetAnnotations()
	for _, k := range []string{OwnerLabel, legacyNameLabel, legacyNamespaceLabel} {
		delete(labels, k)
	}
	delete(annotations, OwnerAnnotation)
	c.SetLabels(labels)
	c.SetAnnotations(annotations)
	return c
}
