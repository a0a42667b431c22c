package apply

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stypes "k8s.io/apimachinery/pkg/types"

	"github.com/slipwayhq/slipway/reconciler/kube"
	"github.com/slipwayhq/slipway/render"
	"github.com/slipwayhq/slipway/store"
)

// fakeCache serves the kinds it holds; any other kind is "not cached", and a plan that then
// lists it fails on the Applier's missing cluster.
type fakeCache map[schema.GroupVersionKind]map[string]*unstructured.Unstructured

func (f fakeCache) CachedOwned(gvk schema.GroupVersionKind) CachedObjects {
	objs, ok := f[gvk]
	if !ok {
		return nil
	}
	return func(namespace, name string) (metav1.Object, bool) {
		u, ok := objs[namespace+"/"+name]
		if !ok {
			return nil, false
		}
		// As the shared informers keep it.
		c, err := kube.Compact(u.DeepCopy())
		if err != nil {
			panic(err)
		}
		return c, true
	}
}

var configMapGVK = schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}

func planOwner() Owner {
	return OwnerOf(store.TaskRef{Pipeline: store.PipelineRef{Repository: "shop", Name: "web"}, Task: "app"})
}

func configMaps(names ...string) []render.Manifest {
	var ms []render.Manifest
	for i, n := range names {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(configMapGVK)
		u.SetNamespace("game")
		u.SetName(n)
		_ = unstructured.SetNestedField(u.Object, "gitops", "data", "mode")
		ms = append(ms, render.Manifest{Object: u, File: "app.yaml", Doc: i + 1})
	}
	return ms
}

// liveAsApplied is the live object an apply of m by owner left: owner labels and Slipway's
// apply entry, as the shared informer's cache keeps it.
func liveAsApplied(m render.Manifest, owner Owner, uid, rv string) *unstructured.Unstructured {
	u := m.Object.DeepCopy()
	PrepareObject(u, owner)
	u.SetUID(k8stypes.UID(uid))
	u.SetResourceVersion(rv)
	u.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: kube.FieldManager, Operation: metav1.ManagedFieldsOperationApply,
		APIVersion: "v1", FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:data":{"f:mode":{}}}`)}}})
	return u
}

// previousOf is the inventory a deploy of ms left, fingerprints read from live.
func previousOf(t *testing.T, ms []render.Manifest, owner Owner, live map[string]*unstructured.Unstructured) []store.InventoryEntry {
	t.Helper()
	p, err := (&Applier{}).planItems(ms, owner)
	if err != nil {
		t.Fatal(err)
	}
	var inv []store.InventoryEntry
	for _, it := range p.items {
		it.fingerprint = mustFingerprint(t, metaOf(live[it.obj.GetNamespace()+"/"+it.obj.GetName()]))
		inv = append(inv, it.entry())
	}
	return inv
}

func unchangedNames(p *Plan) map[string]bool {
	out := map[string]bool{}
	for _, it := range p.items {
		if it.unchanged {
			out[it.obj.GetName()] = true
		}
	}
	return out
}

// The plan answers from a current watch cache without a LIST (the Applier has no cluster
// to list with) and skips only what the cache shows exactly as the last deploy left it.
func TestPlanReadsFingerprintsFromTheCache(t *testing.T) {
	owner := planOwner()
	ms := configMaps("same", "edited", "relabelled", "gone", "recreated")
	live := map[string]*unstructured.Unstructured{}
	for i, m := range ms {
		live["game/"+m.Object.GetName()] = liveAsApplied(m, owner, "uid-"+m.Object.GetName(), "10"+string(rune('0'+i)))
	}
	previous := previousOf(t, ms, owner, live)

	// What happened on the cluster since, as the cache has seen it.
	live["game/edited"].SetResourceVersion("200")
	live["game/relabelled"].SetLabels(map[string]string{OwnerLabel: "someone-else"})
	delete(live, "game/gone")
	live["game/recreated"].SetUID("uid-new")

	a := &Applier{Cache: fakeCache{configMapGVK: live}}
	p, err := a.Plan(context.Background(), ms, owner, previous)
	if err != nil {
		t.Fatal(err)
	}
	got := unchangedNames(p)
	if len(got) != 1 || !got["same"] {
		t.Fatalf("unchanged = %v, want only same", got)
	}
	if p.Changed() != 4 {
		t.Fatalf("Changed() = %d, want 4", p.Changed())
	}
	want := map[string]string{}
	for _, e := range previous {
		want[e.Name] = e.Fingerprint
	}
	for _, it := range p.items {
		if it.unchanged && it.fingerprint != want[it.obj.GetName()] {
			t.Fatalf("%s: fingerprint %q, want the recorded %q", it.obj.GetName(), it.fingerprint, want[it.obj.GetName()])
		}
	}
}

// A rendering that differs from the previous one is never skipped, whatever the cache says.
func TestPlanFromCacheNeedsTheSameRendering(t *testing.T) {
	owner := planOwner()
	ms := configMaps("settings")
	live := map[string]*unstructured.Unstructured{"game/settings": liveAsApplied(ms[0], owner, "uid-1", "5")}
	previous := previousOf(t, ms, owner, live)
	next := configMaps("settings")
	_ = unstructured.SetNestedField(next[0].Object.Object, "push", "data", "mode")
	a := &Applier{Cache: fakeCache{configMapGVK: live}}
	p, err := a.Plan(context.Background(), next, owner, previous)
	if err != nil {
		t.Fatal(err)
	}
	if p.Changed() != 1 {
		t.Fatalf("Changed() = %d, want the new rendering applied", p.Changed())
	}
}

// A set nothing was applied of answers its health wait from the cache only when the cache
// holds every object and kstatus finds each Current there.
func TestCurrentInCache(t *testing.T) {
	deployGVK := schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	deployment := func(generation, observed int64) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apps/v1", "kind": "Deployment",
			"metadata": map[string]any{"name": "web", "namespace": "game", "generation": generation},
			"spec":     map[string]any{"replicas": int64(1)},
			"status": map[string]any{"observedGeneration": observed, "replicas": int64(1), "updatedReplicas": int64(1),
				"readyReplicas": int64(1), "availableReplicas": int64(1),
				"conditions": []any{map[string]any{"type": "Available", "status": "True"}}}}}
		return u
	}
	settings := liveAsApplied(configMaps("settings")[0], planOwner(), "uid-1", "7")
	inv := []store.InventoryEntry{
		{Version: "v1", Kind: "ConfigMap", Namespace: "game", Name: "settings"},
		{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "game", Name: "web"},
	}
	cases := map[string]struct {
		cache fakeCache
		want  bool
	}{
		"every object Current": {fakeCache{configMapGVK: {"game/settings": settings},
			deployGVK: {"game/web": deployment(2, 2)}}, true},
		"a rollout the controller has not observed": {fakeCache{configMapGVK: {"game/settings": settings},
			deployGVK: {"game/web": deployment(3, 2)}}, false},
		"an object the cache lacks": {fakeCache{configMapGVK: {"game/settings": settings},
			deployGVK: {}}, false},
		"a kind nobody watches": {fakeCache{configMapGVK: {"game/settings": settings}}, false},
	}
	for name, c := range cases {
		a := &Applier{Cache: c.cache}
		if got := a.currentInCache(inv); got != c.want {
			t.Errorf("%s: currentInCache = %v, want %v", name, got, c.want)
		}
	}
	if (&Applier{}).currentInCache(inv) {
		t.Error("an Applier without a cache answered from one")
	}
}
