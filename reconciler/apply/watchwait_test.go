package apply

import (
	"context"
	"testing"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/cache"

	"github.com/slipwayhq/slipway/reconciler/kube"
	"github.com/slipwayhq/slipway/store"
)

// availableDeployment is a Deployment at generation gen whose status shows that generation
// rolled out and available.
func availableDeployment(gen int64) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "namespace": "shop", "generation": gen},
		"spec":     map[string]any{"replicas": int64(1)},
		"status": map[string]any{"observedGeneration": gen, "replicas": int64(1), "updatedReplicas": int64(1),
			"readyReplicas": int64(1), "availableReplicas": int64(1),
			"conditions": []any{
				map[string]any{"type": "Available", "status": "True"},
				map[string]any{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
			}},
	}}
	return u
}

// asCached is u as the shared informers keep it.
func asCached(t *testing.T, u *unstructured.Unstructured) *kube.CachedObject {
	t.Helper()
	c, err := kube.Compact(u)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The watch's copy of an object older than the apply (a lower generation) is not taken
// for its status, however healthy it looks; once the watch delivers the applied
// generation, its status counts. No API server is asked meanwhile.
func TestWatchedWaitIgnoresCopiesOlderThanTheApply(t *testing.T) {
	st := cache.NewStore(cache.MetaNamespaceKeyFunc)
	if err := st.Add(asCached(t, availableDeployment(1))); err != nil {
		t.Fatal(err)
	}
	o := &watchedObject{entry: store.InventoryEntry{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "shop", Name: "web"},
		cache: st, floor: 2, known: true, liveAt: time.Now()}
	a := &Applier{} // no cluster: a read of the API server would panic
	if err := a.checkWatched(context.Background(), []*watchedObject{o}); err != nil {
		t.Fatal(err)
	}
	if o.status == status.CurrentStatus {
		t.Fatalf("a copy at generation 1 passed for the applied generation 2: %s", o.status)
	}
	if err := st.Update(asCached(t, availableDeployment(2))); err != nil {
		t.Fatal(err)
	}
	if err := a.checkWatched(context.Background(), []*watchedObject{o}); err != nil {
		t.Fatal(err)
	}
	if o.status != status.CurrentStatus {
		t.Fatalf("the applied generation, available: status %s (%s), want Current", o.status, o.msg)
	}
	// Moved on before the rest of the set was healthy: no longer counted Current.
	moved := availableDeployment(2)
	moved.SetGeneration(3)
	if err := st.Update(asCached(t, moved)); err != nil {
		t.Fatal(err)
	}
	if err := a.checkWatched(context.Background(), []*watchedObject{o}); err != nil {
		t.Fatal(err)
	}
	if o.status == status.CurrentStatus {
		t.Fatal("a copy whose new generation is not yet observed still counts Current")
	}
}
