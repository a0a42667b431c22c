package drift

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/fluxcd/pkg/ssa/jsondiff"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/slipwayhq/slipway/reconciler/apply"
	"github.com/slipwayhq/slipway/reconciler/kube"
	"github.com/slipwayhq/slipway/render"
	"github.com/slipwayhq/slipway/store"
)

// Object is one object of a current revision, as Slipway applies it.
type Object struct {
	Revision *store.Revision
	Entry    store.InventoryEntry // no digest or fingerprint
	// desired is the stored object with the owner labels the deploy added, as JSON: the
	// watches hold every current object for as long as it is current, and a thousand
	// applications' objects as decoded maps cost several times their JSON. They are read
	// only when one is checked or corrected. Never mutated.
	desired []byte
	// Ignore are the JSON pointers the task's driftIgnore excludes for this object.
	Ignore []string
	// selector is a workload's pod selector (workloadSelector), worked out once as the
	// object is parsed: every reload of the health watch reads it, and decoding every
	// Deployment again for it made each reload's largest allocation.
	selector    labels.Selector
	selectorErr error
}

func (o *Object) String() string { return o.Entry.String() }

// Desired is the object as Slipway applies it, a new copy at every call.
func (o *Object) Desired() (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(o.desired); err != nil {
		return nil, fmt.Errorf("decode %s: %w", o, err)
	}
	return u, nil
}

// GroupVersionKind is the object's kind, as applied.
func (o *Object) GroupVersionKind() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: o.Entry.Group, Version: o.Entry.Version, Kind: o.Entry.Kind}
}

// Key identifies an object within its cluster.
func (o *Object) Key() string { return o.Entry.Key() }

// Objects are the objects of a revision, as its deploy applied them.
//
// YAML revisions: the stored rendering plus the owner label and annotation (the store keeps
// the rendering without them; a correction re-stamps them).
//
// Chart revisions: the release manifest Helm stored for the release revision, which is
// what Helm applied. Its post-renderer already put the owner metadata and Helm's ownership
// metadata in it; nothing is added, so a release deployed before that (without them) shows
// no phantom drift. Namespaced objects without a namespace are in the release's, as Helm
// puts them.
func Objects(cl *kube.Cluster, rev *store.Revision) ([]*Object, error) {
	ms, err := render.ParseManifests(fmt.Sprintf("revision of task %s of %s #%d", rev.Task, rev.Pipeline, rev.BuildID), rev.Objects)
	if err != nil {
		return nil, err
	}
	owner := apply.OwnerOf(rev.TaskRef())
	out := make([]*Object, 0, len(ms))
	for _, m := range ms {
		obj := m.Object.DeepCopy()
		if rev.Kind == store.DeployChart {
			if err := releaseNamespace(cl, obj, rev.Namespace); err != nil {
				return nil, err
			}
		} else {
			apply.PrepareObject(obj, owner)
		}
		gvk := obj.GroupVersionKind()
		e := store.InventoryEntry{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: obj.GetNamespace(), Name: obj.GetName()}
		desired, err := obj.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", e, err)
		}
		sel, selErr := workloadSelector(e, obj)
		out = append(out, &Object{Revision: rev, Entry: e, desired: desired, Ignore: ignoredPaths(rev.Drift, e),
			selector: sel, selectorErr: selErr})
	}
	return out, nil
}

// releaseNamespace puts a namespaced object that names no namespace into the release's.
func releaseNamespace(cl *kube.Cluster, obj *unstructured.Unstructured, ns string) error {
	if obj.GetNamespace() != "" {
		return nil
	}
	namespaced, err := cl.Namespaced(obj.GroupVersionKind())
	if err != nil {
		return fmt.Errorf("release object %s/%s: %w", obj.GetKind(), obj.GetName(), err)
	}
	if namespaced {
		obj.SetNamespace(ns)
	}
	return nil
}

// ignoredPaths are the JSON pointers of the policy's rules that match the object; a rule
// without kind or name matches any.
func ignoredPaths(p store.DriftPolicy, e store.InventoryEntry) []string {
	var paths []string
	for _, r := range p.Ignore {
		if (r.Kind == "" || r.Kind == e.Kind) && (r.Name == "" || r.Name == e.Name) {
			paths = append(paths, r.Paths...)
		}
	}
	return paths
}

// ignoreRules are the object's ignored paths in ssa's form, scoped to exactly this object.
func (o *Object) ignoreRules() []jsondiff.IgnoreRule {
	if len(o.Ignore) == 0 {
		return nil
	}
	return []jsondiff.IgnoreRule{{Paths: o.Ignore, Selector: &jsondiff.Selector{
		Group: "^" + regexp.QuoteMeta(o.Entry.Group) + "$", Kind: "^" + regexp.QuoteMeta(o.Entry.Kind) + "$",
		Namespace: "^" + regexp.QuoteMeta(o.Entry.Namespace) + "$", Name: "^" + regexp.QuoteMeta(o.Entry.Name) + "$",
	}}}
}

// revisionObjects connects to the revision's cluster and lists its objects there.
func revisionObjects(ctx context.Context, clusters Clusters, rev *store.Revision) ([]*Object, error) {
	cl, err := clusters.Get(ctx, rev.Cluster)
	if err != nil {
		return nil, err
	}
	return Objects(cl, rev)
}

