package reconciler

import (
	"reflect"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/slipwayhq/slipway/reconciler/apply"
	"github.com/slipwayhq/slipway/render"
	"github.com/slipwayhq/slipway/store"
)

// TestHealthWaitKeepsOnlyTheInventory: what a deploy's health wait keeps (while its run has
// given its place up, beside hundreds of other waiting runs) is the applied set's inventory
// and the apply's generations, never the rendered manifests, their encoding or the apply's
// result.
func TestHealthWaitKeepsOnlyTheInventory(t *testing.T) {
	cm := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "app", "namespace": "ns"}, "data": map[string]any{"k": "v"}}}
	inv := []store.InventoryEntry{
		{Version: "v1", Kind: "ConfigMap", Namespace: "ns", Name: "app", Digest: "d1"},
		{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "ns", Name: "app", Digest: "d2"},
	}
	spec := revisionSpec{task: "deploy", cluster: "c", namespace: "ns", manifests: []render.Manifest{{Object: cm, File: "app.yaml", Doc: 1}},
		objects: []byte("---\nkind: ConfigMap\n"), prune: true, wait: 5 * time.Minute, stableFor: 30 * time.Second}
	res := &apply.Result{Inventory: inv, Skipped: 1, Seen: apply.Seen{inv[0].Key(): 0, inv[1].Key(): 3},
		Changes: []apply.Change{{Object: "ConfigMap/ns/app", Action: "unchanged"}, {Object: "Deployment/ns/app", Action: "created"}}}

	hw := newHealthWait(spec, res)
	if hw.task != "deploy" || hw.wait != 5*time.Minute || hw.stableFor != 30*time.Second {
		t.Errorf("task, wait, window = %q, %s, %s; want deploy, 5m0s, 30s", hw.task, hw.wait, hw.stableFor)
	}
	if !reflect.DeepEqual(hw.inventory, inv) || !reflect.DeepEqual(hw.seen, res.Seen) {
		t.Errorf("inventory, seen = %v, %v; want %v, %v", hw.inventory, hw.seen, inv, res.Seen)
	}
	if hw.untouched {
		t.Error("a set one object of which was applied is not untouched")
	}
	res.Skipped = len(inv)
	if !newHealthWait(spec, res).untouched {
		t.Error("a set nothing of which was applied is untouched: the shared watch's view holds")
	}

	// By type: nothing the wait keeps can reach a rendered object, bytes of an encoding, the
	// spec or the apply's result.
	banned := map[reflect.Type]string{
		reflect.TypeFor[render.Manifest]():           "a rendered manifest",
		reflect.TypeFor[unstructured.Unstructured](): "a decoded object",
		reflect.TypeFor[[]byte]():                    "encoded bytes",
		reflect.TypeFor[revisionSpec]():              "the revision's spec",
		reflect.TypeFor[apply.Result]():              "the apply's result",
		reflect.TypeFor[apply.Change]():              "the apply's changes",
	}
	seen := map[reflect.Type]bool{}
	var walk func(typ reflect.Type, path string)
	walk = func(typ reflect.Type, path string) {
		if seen[typ] {
			return
		}
		seen[typ] = true
		if what, ok := banned[typ]; ok {
			t.Errorf("the health wait keeps %s (%s)", what, path)
			return
		}
		switch typ.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array:
			walk(typ.Elem(), path+"[]")
		case reflect.Map:
			walk(typ.Key(), path+"{key}")
			walk(typ.Elem(), path+"{}")
		case reflect.Struct:
			for i := range typ.NumField() {
				f := typ.Field(i)
				walk(f.Type, path+"."+f.Name)
			}
		case reflect.Interface, reflect.Func, reflect.Chan:
			t.Errorf("the health wait keeps %s (%s), which may hold anything", typ, path)
		}
	}
	walk(reflect.TypeFor[healthWait](), "healthWait")
}
