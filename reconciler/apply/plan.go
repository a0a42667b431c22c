package apply

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/fluxcd/pkg/ssa"
	"github.com/fluxcd/pkg/ssa/utils"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/slipwayhq/slipway/render"
	"github.com/slipwayhq/slipway/store"
)

// Plan is a deploy worked out before anything is applied: every object with owner labels
// stamped and its digest, in apply order, and which of them nobody changed since the
// previous revision applied them. DryRun checks the rest; Apply applies the rest.
type Plan struct {
	// Adopt lets DryRun admit existing objects that carry no Slipway owner, or another
	// task's of the same repository (the task's adopt: true); see Owner.Admit.
	Adopt bool

	items []*planItem
	owner Owner
	// previous holds the keys of the previous inventory on the same cluster.
	previous map[string]bool
	// dryRun is set once DryRun passed: Apply refuses a plan that was not checked.
	dryRun bool
}

type planItem struct {
	m      render.Manifest            // as rendered, for naming file and document in errors
	obj    *unstructured.Unstructured // what is applied: owner labels stamped
	digest string
	// unchanged: skipped, with the live fingerprint it still has.
	unchanged   bool
	fingerprint string
	// dryRunVersion is the resourceVersion the dry-run saw; "" means the object is new.
	dryRunVersion string
	// merged is the object as the dry-run answered it: what applying would leave live.
	merged *unstructured.Unstructured
	// deferred: not dry-run, because the set creates its namespace or its kind first.
	deferred bool
	// adopted: the object exists without the task's identity and DryRun admitted it.
	adopted bool
	// generation is the object's as the apply answered it (see Seen).
	generation int64
}

// fail names the item, as rendered, in an error.
func (it *planItem) fail(op Op, err error) *ObjectError {
	return &ObjectError{Op: op, Object: render.ObjectName(it.m.Object), File: it.m.File, Doc: it.m.Doc, Err: err}
}

func (it *planItem) entry() store.InventoryEntry {
	gvk := it.obj.GroupVersionKind()
	return store.InventoryEntry{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind,
		Namespace: it.obj.GetNamespace(), Name: it.obj.GetName(), Digest: it.digest, Fingerprint: it.fingerprint,
		Adopted: it.adopted}
}

// Len is how many objects the plan holds; Changed how many it will dry-run and apply.
func (p *Plan) Len() int { return len(p.items) }

// Changed counts the objects that are not known to be unchanged.
func (p *Plan) Changed() int {
	n := 0
	for _, it := range p.items {
		if !it.unchanged {
			n++
		}
	}
	return n
}

// Plan stamps owner metadata, computes digests and finds the objects that are exactly as
// the previous revision left them. It reads their fingerprints from the Applier's Cache
// where that has a synced, watching cache of the kind, and otherwise costs one
// metadata-only LIST per kind and namespace (selected by owner labels), instead of a GET
// and a dry-run per object. A cache lags the API server by its watch's delay: a change it
// has not seen yet is missed by this plan as a change made just after a LIST would be,
// and is still caught, since the fingerprint recorded is the one read, which the changed
// object no longer has: the drift watch, and the next deploy, see the difference.
func (a *Applier) Plan(ctx context.Context, ms []render.Manifest, owner Owner, previous []store.InventoryEntry) (*Plan, error) {
	labels := owner.Labels()
	p, err := a.planItems(ms, owner)
	if err != nil {
		return nil, err
	}
	p.previous = make(map[string]bool, len(previous))
	prev := make(map[string]store.InventoryEntry, len(previous))
	for _, e := range previous {
		prev[e.Key()] = e
		p.previous[e.Key()] = true
	}
	groups := map[listKey]bool{}
	cached := map[schema.GroupVersionKind]CachedObjects{}
	var fromCache []*planItem
	for _, it := range p.items {
		e, ok := prev[it.entry().Key()]
		if !ok || e.Digest != it.digest || e.Fingerprint == "" {
			continue
		}
		gvk := it.obj.GroupVersionKind()
		get, seen := cached[gvk]
		if !seen && a.Cache != nil {
			get = a.Cache.CachedOwned(gvk)
			cached[gvk] = get
		}
		if get != nil {
			fromCache = append(fromCache, it)
			continue
		}
		groups[listKey{gvk: gvk, namespace: it.obj.GetNamespace()}] = true
	}
	for _, it := range fromCache {
		o, ok := cached[it.obj.GroupVersionKind()](it.obj.GetNamespace(), it.obj.GetName())
		if !ok || !hasLabels(o.GetLabels(), labels) {
			continue
		}
		fp, err := fingerprintOf(metaOf(o))
		if err != nil {
			return nil, it.fail(OpPlan, err)
		}
		if k := it.entry().Key(); unchangedSince(prev[k], it.digest, fp) {
			it.unchanged, it.fingerprint = true, fp
		}
	}
	if len(groups) == 0 {
		return p, nil
	}
	live, err := a.liveFingerprints(ctx, groups, labels)
	if err != nil {
		return nil, err
	}
	for _, it := range p.items {
		k := it.entry().Key()
		if fp, ok := live[k]; ok && unchangedSince(prev[k], it.digest, fp) {
			it.unchanged, it.fingerprint = true, fp
		}
	}
	return p, nil
}

// OwnedCache is a watch cache of the objects Slipway owns on the cluster, shared by every
// deploy of the process (kube.Cluster's informers).
type OwnedCache interface {
	// CachedOwned returns a reader of the kind's owned objects when a cache of them is
	// synced and watching, nil otherwise; it starts no watch.
	CachedOwned(gvk schema.GroupVersionKind) CachedObjects
}

// CachedObjects reads one object of a kind from the cache; false when the cache lacks it.
// The object is the cache's own: only read it. (An alias, so implementations need not
// import this package.)
type CachedObjects = func(namespace, name string) (metav1.Object, bool)

