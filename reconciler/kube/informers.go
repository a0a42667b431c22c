package kube

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/fluxcd/cli-utils/pkg/kstatus/polling/engine"
	"github.com/fluxcd/cli-utils/pkg/kstatus/polling/event"
	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/cli-utils/pkg/object"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// OwnedSelector selects every object Slipway applied (its owner label), whatever the
// pipeline: the label selector of the shared informers health waits read.
const OwnedSelector = OwnerGroup + "/owner"

// Informers are a cluster's shared informers: one per kind and label selector, started on
// first use and kept for the life of the process, whoever asks. Drift watching of every pipeline and the
// health waits of every run read the same caches, so a thousand pipelines cost one list
// and one watch per kind instead of a thousand.
type Informers struct {
	dyn   dynamic.Interface
	mu    sync.Mutex
	byKey map[informerKey]cache.SharedIndexInformer
	// failedAt holds, per informer whose list or watch last failed, its resourceVersion at
	// that moment: its cache is not trusted as current until the reflector moves past it.
	failedAt map[informerKey]string
	stop     chan struct{}
	// waiters are the channels Notify registered, by the object they follow; under wmu, so
	// events never wait for a caller of For or Current.
	wmu     sync.Mutex
	waiters map[ObjectRef]map[chan<- struct{}]struct{}
}

// ObjectRef names one object of a shared informer: its kind's resource, the informer's
// label selector, and the object's namespace and name.
type ObjectRef struct {
	Resource  schema.GroupVersionResource
	Selector  string
	Namespace string
	Name      string
}

type informerKey struct {
	gvr      schema.GroupVersionResource
	selector string
}

func newInformers(dyn dynamic.Interface) *Informers {
	return &Informers{dyn: dyn, byKey: map[informerKey]cache.SharedIndexInformer{},
		failedAt: map[informerKey]string{}, stop: make(chan struct{}),
		waiters: map[ObjectRef]map[chan<- struct{}]struct{}{}}
}

// For returns the informer of the kind's objects that selector selects, in every namespace,
// starting it if it is new. Its reflector re-lists and re-watches by itself when the API
// server goes away and comes back.
func (i *Informers) For(gvr schema.GroupVersionResource, selector string) cache.SharedIndexInformer {
	i.mu.Lock()
	defer i.mu.Unlock()
	k := informerKey{gvr, selector}
	if inf, ok := i.byKey[k]; ok {
		return inf
	}
	inf := dynamicinformer.NewFilteredDynamicInformer(i.dyn, gvr, metav1.NamespaceAll, 0,
		cache.Indexers{},
		func(o *metav1.ListOptions) { o.LabelSelector = selector }).Informer()
	// The caches keep what their readers use, compactly (CachedObject): thousands of
	// objects cost their metadata and status, not their bodies.
	_ = inf.SetTransform(compactTransform)
	_ = inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
		i.mu.Lock()
		i.failedAt[k] = inf.LastSyncResourceVersion()
		i.mu.Unlock()
		cache.DefaultWatchErrorHandler(ctx, r, err)
	})
	// One handler per informer wakes whoever follows the object: a handler per health wait
	// would be handed every object of the kind again each time one is added.
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { i.notify(k, obj) },
		UpdateFunc: func(_, obj any) { i.notify(k, obj) },
		DeleteFunc: func(obj any) { i.notify(k, obj) },
	})
	i.byKey[k] = inf
	go inf.Run(i.stop)
	return inf
}

// Notify sends on ch, without blocking (give it a buffer of one), whenever the shared
// informer of one of refs adds, changes or deletes that object, until stop is called. It
// starts no informer: For does.
func (i *Informers) Notify(ch chan<- struct{}, refs []ObjectRef) (stop func()) {
	i.wmu.Lock()
	defer i.wmu.Unlock()
	for _, r := range refs {
		if i.waiters[r] == nil {
			i.waiters[r] = map[chan<- struct{}]struct{}{}
		}
		i.waiters[r][ch] = struct{}{}
	}
	return func() {
		i.wmu.Lock()
		defer i.wmu.Unlock()
		for _, r := range refs {
			delete(i.waiters[r], ch)
			if len(i.waiters[r]) == 0 {
				delete(i.waiters, r)
			}
		}
	}
}

