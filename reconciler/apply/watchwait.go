package apply

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/polling/event"
	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/ssa/utils"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/slipwayhq/slipway/reconciler/kube"
	"github.com/slipwayhq/slipway/store"
)

// Seen is what a deploy knows of its objects as it left them, by InventoryEntry.Key: the
// generation its apply answered, 0 for an object the plan found unchanged (the watch's
// copy of it is as good as any). A health wait takes an object's status from the shared
// watch once the watch holds it at that generation or newer, so a watch that has not yet
// delivered the apply never passes the old status off as the new one. An object Seen
// does not name is read from the API server once first, to learn its generation.
type Seen map[string]int64

// untouched is the Seen of objects nothing has applied since they were last found as they
// are: the watch's copies are as new as any read would be.
func untouched(inv []store.InventoryEntry) Seen {
	seen := make(Seen, len(inv))
	for _, e := range inv {
		seen[e.Key()] = 0
	}
	return seen
}

// watchedObject is one object of a watch-driven health wait.
type watchedObject struct {
	entry store.InventoryEntry
	id    object.ObjMetadata
	gvk   schema.GroupVersionKind
	ref   kube.ObjectRef
	cache cache.Store
	floor int64 // the generation the watch's copy must have reached
	known bool  // floor is known (from Seen or a read)
	// liveAt is when the API server was last asked for the object; a copy read there,
	// newer than the watch's, is kept in live until the watch catches up.
	liveAt time.Time
	live   *unstructured.Unstructured
	status status.Status
	msg    string
}

// liveReadEvery is how often an object the watch does not hold (yet) is read from the API
// server instead: one without Slipway's owner label never shows up there.
const liveReadEvery = time.Second

// watchedSet is the objects of inv as the shared watches hold them; false when a kind of
// the set is not watched, or its watch is not current.
func (a *Applier) watchedSet(inv []store.InventoryEntry, seen Seen) ([]*watchedObject, []kube.ObjectRef, bool) {
	if a.Cluster == nil || a.Cluster.Informers == nil || a.Cluster.Mapper == nil {
		return nil, nil, false
	}
	objs := make([]*watchedObject, 0, len(inv))
	refs := make([]kube.ObjectRef, 0, len(inv))
	for _, e := range inv {
		gvk := schema.GroupVersionKind{Group: e.Group, Version: e.Version, Kind: e.Kind}
		m, err := a.Cluster.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return nil, nil, false
		}
		st, ok := a.Cluster.Informers.Current(m.Resource, kube.OwnedSelector)
		if !ok {
			return nil, nil, false
		}
		floor, known := seen[e.Key()]
		ref := kube.ObjectRef{Resource: m.Resource, Selector: kube.OwnedSelector, Namespace: e.Namespace, Name: e.Name}
		o := &watchedObject{entry: e, gvk: gvk, ref: ref, cache: st, floor: floor, known: known,
			id: object.ObjMetadata{GroupKind: gvk.GroupKind(), Namespace: e.Namespace, Name: e.Name}}
		if known {
			// Give the watch its moment to deliver what was just applied before asking.
			o.liveAt = time.Now()
		}
		objs = append(objs, o)
		refs = append(refs, ref)
	}
	return objs, refs, true
}

// Watched tells whether the shared watches hold every kind of inv, so that a health wait
// of it, its stability window included, follows them instead of asking the API server.
func (a *Applier) Watched(inv []store.InventoryEntry) bool {
	_, _, ok := a.watchedSet(inv, nil)
	return ok
}

// waitWatched is the health wait driven by the cluster's shared informers: the objects'
// kstatus is computed again when the watch delivers a change of one of them, not polled,
// and the API server is asked only about objects the watch does not hold. It reports
// false, having waited for nothing, when a kind of the set is not watched (or its watch
// is not current): the polling wait serves those sets.
func (a *Applier) waitWatched(ctx context.Context, inv []store.InventoryEntry, seen Seen, timeout time.Duration) (bool, error) {
	objs, refs, ok := a.watchedSet(inv, seen)
	if !ok {
		return false, nil
	}
	changed := make(chan struct{}, 1)
	stop := a.Cluster.Informers.Notify(changed, refs)
	defer stop()
	expired := time.NewTimer(timeout)
	defer expired.Stop()
	tick := time.NewTicker(liveReadEvery)
	defer tick.Stop()
	for {
		if err := a.checkWatched(ctx, objs); err != nil {
			return true, fmt.Errorf("health wait: %w", err)
		}
		current, failed := 0, 0
		for _, o := range objs {
			switch o.status {
			case status.CurrentStatus:
				current++
			case status.FailedStatus:
				failed++
			}
		}
		switch {
		case current == len(objs):
			return true, nil
		case failed > 0:
			return true, a.watchedVerdict(ctx, inv, objs, "failed early due to stalled resources", status.FailedStatus)
		}
		select {
		case <-changed:
		case <-tick.C:
		case <-expired.C:
			return true, a.watchedVerdict(ctx, inv, objs, "timeout waiting for", "")
		case <-ctx.Done():
			return true, fmt.Errorf("health wait: %w", ctx.Err())
		}
	}
}

