package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/slipwayhq/slipway/reconciler/apply"
	"github.com/slipwayhq/slipway/reconciler/kube"
	"github.com/slipwayhq/slipway/test/testenv"
)

// When the shared watches hold every kind of a set, they drive its health wait: the wait
// ends as the watch shows the objects Current, without reading them from the API server,
// and a watch's copy older than the apply never passes for the new one.
func TestHealthWaitFollowsTheSharedWatch(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	reads := &requestCounter{match: isRead}
	cl, ap, owner := cachedApplier(ctx, t, env, reads.wrap, "health-watch")
	for _, gvr := range []schema.GroupVersionResource{
		{Version: "v1", Resource: "configmaps"},
		{Group: "apps", Version: "v1", Resource: "deployments"},
	} {
		cl.Informers.For(gvr, kube.OwnedSelector)
		for {
			if _, ok := cl.Informers.Current(gvr, kube.OwnedSelector); ok {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("the shared informer of %s never synced", gvr.Resource)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	// nowhere, when set, gives the pods a node selector no node matches: a new generation
	// whose pod never runs.
	set := func(nowhere bool) string {
		selector := ""
		if nowhere {
			selector = "\n      nodeSelector: {slipway-e2e: nowhere}"
		}
		return `apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: ` + ns + `}
data: {mode: gitops}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ` + ns + `}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: ` + env.BaseImage + `}]` + selector + `
`
	}

	// A new set: Current as soon as the watch shows the Deployment available.
	res := deploySet(ctx, t, ap, manifests(t, "app.yaml", set(false)), owner)
	before := reads.n.Load()
	if err := ap.Wait(ctx, res.Inventory, res.Seen, time.Minute); err != nil {
		t.Fatalf("wait for a new set: %v", err)
	}
	if n := reads.n.Load() - before; n != 0 {
		t.Errorf("the wait for a new set read the API server %d times, want none: the shared watch holds both kinds", n)
	}

	// The stability window follows the shared watches too: someone else's change that takes
	// the Deployment out of Current ends it, and the only read is the list of its pods.
	windowErr := make(chan error, 1)
	before = reads.n.Load()
	go func() { windowErr <- ap.WaitStable(ctx, res.Inventory, res.Seen, time.Minute, 20*time.Second) }()
	time.Sleep(2 * time.Second)
	dep := &unstructured.Unstructured{}
	dep.SetGroupVersionKind(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"})
	if err := cl.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, dep); err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedStringMap(dep.Object, map[string]string{"slipway-e2e": "nowhere"}, "spec", "template", "spec", "nodeSelector"); err != nil {
		t.Fatal(err)
	}
	if err := cl.Client.Update(ctx, dep, client.FieldOwner("someone")); err != nil {
		t.Fatal(err)
	}
	err := <-windowErr
	t.Logf("stability window: %v", err)
	if !errors.Is(err, apply.ErrUnstable) || !strings.Contains(err.Error(), "Deployment/"+ns+"/web is no longer Current") {
		t.Fatalf("want the window to end ErrUnstable, naming the Deployment no longer Current; got %v", err)
	}
	// Reads: the window's list of the Deployment's pods, and its GET of the Deployment for
	// their selector; after it, the failure's explanation reads the pods again.
	if n := reads.n.Load() - before; n > 4 {
		t.Errorf("the stability window read the API server %d times, want at most 4: its status comes from the shared watch", n)
	}
	// Someone takes the change back.
	if err := cl.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, dep); err != nil {
		t.Fatal(err)
	}
	unstructured.RemoveNestedField(dep.Object, "spec", "template", "spec", "nodeSelector")
	if err := cl.Client.Update(ctx, dep, client.FieldOwner("someone")); err != nil {
		t.Fatal(err)
	}
	seen := apply.Seen{}
	for _, e := range res.Inventory {
		seen[e.Key()] = 0
		if e.Kind == "Deployment" {
			seen[e.Key()] = dep.GetGeneration()
		}
	}
	if err := ap.Wait(ctx, res.Inventory, seen, time.Minute); err != nil {
		t.Fatalf("wait after the change was taken back: %v", err)
	}

	// A new generation whose pod never runs: the watch's copy of the old, healthy generation
	// must not end the wait.
	res = deploySet(ctx, t, ap, manifests(t, "app.yaml", set(true)), owner)
	start := time.Now()
	err = ap.Wait(ctx, res.Inventory, res.Seen, 3*time.Second)
	t.Logf("wait for the new generation: %v (after %s)", err, time.Since(start).Round(time.Millisecond))
	var we *apply.WaitError
	if !errors.Is(err, apply.ErrUnhealthy) || !errors.As(err, &we) {
		t.Fatalf("want a *apply.WaitError that is ErrUnhealthy, got %#v", err)
	}
	if want := "timeout waiting for: [Deployment/" + ns + "/web status: 'InProgress'"; !strings.Contains(err.Error(), want) {
		t.Errorf("verdict %q does not contain %q", err, want)
	}
	if strings.Contains(err.Error(), "ConfigMap/") {
		t.Errorf("verdict %q names the ConfigMap, which was Current", err)
	}
}