// Parsed keeps the objects of the current revisions parsed between reloads, once for the
// drift and health watches together (give both the same one; the zero value is ready).
// The watches reload every current revision after each task's end: a push deploying a
// thousand applications would otherwise parse every revision's YAML again a thousand
// times, and each watch keeping its own would hold every current object twice. A
// revision's stored objects never change (the digest is part of the key); its status and
// policy may, so each reload hands out copies pointing at the fresh record.
// Each object's Revision is the record it was handed out with, so its build ID is the
// current revision's even when the objects were parsed from an earlier one.
type Parsed struct {
	mu sync.Mutex
	// byKey are the parsed objects, with no Revision: a cached object pointing at the record
	// it was parsed from would keep that record, and whatever was read with it, as long as
	// the revision stays current.
	byKey map[parsedKey][]*Object
	// holders are, by watch, the revisions it holds: the current ones of its last reload and
	// those it took from the cache since. An entry goes when no watch holds it.
	holders map[string]map[parsedKey]bool
}

// parsedKey is what a revision's parsed objects depend on: a later run of the same task
// that rendered the same objects (a no-op re-run) shares them, so it is not parsed again.
type parsedKey struct {
	task          store.TaskRef
	cluster       string
	kind          store.DeployKind
	namespace     string // a chart release's namespace, given to objects that name none
	objectsDigest string
}

// writer is the pipeline task whose runs write rev: its runs pause the watches' handling of
// rev's objects. A deploy to an environment stores its revisions as "TASK.ENV"
// (reconciler's deployKey) while its run's events name the task, and a rollback's events
// name the revision's task ("TASK.ENV"): both are keyed by the part before the first dot
// (pauseKey), which is the task, since task names are DNS labels. A task's deploy to one
// environment thus pauses its other environments' objects too, for as long as it runs;
// their events are kept and checked when it ends.
func writer(rev *store.Revision) store.TaskRef {
	return pauseKey(rev.TaskRef())
}

// pauseKey is the key pauses go by for a task named by a run's event or a revision.
func pauseKey(ref store.TaskRef) store.TaskRef {
	ref.Task, _, _ = strings.Cut(ref.Task, ".")
	return ref
}

func parsedKeyOf(rev *store.Revision) parsedKey {
	return parsedKey{task: rev.TaskRef(), cluster: rev.Cluster, kind: rev.Kind, namespace: rev.Namespace, objectsDigest: rev.ObjectsDigest}
}

// holdLocked records that holder holds k; p.mu is held.
func (p *Parsed) holdLocked(holder string, k parsedKey) {
	if p.holders == nil {
		p.holders = map[string]map[parsedKey]bool{}
	}
	if p.holders[holder] == nil {
		p.holders[holder] = map[parsedKey]bool{}
	}
	p.holders[holder][k] = true
}

// objects is revisionObjects, parsed once per revision while it stays current. It drops
// rev's stored rendering and inventory, which the parsed objects stand for: the watches
// keep rev as long as it is current, and a thousand renderings held twice cost more memory
// than anything else they keep.
func (p *Parsed) objects(ctx context.Context, holder string, clusters Clusters, rev *store.Revision) ([]*Object, error) {
	k := parsedKeyOf(rev)
	p.mu.Lock()
	cached, ok := p.byKey[k]
	if ok {
		p.holdLocked(holder, k)
	}
	p.mu.Unlock()
	if !ok {
		if rev.Objects == nil {
			// Told known, yet gone: only a reload racing the watch's own could do it.
			return nil, fmt.Errorf("revision of task %s of %s #%d: objects neither read nor parsed", rev.Task, rev.Pipeline, rev.BuildID)
		}
		objs, err := revisionObjects(ctx, clusters, rev)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			o.Revision, o.Ignore = nil, nil
		}
		p.mu.Lock()
		if p.byKey == nil {
			p.byKey = map[parsedKey][]*Object{}
		}
		p.byKey[k] = objs
		p.holdLocked(holder, k)
		p.mu.Unlock()
		cached = objs
	}
	rev.Objects, rev.Inventory = nil, nil
	out := make([]*Object, len(cached))
	for i, o := range cached {
		c := *o // desired is shared: nothing mutates it
		c.Revision = rev
		c.Ignore = ignoredPaths(rev.Drift, c.Entry)
		out[i] = &c
	}
	return out, nil
}

// has tells whether rev's objects are parsed already: the store need not read them. A yes
// holds them for holder until its next retain, so another watch's reload cannot drop them
// before holder takes them.
func (p *Parsed) has(holder string, rev *store.Revision) bool {
	k := parsedKeyOf(rev)
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.byKey[k]
	if ok {
		p.holdLocked(holder, k)
	}
	return ok
}

// retain makes current the revisions holder holds and forgets those no watch holds.
func (p *Parsed) retain(holder string, current map[parsedKey]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.holders == nil {
		p.holders = map[string]map[parsedKey]bool{}
	}
	p.holders[holder] = current
	for k := range p.byKey {
		p.dropUnheldLocked(k)
	}
}

// retainOf is retain for the revisions of the given pipelines: holder's other revisions
// stay held.
func (p *Parsed) retainOf(holder string, pipelines map[store.PipelineRef]bool, current map[parsedKey]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range current {
		p.holdLocked(holder, k)
	}
	held := p.holders[holder]
	for k := range held {
		if pipelines[k.task.Pipeline] && !current[k] {
			delete(held, k)
			p.dropUnheldLocked(k)
		}
	}
}

// dropUnheldLocked forgets k's objects unless a watch holds them; p.mu is held.
func (p *Parsed) dropUnheldLocked(k parsedKey) {
	for _, keys := range p.holders {
		if keys[k] {
			return
		}
	}
	delete(p.byKey, k)
}