// watchSharedStatus reports the objects' kstatus from the shared watches, each time the
// watch delivers a change of one of them, until ctx ends; false when a kind of inv is not
// watched. The objects were found healthy before, so the watch's copies are taken as they
// are. Used by the stability window in place of a watch of its own per run.
func (a *Applier) watchSharedStatus(ctx context.Context, inv []store.InventoryEntry) (<-chan event.Event, bool) {
	objs, refs, ok := a.watchedSet(inv, untouched(inv))
	if !ok {
		return nil, false
	}
	changed := make(chan struct{}, 1)
	stop := a.Cluster.Informers.Notify(changed, refs)
	// An object the watch does not hold as the window opens (one without the owner label)
	// is not followed: its absence later says nothing.
	held := make(map[*watchedObject]bool, len(objs))
	for _, o := range objs {
		held[o] = o.cachedCopy() != nil
	}
	out := make(chan event.Event)
	go func() {
		defer close(out)
		defer stop()
		for {
			select {
			case <-changed:
			case <-ctx.Done():
				return
			}
			for _, o := range objs {
				if !held[o] {
					continue
				}
				ev := event.Event{Type: event.ResourceUpdateEvent, Resource: &event.ResourceStatus{Identifier: o.id, Status: status.UnknownStatus}}
				if u := o.cached(); u == nil {
					// Deleted, or no longer labelled as Slipway's.
					ev.Resource.Status, ev.Resource.Message = status.NotFoundStatus, "Resource not found"
				} else if res, err := status.Compute(u); err == nil {
					ev.Resource.Status, ev.Resource.Message = res.Status, res.Message
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, true
}

// checkWatched computes the status of every object, from the watch's copy when it is new
// enough, else from the API server (at most once per liveReadEvery each, and not again for
// one found Current there): the set is healthy when all are Current at once, as a poll of
// them all would find. Only a cancelled context is an error; the API server's refusals are
// the object's status.
func (a *Applier) checkWatched(ctx context.Context, objs []*watchedObject) error {
	for _, o := range objs {
		u := o.cached()
		if u == nil && o.status == status.CurrentStatus {
			continue
		}
		if u == nil && (!o.known || time.Since(o.liveAt) >= liveReadEvery) {
			if err := o.read(ctx, a.Cluster.Client); err != nil {
				return err
			}
			u = o.live
		} else if u == nil {
			u = o.live
		}
		if u == nil {
			continue // not found, or unreadable: o.status says which
		}
		if u == o.live {
			u = u.DeepCopy() // kept for the next check; a decoded copy is the caller's already
		}
		res, err := status.Compute(u)
		if err != nil {
			o.status, o.msg = status.UnknownStatus, "compute status: "+err.Error()
			continue
		}
		o.status, o.msg = res.Status, res.Message
	}
	return nil
}

// cachedCopy is the watch's copy of the object, undecoded, when it is at least as new as
// the floor.
func (o *watchedObject) cachedCopy() *kube.CachedObject {
	if !o.known {
		return nil
	}
	item, ok, err := o.cache.GetByKey(cache.NewObjectName(o.entry.Namespace, o.entry.Name).String())
	c, isC := item.(*kube.CachedObject)
	if err != nil || !ok || !isC || c.GetGeneration() < o.floor {
		return nil
	}
	return c
}

// cached is cachedCopy decoded, for the caller to keep.
func (o *watchedObject) cached() *unstructured.Unstructured {
	c := o.cachedCopy()
	if c == nil {
		return nil
	}
	u, err := c.Unstructured()
	if err != nil {
		return nil
	}
	return u
}

// read asks the API server for the object; its generation becomes the floor the watch's
// copy must reach.
func (o *watchedObject) read(ctx context.Context, c client.Reader) error {
	o.liveAt = time.Now()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(o.gvk)
	err := c.Get(ctx, client.ObjectKey{Namespace: o.entry.Namespace, Name: o.entry.Name}, u)
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case apierrors.IsNotFound(err):
		o.known, o.live = true, nil
		o.status, o.msg = status.NotFoundStatus, "Resource not found"
	case err != nil:
		o.live = nil
		o.status, o.msg = status.UnknownStatus, err.Error()
	default:
		o.known, o.live = true, u
		o.floor = max(o.floor, u.GetGeneration())
	}
	return nil
}

// watchedVerdict is the WaitError of a wait that ended without every object Current,
// naming (as the polling wait does) the objects in the given status, or all not Current
// when only is "".
func (a *Applier) watchedVerdict(ctx context.Context, inv []store.InventoryEntry, objs []*watchedObject, what string, only status.Status) error {
	var parts []string
	for _, o := range objs {
		if o.status == status.CurrentStatus || (only != "" && o.status != only) {
			continue
		}
		st := o.status
		if st == "" {
			st = status.UnknownStatus
		}
		p := fmt.Sprintf("%s status: '%s'", utils.FmtObjMetadata(o.id), st)
		if o.msg != "" && st != status.NotFoundStatus {
			p += ": " + o.msg
		}
		parts = append(parts, p)
	}
	sort.Strings(parts)
	err := errors.New(what + ": [" + strings.Join(parts, ", ") + "]")
	return &WaitError{Err: err, Reasons: a.workloadReasons(context.WithoutCancel(ctx), inv)}
}
