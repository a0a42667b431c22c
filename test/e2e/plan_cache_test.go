package e2e

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/slipwayhq/slipway/reconciler/apply"
	"github.com/slipwayhq/slipway/reconciler/kube"
	"github.com/slipwayhq/slipway/store"
	"github.com/slipwayhq/slipway/test/testenv"
)

// requestCounter counts the requests a cluster connection sends that match.
type requestCounter struct {
	match func(*http.Request) bool
	n     atomic.Int64
}

func (c *requestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if c.match(r) {
			c.n.Add(1)
		}
		return rt.RoundTrip(r)
	})
}

// isRead: a GET that is not a watch.
func isRead(r *http.Request) bool {
	return r.Method == http.MethodGet && r.URL.Query().Get("watch") != "true"
}

// isList: a read of a collection with a label selector (the plan's and the informers' own).
func isList(r *http.Request) bool { return isRead(r) && r.URL.Query().Has("labelSelector") }

// rv reads a resourceVersion as a number, as the test environment's etcd writes them.
func rv(u metav1.Object) int64 {
	n, _ := strconv.ParseInt(u.GetResourceVersion(), 10, 64)
	return n
}

// cachedApplier connects to the environment's cluster through wrap, as the daemon does
// (its shared informers the Applier's Cache), and names the owner of pipeline's objects.
func cachedApplier(ctx context.Context, t *testing.T, env *testenv.Env, wrap func(http.RoundTripper) http.RoundTripper, pipeline string) (*kube.Cluster, *apply.Applier, apply.Owner) {
	t.Helper()
	cl, err := kube.Connect(ctx, kube.Spec{Name: "e2e", Kubeconfig: env.Kubeconfig, WrapTransport: wrap})
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	owner := apply.OwnerOf(store.TaskRef{Pipeline: store.PipelineRef{Repository: "e2e", Name: pipeline}, Task: "app"})
	return cl, &apply.Applier{Cluster: cl, Log: logrus.NewEntry(log), Cache: cl}, owner
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// The plan reads "is the live object as the last deploy left it" from the shared informers'
// cache for the kinds they watch (no LIST), and LISTs the kinds nobody watches. The cache
// keeps Slipway's own managed-fields entry, so a field another manager took over without a
// new generation (a label) still shows: that object is applied again.
func TestPlanReadsUnchangedObjectsFromTheSharedCache(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	lists := &requestCounter{match: isList}
	cl, ap, owner := cachedApplier(ctx, t, env, lists.wrap, "plan-cache")
	ms := manifests(t, "app.yaml", `apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: `+ns+`}
data: {mode: gitops}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: `+ns+`, labels: {tier: web}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: `+env.BaseImage+`}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: `+ns+`}
spec:
  selector: {app: web}
  ports: [{port: 80}]
`)
	res := deploySet(ctx, t, ap, ms, owner)

	// Drift watching and health waits start the informers of the kinds they watch: here
	// ConfigMaps and Deployments, not Services.
	configMaps := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	deployments := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	for _, gvr := range []schema.GroupVersionResource{configMaps, deployments} {
		cl.Informers.For(gvr, kube.OwnedSelector)
	}
	cm := &unstructured.Unstructured{}
	cm.SetGroupVersionKind(schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"})
	dep := &unstructured.Unstructured{}
	dep.SetGroupVersionKind(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"})
	waitCached := func(gvr schema.GroupVersionResource, obj *unstructured.Unstructured) {
		t.Helper()
		if err := cl.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: obj.GetName()}, obj); err != nil {
			t.Fatal(err)
		}
		for {
			if st, ok := cl.Informers.Current(gvr, kube.OwnedSelector); ok {
				item, found, _ := st.GetByKey(cache.NewObjectName(ns, obj.GetName()).String())
				// At least as new: a controller may have written the object since.
				if c, isC := item.(*kube.CachedObject); found && isC && rv(c) >= rv(obj) {
					return
				}
			}
			select {
			case <-ctx.Done():
				t.Fatalf("the shared cache never showed %s at resourceVersion %s", obj.GetName(), obj.GetResourceVersion())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	cm.SetName("settings")
	dep.SetName("web")
	plan := func(previous []store.InventoryEntry) (*apply.Plan, int64) {
		t.Helper()
		before := lists.n.Load()
		p, err := ap.Plan(ctx, ms, owner, previous)
		if err != nil {
			t.Fatal(err)
		}
		return p, lists.n.Load() - before
	}

	waitCached(configMaps, cm)
	waitCached(deployments, dep)
	p, n := plan(res.Inventory)
	if p.Changed() != 0 || n != 1 {
		t.Fatalf("re-plan of the same set: %d of %d changed with %d LISTs, want 0 changed and one LIST (Services, not watched)", p.Changed(), p.Len(), n)
	}

	// Someone changes a label of the Deployment: no new generation (metadata), but the field
	// leaves Slipway's managed-fields entry. Someone edits the ConfigMap.
	if err := cl.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, dep); err != nil {
		t.Fatal(err)
	}
	generation := dep.GetGeneration()
	relabel := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"tier":"by-hand"}}}`))
	if err := cl.Client.Patch(ctx, dep, relabel, client.FieldOwner("someone")); err != nil {
		t.Fatal(err)
	}
	if dep.GetGeneration() != generation {
		t.Fatalf("a label change moved the Deployment's generation %d -> %d: the test no longer isolates managed fields", generation, dep.GetGeneration())
	}
	if err := cl.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "settings"}, cm); err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(cm.Object, "by-hand", "data", "mode"); err != nil {
		t.Fatal(err)
	}
	if err := cl.Client.Update(ctx, cm, client.FieldOwner("someone")); err != nil {
		t.Fatal(err)
	}
	waitCached(configMaps, cm)
	waitCached(deployments, dep)
	p, n = plan(res.Inventory)
	if p.Changed() != 2 || n != 1 {
		t.Fatalf("after the edits: %d of %d changed with %d LISTs, want 2 (the ConfigMap and the Deployment) and one LIST", p.Changed(), p.Len(), n)
	}
	if err := ap.DryRun(ctx, p); err != nil {
		t.Fatal(err)
	}
	res, err := ap.Apply(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]string{}
	for _, c := range res.Changes {
		actions[c.Object[:strings.Index(c.Object, "/")]] = c.Action
	}
	if actions["ConfigMap"] != "configured" || actions["Deployment"] != "configured" || actions["Service"] != "unchanged" {
		t.Fatalf("actions %v, want the ConfigMap and the Deployment configured and the Service unchanged", actions)
	}
	if err := cl.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "settings"}, cm); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := unstructured.NestedString(cm.Object, "data", "mode"); got != "gitops" {
		t.Fatalf("data.mode = %q after the re-apply, want gitops", got)
	}
}
