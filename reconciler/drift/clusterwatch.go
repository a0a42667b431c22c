package drift

import (
	"context"
	"fmt"
	"maps"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"

	"github.com/slipwayhq/slipway/reconciler/apply"
	"github.com/slipwayhq/slipway/reconciler/kube"
	"github.com/slipwayhq/slipway/store"
)

// selectors select every object Slipway applied, whatever the pipeline: the watches see
// nothing else, so their caches hold only managed objects. The second finds objects an
// older Slipway labelled that no deploy has re-stamped yet; its cache empties as
// pipelines deploy, and it can go once installations have migrated.
var selectors = [...]string{apply.OwnedSelector, apply.LegacySelector}

// clusterWatch is one cluster's watches, one per kind that current revisions applied. The
// informers are the cluster's shared ones (kube.Informers): every pipeline's objects of a
// kind come through one watch, which health waits read too.
type clusterWatch struct {
	cl    *kube.Cluster
	w     *Watcher
	kinds map[schema.GroupVersionKind]context.CancelFunc
}

func newClusterWatch(cl *kube.Cluster, w *Watcher) *clusterWatch {
	return &clusterWatch{cl: cl, w: w, kinds: map[schema.GroupVersionKind]context.CancelFunc{}}
}

// sync starts watches of kinds not yet watched, for as long as ctx lives, and with stop
// stops those no longer needed (kinds are then all that are).
func (c *clusterWatch) sync(ctx context.Context, kinds map[schema.GroupVersionKind]bool, stop bool) error {
	for gvk, cancel := range c.kinds {
		if stop && !kinds[gvk] {
			cancel()
			delete(c.kinds, gvk)
		}
	}
	for gvk := range kinds {
		if c.kinds[gvk] != nil {
			continue
		}
		m, err := c.cl.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return fmt.Errorf("watch %s on %s: %w", gvk, c.cl.Name, err)
		}
		c.kinds[gvk] = c.start(ctx, gvk, m.Resource)
	}
	return nil
}

func (c *clusterWatch) start(ctx context.Context, gvk schema.GroupVersionKind, gvr schema.GroupVersionResource) context.CancelFunc {
	ctx, cancel := context.WithCancel(ctx)
	for _, sel := range selectors {
		c.watch(ctx, gvk, gvr, sel)
	}
	return cancel
}

func (c *clusterWatch) watch(ctx context.Context, gvk schema.GroupVersionKind, gvr schema.GroupVersionResource, selector string) {
	inf := c.cl.Informers.For(gvr, selector)
	enqueue := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		u, ok := obj.(metav1.Object)
		if !ok {
			return
		}
		e := store.InventoryEntry{Group: gvk.Group, Kind: gvk.Kind, Namespace: u.GetNamespace(), Name: u.GetName()}
		c.w.changed(c.cl.Name + "|" + e.Key())
	}
	reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue,
		UpdateFunc: func(old, cur any) {
			if statusOnly(old, cur) {
				return
			}
			enqueue(cur)
		},
		DeleteFunc: enqueue,
	})
	if err != nil {
		// Only a stopped informer refuses handlers: the daemon is on its way out.
		c.w.Log.WithError(err).WithField("kind", gvk.String()).Warn("drift: watch")
		return
	}
	// The informer outlives the kind's watch here (health waits read it); the handler not.
	go func() {
		<-ctx.Done()
		_ = inf.RemoveEventHandler(reg)
	}()
}

// statusOnly tells an update that cannot be drift: the generation (bumped by every spec
// change) and the labels and annotations are unchanged. Status churn of workloads would
// otherwise cost a dry-run each. Kinds without a generation are always checked.
func statusOnly(old, cur any) bool {
	o, ok1 := old.(metav1.Object)
	n, ok2 := cur.(metav1.Object)
	if !ok1 || !ok2 || n.GetGeneration() == 0 {
		return false
	}
	return o.GetGeneration() == n.GetGeneration() && maps.Equal(o.GetLabels(), n.GetLabels()) &&
		maps.Equal(o.GetAnnotations(), n.GetAnnotations())
}

func (c *clusterWatch) stopAll() {
	for gvk, stop := range c.kinds {
		stop()
		delete(c.kinds, gvk)
	}
}

// cachedVersion is the resourceVersion the watch caches hold for the object, or "" when
// they cannot tell: the kind is not watched here, a cache has not synced or its watch is
// failing, or no cache holds the object (gone, or without owner labels).
func (c *clusterWatch) cachedVersion(o *Object) string {
	gvk := o.GroupVersionKind()
	if c.kinds[gvk] == nil {
		return ""
	}
	for _, sel := range selectors {
		get := c.cl.Cached(gvk, sel)
		if get == nil {
			return ""
		}
		if obj, found := get(o.Entry.Namespace, o.Entry.Name); found {
			return obj.GetResourceVersion()
		}
	}
	return ""
}
