package kube

import (
	"reflect"
	"runtime"
	"testing"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/cache"
)

// What the caches hold decodes to what slimObject leaves of the object: the same status,
// integers as int64 (kstatus reads them so), and the metadata the fingerprints and the
// drift filter read.
func TestCachedObjectDecodesToTheSlimmedObject(t *testing.T) {
	full := mustObject(t, slimDeployment)
	slim := full.DeepCopy()
	slimObject(slim)
	c, err := Compact(full.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Unstructured()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"apiVersion", "kind", "spec", "status"} {
		if !reflect.DeepEqual(got.Object[k], slim.Object[k]) {
			t.Errorf("%s decoded as %#v, want %#v", k, got.Object[k], slim.Object[k])
		}
	}
	if r, _, _ := unstructured.NestedFieldNoCopy(got.Object, "status", "readyReplicas"); reflect.TypeOf(r) != reflect.TypeOf(int64(0)) {
		t.Errorf("status.readyReplicas decoded as %T, want int64", r)
	}
	if got.GetName() != "web" || got.GetNamespace() != "apps" || got.GetGeneration() != 3 ||
		!reflect.DeepEqual(got.GetLabels(), slim.GetLabels()) || !reflect.DeepEqual(got.GetAnnotations(), slim.GetAnnotations()) ||
		!reflect.DeepEqual(got.GetManagedFields(), slim.GetManagedFields()) {
		t.Errorf("metadata decoded as %v, want %v", got.Object["metadata"], slim.Object["metadata"])
	}
	// Read without decoding, as the plan and the drift filter do.
	if c.GetGeneration() != 3 || !reflect.DeepEqual(c.GetManagedFields(), slim.GetManagedFields()) {
		t.Errorf("the cached metadata: generation %d, managedFields %+v", c.GetGeneration(), c.GetManagedFields())
	}
	want, err := status.Compute(full)
	if err != nil {
		t.Fatal(err)
	}
	res, err := status.Compute(got)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != want.Status || res.Message != want.Message {
		t.Errorf("status of the cached copy %s %q, of the object %s %q", res.Status, res.Message, want.Status, want.Message)
	}
	// Each decode is the caller's: changing one changes neither the cache nor the next.
	unstructured.RemoveNestedField(got.Object, "status")
	again, err := c.Unstructured()
	if err != nil || again.Object["status"] == nil {
		t.Fatalf("a decode after the caller changed the last one: %v, %v", again, err)
	}
}

// The transform turns what the API server sends into a CachedObject and lets through what
// it made already; a deleted object's last state is compacted too.
func TestCompactTransform(t *testing.T) {
	out, err := compactTransform(mustObject(t, slimDeployment))
	if err != nil {
		t.Fatal(err)
	}
	c, ok := out.(*CachedObject)
	if !ok {
		t.Fatalf("transformed into %T", out)
	}
	if again, err := compactTransform(c); err != nil || again != c {
		t.Fatalf("an object already compacted came out as %v, %v", again, err)
	}
	gone, err := compactTransform(cache.DeletedFinalStateUnknown{Key: "apps/web", Obj: mustObject(t, slimDeployment)})
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := gone.(cache.DeletedFinalStateUnknown); !ok || d.Key != "apps/web" {
		t.Fatalf("a deleted object's last state came out as %#v", gone)
	} else if _, ok := d.Obj.(*CachedObject); !ok {
		t.Fatalf("a deleted object's last state holds %T", d.Obj)
	}
	cp := c.DeepCopyObject().(*CachedObject)
	if !reflect.DeepEqual(cp, c) {
		t.Fatal("a deep copy differs from its original")
	}
	cp.Labels["changed"] = "yes"
	if c.Labels["changed"] != "" {
		t.Fatal("a deep copy shares its labels with the original")
	}
}

// A thousand Deployments as the caches hold them take at most half the heap of the same
// objects slimmed but kept as nested maps (measured: 43%).
func TestCachedObjectsTakeLessThanHalfTheMaps(t *testing.T) {
	const n = 1000
	heapOf := func(newObject func() any) uint64 {
		keep := make([]any, 0, n)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range n {
			keep = append(keep, newObject())
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(keep)
		return after.HeapAlloc - before.HeapAlloc
	}
	src := mustObject(t, slimDeployment)
	maps := heapOf(func() any {
		u := src.DeepCopy()
		slimObject(u)
		return u
	})
	compacted := heapOf(func() any {
		c, err := Compact(src.DeepCopy())
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
	t.Logf("%d Deployments: %d bytes as maps, %d as CachedObjects (%.0f%%)", n, maps, compacted, 100*float64(compacted)/float64(maps))
	if compacted*2 > maps {
		t.Fatalf("%d CachedObjects take %d bytes, more than half the %d of the same objects as maps", n, compacted, maps)
	}
}

// Metadata the typed conversion refuses (a label of another type than string) still
// makes a CachedObject with what the getters read: a failed transform would drop the
// watch event, or keep the cache from ever syncing.
func TestCompactNeverFailsOnOddMetadata(t *testing.T) {
	u := mustObject(t, slimDeployment)
	u.Object["metadata"].(map[string]any)["labels"] = map[string]any{"slipway.dev/owner": int64(7)}
	out, err := compactTransform(u)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := out.(*CachedObject)
	if !ok || c.Name != "web" || c.Namespace != "apps" || c.Generation != 3 || len(c.ManagedFields) != 1 {
		t.Fatalf("compacted as %#v", out)
	}
}
