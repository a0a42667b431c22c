package kube

import (
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/client-go/tools/cache"
)

// CachedObject is an object as the shared informers keep it: what slimObject leaves of it,
// with the metadata typed and the rest (the status and the spec fields statuses are
// computed from) as JSON. The same object as nested maps took about three times the
// memory, and a thousand applications' caches hold thousands of them. Metadata reads
// (drift's change filter, a plan's fingerprints) use it as it is; status readers decode
// it with Unstructured.
type CachedObject struct {
	metav1.TypeMeta
	metav1.ObjectMeta
	rest []byte // the JSON object of the top-level fields other than apiVersion, kind and metadata
}

// DeepCopyObject copies the metadata; the JSON is never written to, so it is shared.
func (c *CachedObject) DeepCopyObject() runtime.Object {
	out := &CachedObject{TypeMeta: c.TypeMeta, rest: c.rest}
	c.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	return out
}

// Unstructured decodes the object into a new Unstructured the caller owns: numbers come
// out as the API server's decoding gives them (int64 where integral), as status readers
// expect.
func (c *CachedObject) Unstructured() (*unstructured.Unstructured, error) {
	obj := map[string]any{}
	if len(c.rest) > 0 {
		if err := utiljson.Unmarshal(c.rest, &obj); err != nil {
			return nil, fmt.Errorf("decode the cached %s %s/%s: %w", c.Kind, c.Namespace, c.Name, err)
		}
	}
	md, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&c.ObjectMeta)
	if err != nil {
		return nil, fmt.Errorf("decode the cached %s %s/%s: %w", c.Kind, c.Namespace, c.Name, err)
	}
	obj["metadata"] = md
	u := &unstructured.Unstructured{Object: obj}
	u.SetAPIVersion(c.APIVersion)
	u.SetKind(c.Kind)
	return u, nil
}

// Compact is u as the shared informers keep it: slimmed (slimObject, which changes u) and
// turned into a CachedObject.
func Compact(u *unstructured.Unstructured) (*CachedObject, error) {
	slimObject(u)
	c := &CachedObject{TypeMeta: metav1.TypeMeta{APIVersion: u.GetAPIVersion(), Kind: u.GetKind()}}
	if md, ok := u.Object["metadata"].(map[string]any); ok {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(md, &c.ObjectMeta); err != nil {
			// A field of an unexpected type: what the readers use, through the getters,
			// which never fail. A failed transform would drop a watch event (a deletion
			// among them) or stop the cache from ever syncing.
			c.ObjectMeta = metaOf(u)
		}
	}
	rest := make(map[string]any, len(u.Object))
	for k, v := range u.Object {
		switch k {
		case "apiVersion", "kind", "metadata":
		default:
			rest[k] = v
		}
	}
	if len(rest) > 0 {
		b, err := json.Marshal(rest) // a slice of its own length, not a buffer's
		if err != nil {
			return nil, err
		}
		c.rest = b
	}
	return c, nil
}

// metaOf is u's metadata through the Unstructured getters.
func metaOf(u *unstructured.Unstructured) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: u.GetName(), Namespace: u.GetNamespace(), UID: u.GetUID(),
		ResourceVersion: u.GetResourceVersion(), Generation: u.GetGeneration(),
		CreationTimestamp: u.GetCreationTimestamp(), DeletionTimestamp: u.GetDeletionTimestamp(),
		Labels: u.GetLabels(), Annotations: u.GetAnnotations(), OwnerReferences: u.GetOwnerReferences(),
		Finalizers: u.GetFinalizers(), ManagedFields: u.GetManagedFields()}
}

// compactTransform is the shared informers' transform: an object from the API server
// becomes a CachedObject. The informer may hand it an object it transformed already, or a
// deleted object's last state; those pass as they are.
func compactTransform(obj any) (any, error) {
	switch o := obj.(type) {
	case *unstructured.Unstructured:
		c, err := Compact(o)
		if err != nil {
			return nil, fmt.Errorf("cache %s %s/%s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
		return c, nil
	case cache.DeletedFinalStateUnknown:
		if u, ok := o.Obj.(*unstructured.Unstructured); ok {
			c, err := Compact(u)
			if err != nil {
				return nil, err
			}
			o.Obj = c
		}
		return o, nil
	}
	return obj, nil
}

// asCachedObject is the informer store's item as a CachedObject, if it is one.
func asCachedObject(item any) (*CachedObject, bool) {
	c, ok := item.(*CachedObject)
	return c, ok && c != nil
}