// hasLabels tells whether got holds every label of want, as a LIST's label selector would.
func hasLabels(got, want map[string]string) bool {
	for k, v := range want {
		if w, ok := got[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// planItems stamps and digests every object, in apply order.
func (a *Applier) planItems(ms []render.Manifest, owner Owner) (*Plan, error) {
	p := &Plan{items: make([]*planItem, len(ms)), owner: owner}
	for i, m := range ms {
		obj := m.Object.DeepCopy()
		PrepareObject(obj, owner)
		d, err := digestOf(obj)
		if err != nil {
			return nil, &ObjectError{Op: OpPlan, Object: render.ObjectName(m.Object), File: m.File, Doc: m.Doc, Err: err}
		}
		p.items[i] = &planItem{m: m, obj: obj, digest: d}
	}
	// ssa's order: CRDs, Namespaces, ClusterRoles, ... then the rest by kind, namespace, name.
	sort.SliceStable(p.items, func(i, j int) bool {
		return ssa.SortableUnstructureds{p.items[i].obj, p.items[j].obj}.Less(0, 1)
	})
	return p, nil
}

type listKey struct {
	gvk       schema.GroupVersionKind
	namespace string
}

// listPage bounds each LIST response; listPages bounds the loop over continue tokens.
const (
	listPage  = 500
	listPages = 1000
)

// liveFingerprints lists the objects carrying our owner labels, metadata only, and returns
// their fingerprints by inventory key. A kind found in several namespaces is listed once
// across all of them (the API server filters its watch cache by label: one request instead
// of one per namespace); where that is refused, as RBAC limited to namespaces does, once
// per namespace. A LIST that still fails, for any reason but cancellation, leaves its
// objects out: they are then dry-run and applied as if changed.
func (a *Applier) liveFingerprints(ctx context.Context, groups map[listKey]bool, labels map[string]string) (map[string]string, error) {
	byKind := map[schema.GroupVersionKind][]string{}
	for k := range groups {
		byKind[k.gvk] = append(byKind[k.gvk], k.namespace)
	}
	var keys []listKey
	for gvk, namespaces := range byKind {
		if len(namespaces) > 1 {
			keys = append(keys, listKey{gvk: gvk, namespace: allNamespaces})
			continue
		}
		keys = append(keys, listKey{gvk: gvk, namespace: namespaces[0]})
	}
	var (
		mu  sync.Mutex
		out = map[string]string{}
	)
	collect := func(got map[string]string) {
		mu.Lock()
		defer mu.Unlock()
		for key, fp := range got {
			out[key] = fp
		}
	}
	list := func(ctx context.Context, k listKey) error {
		got, err := a.listFingerprints(ctx, k, labels)
		if err == nil {
			collect(got)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a.Log.WithError(err).WithField("kind", k.gvk.Kind).WithField("namespace", k.namespace).
			Warn("cannot list objects to skip unchanged ones; applying them all")
		return nil
	}
	err := ForEach(ctx, len(keys), concurrency, func(ctx context.Context, i int) error {
		k := keys[i]
		if k.namespace != allNamespaces {
			return list(ctx, k)
		}
		got, err := a.listFingerprints(ctx, listKey{gvk: k.gvk}, labels)
		if err == nil {
			collect(got)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for _, ns := range byKind[k.gvk] {
			if err := list(ctx, listKey{gvk: k.gvk, namespace: ns}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list live objects: %w", err)
	}
	return out, nil
}

// allNamespaces marks a LIST across namespaces in a listKey (no namespace is named "*").
const allNamespaces = "*"

func (a *Applier) listFingerprints(ctx context.Context, k listKey, labels map[string]string) (map[string]string, error) {
	out := map[string]string{}
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(k.gvk.GroupVersion().WithKind(k.gvk.Kind + "List"))
	opts := []client.ListOption{client.MatchingLabels(labels), client.Limit(listPage)}
	if k.namespace != "" {
		opts = append(opts, client.InNamespace(k.namespace))
	}
	cont := ""
	for page := 0; page < listPages; page++ {
		if err := a.Cluster.Client.List(ctx, list, append(opts, client.Continue(cont))...); err != nil {
			return nil, fmt.Errorf("list %s in %q: %w", k.gvk.Kind, k.namespace, err)
		}
		for i := range list.Items {
			o := &list.Items[i]
			fp, err := fingerprintOf(metaOf(o))
			if err != nil {
				return nil, fmt.Errorf("%s %s/%s: %w", k.gvk.Kind, o.Namespace, o.Name, err)
			}
			e := store.InventoryEntry{Group: k.gvk.Group, Kind: k.gvk.Kind, Namespace: o.Namespace, Name: o.Name}
			out[e.Key()] = fp
		}
		if cont = list.Continue; cont == "" {
			return out, nil
		}
	}
	return nil, fmt.Errorf("list %s in %q: more than %d pages", k.gvk.Kind, k.namespace, listPages)
}

// PrepareObject is what a deploy does to a rendered object before applying it: drop a CRD's
// CA bundle as ssa does (API servers since 1.31 refuse an invalid one) and add the owner
// label and annotation. Drift detection prepares the desired object the same way.
func PrepareObject(obj *unstructured.Unstructured, owner Owner) {
	utils.RemoveCABundleFromCRD(obj)
	obj.SetLabels(merged(obj.GetLabels(), owner.Labels()))
	obj.SetAnnotations(merged(obj.GetAnnotations(), owner.Annotations()))
}

// merged is m with add's entries set (m may be nil).
func merged(m, add map[string]string) map[string]string {
	if m == nil {
		m = make(map[string]string, len(add))
	}
	for k, v := range add {
		m[k] = v
	}
	return m
}
