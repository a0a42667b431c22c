package e2e

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/slipwayhq/slipway/test/testenv"
)

// What a pod needs (its ServiceAccount, ConfigMaps, Secrets, claims) is created before the
// workloads of the same set, and ServiceAccounts before the rest, whatever their order in
// the files: a Deployment created beside
// its ServiceAccount can have its pod refused ("error looking up service account") and
// retried by the ReplicaSet controller after a backoff of a minute or more. The
// resourceVersions the API server gave the objects tell the order of their creation. The
// workloads come first in the file, the ServiceAccounts last, eight of each kind, so a concurrent apply of all of
// them would all but surely create some workload first.
func TestApplyCreatesWhatPodsNeedBeforeTheWorkloads(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ap := applier(t, env.Kubeconfig)
	const n = 8
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web-%d, namespace: %s}
spec:
  replicas: 1
  selector: {matchLabels: {app: web-%d}}
  template:
    metadata: {labels: {app: web-%d}}
    spec:
      serviceAccountName: web-%d
      containers: [{name: web, image: busybox, envFrom: [{configMapRef: {name: web-%d}}, {secretRef: {name: web-%d}}]}]
`, i, ns, i, i, i, i, i)
	}
	for i := range n {
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-%d, namespace: %s}
data: {A: "1"}
---
apiVersion: v1
kind: Secret
metadata: {name: web-%d, namespace: %s}
stringData: {B: "2"}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: web-%d, namespace: %s}
`, i, ns, i, ns, i, ns)
	}
	// Watches from before the apply see each object's creation, with its resourceVersion
	// then (a Deployment's moves on as its controller works).
	cs := env.Clientset(t)
	list := metav1.ListOptions{}
	var watches []watch.Interface
	for _, open := range []func() (watch.Interface, error){
		func() (watch.Interface, error) { return cs.AppsV1().Deployments(ns).Watch(ctx, list) },
		func() (watch.Interface, error) { return cs.CoreV1().ServiceAccounts(ns).Watch(ctx, list) },
		func() (watch.Interface, error) { return cs.CoreV1().ConfigMaps(ns).Watch(ctx, list) },
		func() (watch.Interface, error) { return cs.CoreV1().Secrets(ns).Watch(ctx, list) },
	} {
		w, err := open()
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		watches = append(watches, w)
	}
	deploySet(ctx, t, ap, manifests(t, "k8s/app.yaml", b.String()), errorsOwner("order"))

	created := func(w watch.Interface, kind string) []int64 {
		var rvs []int64
		for len(rvs) < n {
			select {
			case ev, ok := <-w.ResultChan():
				if !ok {
					t.Fatalf("the watch of %ss ended after %d creations", kind, len(rvs))
				}
				m, err := meta.Accessor(ev.Object)
				if ev.Type != watch.Added || err != nil || !strings.HasPrefix(m.GetName(), "web-") {
					continue
				}
				v, err := strconv.ParseInt(m.GetResourceVersion(), 10, 64)
				if err != nil {
					t.Fatalf("%s %s: resourceVersion %q: %v", kind, m.GetName(), m.GetResourceVersion(), err)
				}
				rvs = append(rvs, v)
			case <-ctx.Done():
				t.Fatalf("saw %d of %d %ss created", len(rvs), n, kind)
			}
		}
		return rvs
	}
	firstWorkload := slices.Min(created(watches[0], "Deployment"))
	accounts := created(watches[1], "ServiceAccount")
	inputs := append(created(watches[2], "ConfigMap"), created(watches[3], "Secret")...)
	if last := max(slices.Max(accounts), slices.Max(inputs)); last >= firstWorkload {
		t.Errorf("a Deployment was created (resourceVersion %d) before the last of the ServiceAccounts, ConfigMaps and Secrets its pods need (%d)",
			firstWorkload, last)
	}
	// The token controller deletes a service-account-token Secret whose account is missing.
	if slices.Max(accounts) >= slices.Min(inputs) {
		t.Errorf("a ConfigMap or Secret was created (resourceVersion %d) before the last ServiceAccount (%d)",
			slices.Min(inputs), slices.Max(accounts))
	}
}