// notify wakes the waiters of the object an informer event is about.
func (i *Informers) notify(k informerKey, obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return
	}
	r := ObjectRef{Resource: k.gvr, Selector: k.selector, Namespace: m.GetNamespace(), Name: m.GetName()}
	i.wmu.Lock()
	defer i.wmu.Unlock()
	for ch := range i.waiters[r] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Current returns the store of the informer For would return when one was started (Current
// starts none), has synced, and has listed or watched successfully since its last failure;
// false otherwise. Its contents lag the API server by the watch's delay.
func (i *Informers) Current(gvr schema.GroupVersionResource, selector string) (cache.Store, bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	k := informerKey{gvr, selector}
	inf, ok := i.byKey[k]
	if !ok || !inf.HasSynced() || inf.IsStopped() {
		return nil, false
	}
	if rv, failed := i.failedAt[k]; failed {
		if inf.LastSyncResourceVersion() == rv {
			return nil, false
		}
		delete(i.failedAt, k)
	}
	return inf.GetStore(), true
}

// cachedReader is a kstatus ClusterReader that reads the objects of one health wait from
// the shared informers instead of listing their kinds at every poll. An object is read
// from the API server the first time (or while its informer has not synced, or when the
// cache lacks it: it may carry no owner label); after that its cached copy serves as long
// as it is at least as new as that read (its generation), so a cache that has not yet
// seen the apply never passes an old status off as the new one.
type cachedReader struct {
	informers *Informers
	mapper    meta.RESTMapper
	live      client.Reader
	mu        sync.Mutex
	floor     map[client.ObjectKey]int64 // generation read from the API server, by object
}

// cachedReaderFactory makes a cachedReader per health wait.
func cachedReaderFactory(informers *Informers) engine.ClusterReaderFactory {
	return engine.ClusterReaderFactoryFunc(func(r client.Reader, m meta.RESTMapper, _ object.ObjMetadataSet) (engine.ClusterReader, error) {
		return &cachedReader{informers: informers, mapper: m, live: r, floor: map[client.ObjectKey]int64{}}, nil
	})
}

func (c *cachedReader) Get(ctx context.Context, key client.ObjectKey, obj *unstructured.Unstructured) error {
	gvk := obj.GroupVersionKind()
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return err
	}
	inf := c.informers.For(m.Resource, OwnedSelector)
	c.mu.Lock()
	floor, seen := c.floor[key]
	c.mu.Unlock()
	if seen && inf.HasSynced() {
		item, ok, err := inf.GetStore().GetByKey(cache.NewObjectName(key.Namespace, key.Name).String())
		if c, isC := asCachedObject(item); err == nil && ok && isC && c.GetGeneration() >= floor {
			if u, err := c.Unstructured(); err == nil {
				obj.Object = u.Object
				obj.SetGroupVersionKind(gvk)
				return nil
			}
		}
	}
	if err := c.live.Get(ctx, key, obj); err != nil {
		return err
	}
	c.mu.Lock()
	c.floor[key] = obj.GetGeneration()
	c.mu.Unlock()
	return nil
}

// The lists kstatus makes are for the objects a workload generates (ReplicaSets, Pods),
// which objectStatus does not need; they go to the API server should anything ask.
func (c *cachedReader) ListNamespaceScoped(ctx context.Context, list *unstructured.UnstructuredList, namespace string, selector labels.Selector) error {
	return c.live.List(ctx, list, client.InNamespace(namespace), client.MatchingLabelsSelector{Selector: selector})
}

func (c *cachedReader) ListClusterScoped(ctx context.Context, list *unstructured.UnstructuredList, selector labels.Selector) error {
	return c.live.List(ctx, list, client.MatchingLabelsSelector{Selector: selector})
}

func (c *cachedReader) Sync(context.Context) error { return nil }

// objectStatus is the kstatus status reader of every kind: the status computed from the
// object itself, as kstatus's own readers do, without listing the ReplicaSets and Pods of
// a workload for the record (the health wait explains a failed workload by its pods
// itself).
type objectStatus struct{ mapper meta.RESTMapper }

func (objectStatus) Supports(schema.GroupKind) bool { return true }

func (s objectStatus) ReadStatus(ctx context.Context, reader engine.ClusterReader, id object.ObjMetadata) (*event.ResourceStatus, error) {
	m, err := s.mapper.RESTMapping(id.GroupKind)
	if err != nil {
		return &event.ResourceStatus{Identifier: id, Status: status.UnknownStatus, Error: err}, nil
	}
	var u unstructured.Unstructured
	u.SetGroupVersionKind(m.GroupVersionKind)
	err = reader.Get(ctx, client.ObjectKey{Namespace: id.Namespace, Name: id.Name}, &u)
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return nil, err
	case apierrors.IsNotFound(err):
		return &event.ResourceStatus{Identifier: id, Status: status.NotFoundStatus, Message: "Resource not found"}, nil
	case err != nil:
		return &event.ResourceStatus{Identifier: id, Status: status.UnknownStatus, Error: err}, nil
	}
	return s.ReadStatusForObject(ctx, reader, &u)
}

func (objectStatus) ReadStatusForObject(_ context.Context, _ engine.ClusterReader, u *unstructured.Unstructured) (*event.ResourceStatus, error) {
	id := object.UnstructuredToObjMetadata(u)
	res, err := status.Compute(u)
	if err != nil {
		return &event.ResourceStatus{Identifier: id, Status: status.UnknownStatus, Resource: u, Error: fmt.Errorf("compute status: %w", err)}, nil
	}
	return &event.ResourceStatus{Identifier: id, Status: res.Status, Resource: u, Message: res.Message}, nil
}

// CachedOwned reads the kind's objects carrying Slipway's owner label from the shared
// informer, when one was started and is current (Informers.Current); nil otherwise.
func (c *Cluster) CachedOwned(gvk schema.GroupVersionKind) func(namespace, name string) (metav1.Object, bool) {
	return c.Cached(gvk, OwnedSelector)
}

// Cached is CachedOwned for the shared informer of any label selector.
func (c *Cluster) Cached(gvk schema.GroupVersionKind, selector string) func(namespace, name string) (metav1.Object, bool) {
	m, err := c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil
	}
	st, ok := c.Informers.Current(m.Resource, selector)
	if !ok {
		return nil
	}
	return func(namespace, name string) (metav1.Object, bool) {
		item, ok, err := st.GetByKey(cache.NewObjectName(namespace, name).String())
		if c, isC := asCachedObject(item); err == nil && ok && isC {
			return c, true
		}
		return nil, false
	}
}
