package e2e

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/reconciler/apply"
	"github.com/slipwayhq/slipway/reconciler/kube"
	"github.com/slipwayhq/slipway/render"
	"github.com/slipwayhq/slipway/store"
	"github.com/slipwayhq/slipway/test/testenv"
)

// The apply layer's errors keep the API server's answer: callers test them with errors.Is
// against apply's classes (and apierrors' own tests), on the real API server's refusals.

func applier(t *testing.T, kubeconfig string) *apply.Applier {
	t.Helper()
	cl, err := kube.Connect(context.Background(), kube.Spec{Name: "e2e", Kubeconfig: kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	return &apply.Applier{Cluster: cl, Log: logrus.NewEntry(log)}
}

func manifests(t *testing.T, file, text string) []render.Manifest {
	t.Helper()
	ms, err := render.ParseManifests(file, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// deploySet plans, dry-runs and applies ms as a deploy does, failing the test on any error.
func deploySet(ctx context.Context, t *testing.T, ap *apply.Applier, ms []render.Manifest, owner apply.Owner) *apply.Result {
	t.Helper()
	p, err := ap.Plan(ctx, ms, owner, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ap.DryRun(ctx, p); err != nil {
		t.Fatal(err)
	}
	res, err := ap.Apply(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// objectError finds the *apply.ObjectError of object in err and checks its operation.
func objectError(t *testing.T, err error, op apply.Op, object string) *apply.ObjectError {
	t.Helper()
	var found *apply.ObjectError
	var walk func(error) bool
	walk = func(err error) bool {
		var oe *apply.ObjectError
		if errors.As(err, &oe) && oe.Object == object {
			found = oe
			return true
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				if walk(e) {
					return true
				}
			}
		}
		return false
	}
	if !walk(err) {
		t.Fatalf("no *apply.ObjectError for %s in: %v", object, err)
	}
	if found.Op != op {
		t.Errorf("%s: op %q, want %q", object, found.Op, op)
	}
	return found
}

// Two objects the API server refuses as invalid: the dry-run reports both, nothing is
// applied, and the one error answers ErrInvalid and names each object with its file.
func TestApplyErrorsInvalid(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ap := applier(t, env.Kubeconfig)
	ms := manifests(t, "k8s/bad.yaml", `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: `+ns+`}
spec:
  replicas: -1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: busybox}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: fine, namespace: `+ns+`}
data: {a: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: broken, namespace: `+ns+`}
data: {"not a key!": "1"}
`)
	p, err := ap.Plan(ctx, ms, errorsOwner("invalid"), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = ap.DryRun(ctx, p)
	t.Logf("dry-run error:\n%v", err)
	if !errors.Is(err, apply.ErrInvalid) || errors.Is(err, apply.ErrForbidden) || errors.Is(err, apply.ErrConflict) {
		t.Fatalf("errors.Is: invalid %v, forbidden %v, conflict %v; want only invalid",
			errors.Is(err, apply.ErrInvalid), errors.Is(err, apply.ErrForbidden), errors.Is(err, apply.ErrConflict))
	}
	if !apierrors.IsInvalid(err) {
		t.Errorf("apierrors.IsInvalid does not see the API server's status")
	}
	var dr *apply.DryRunError
	if !errors.As(err, &dr) || len(dr.Errs) != 2 {
		t.Fatalf("want a *apply.DryRunError of 2 objects, got %#v", err)
	}
	for _, c := range []struct{ object, field string }{
		{"Deployment/" + ns + "/web", "spec.replicas"},
		{"ConfigMap/" + ns + "/broken", "not a key!"},
	} {
		oe := objectError(t, err, apply.OpDryRun, c.object)
		if oe.File != "k8s/bad.yaml" || !errors.Is(oe, apply.ErrInvalid) || !strings.Contains(oe.Error(), c.field) {
			t.Errorf("%s: file %q, invalid %v, message %q", c.object, oe.File, errors.Is(oe, apply.ErrInvalid), oe.Error())
		}
	}
	for _, want := range []string{"nothing was applied", "Deployment/" + ns + "/web (k8s/bad.yaml, document 1): ", "ConfigMap/" + ns + "/broken (k8s/bad.yaml, document 3): "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q", want)
		}
	}
	if _, err := ap.Apply(ctx, p); err == nil {
		t.Errorf("Apply took a plan whose dry-run failed")
	}
	if _, err := env.Clientset(t).CoreV1().ConfigMaps(ns).Get(ctx, "fine", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the valid object was applied after a failed dry-run: %v", err)
	}
}

// A user bound only to `view`: the dry-run is refused (403), and so is prune's delete of an
// object the admin applied; the object stays in kept for a later run.
func TestApplyErrorsForbidden(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := applier(t, env.Kubeconfig)
	viewer := applier(t, env.KubeconfigLimited)
	owner := errorsOwner("forbidden")
	cm := func(name string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + ", namespace: " + ns + "}\ndata: {a: \"1\"}\n"
	}

	p, err := viewer.Plan(ctx, manifests(t, "cm.yaml", cm("mine")), owner, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = viewer.DryRun(ctx, p)
	t.Logf("dry-run as viewer: %v", err)
	if !errors.Is(err, apply.ErrForbidden) || errors.Is(err, apply.ErrInvalid) || !apierrors.IsForbidden(err) {
		t.Fatalf("errors.Is ErrForbidden %v, ErrInvalid %v, apierrors.IsForbidden %v; want true, false, true",
			errors.Is(err, apply.ErrForbidden), errors.Is(err, apply.ErrInvalid), apierrors.IsForbidden(err))
	}
	objectError(t, err, apply.OpDryRun, "ConfigMap/"+ns+"/mine")

	res := deploySet(ctx, t, admin, manifests(t, "cm.yaml", cm("old")), owner)
	deleted, kept, err := viewer.Prune(ctx, res.Inventory, nil, owner)
	t.Logf("prune as viewer: %v", err)
	if !errors.Is(err, apply.ErrForbidden) || !apierrors.IsForbidden(err) {
		t.Fatalf("prune: errors.Is ErrForbidden %v, apierrors.IsForbidden %v", errors.Is(err, apply.ErrForbidden), apierrors.IsForbidden(err))
	}
	oe := objectError(t, err, apply.OpPrune, "ConfigMap/"+ns+"/old")
	if want := "ConfigMap/" + ns + "/old prune failed: configmaps \"old\" is forbidden"; !strings.HasPrefix(oe.Error(), want) {
		t.Errorf("message %q, want it to start %q", oe.Error(), want)
	}
	if len(deleted) != 0 || len(kept) != 1 || kept[0].Name != "old" {
		t.Errorf("deleted %v, kept %v; want only old kept", deleted, kept)
	}
}

// Slipway forces field ownership, so another manager's fields never conflict. The API
// server's optimistic lock still can: a manifest carrying metadata.resourceVersion (as
// `kubectl get -o yaml` output does) conflicts once the object changed. Changed between the
// dry-run and the apply, the apply fails; changed before, the dry-run does.
func TestApplyErrorsConflict(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ap := applier(t, env.Kubeconfig)
	cs := env.Clientset(t)
	owner := errorsOwner("conflict")
	cm := func(rv string) []render.Manifest {
		return manifests(t, "settings.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: "+ns+
			", resourceVersion: \""+rv+"\"}\ndata: {mode: gitops}\n")
	}
	deploySet(ctx, t, ap, manifests(t, "settings.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: "+ns+"}\ndata: {mode: first}\n"), owner)
	live, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "settings", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stale := live.ResourceVersion

	p, err := ap.Plan(ctx, cm(stale), owner, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ap.DryRun(ctx, p); err != nil {
		t.Fatalf("dry-run with the live resourceVersion: %v", err)
	}
	live.Data["mode"] = "by-hand"
	if _, err := cs.CoreV1().ConfigMaps(ns).Update(ctx, live, metav1.UpdateOptions{FieldManager: "someone-else"}); err != nil {
		t.Fatal(err)
	}
	_, err = ap.Apply(ctx, p)
	t.Logf("apply after a change: %v", err)
	if !errors.Is(err, apply.ErrConflict) || errors.Is(err, apply.ErrInvalid) || !apierrors.IsConflict(err) {
		t.Fatalf("apply: errors.Is ErrConflict %v, ErrInvalid %v, apierrors.IsConflict %v; want true, false, true",
			errors.Is(err, apply.ErrConflict), errors.Is(err, apply.ErrInvalid), apierrors.IsConflict(err))
	}
	oe := objectError(t, err, apply.OpApply, "ConfigMap/"+ns+"/settings")
	if want := "ConfigMap/" + ns + "/settings (settings.yaml, document 1) apply failed: "; !strings.HasPrefix(err.Error(), want) || oe.File != "settings.yaml" {
		t.Errorf("message %q, want it to start %q", err, want)
	}

	p, err = ap.Plan(ctx, cm(stale), owner, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = ap.DryRun(ctx, p)
	t.Logf("dry-run with a stale resourceVersion: %v", err)
	if !errors.Is(err, apply.ErrConflict) || !apierrors.IsConflict(err) {
		t.Fatalf("dry-run: errors.Is ErrConflict %v, apierrors.IsConflict %v", errors.Is(err, apply.ErrConflict), apierrors.IsConflict(err))
	}
	objectError(t, err, apply.OpDryRun, "ConfigMap/"+ns+"/settings")
}

// A workload that does not become ready in the wait: ErrUnhealthy, with its verdict kept.
func TestApplyErrorsUnhealthy(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ap := applier(t, env.Kubeconfig)
	res := deploySet(ctx, t, ap, manifests(t, "web.yaml", `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: `+ns+`}
spec:
  minReadySeconds: 300
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: busybox}]}
`), errorsOwner("unhealthy"))
	err := ap.Wait(ctx, res.Inventory, res.Seen, 3*time.Second)
	t.Logf("wait: %v", err)
	var we *apply.WaitError
	if !errors.Is(err, apply.ErrUnhealthy) || !errors.As(err, &we) || !strings.HasPrefix(err.Error(), "health wait: ") {
		t.Fatalf("want a *apply.WaitError that is ErrUnhealthy, got %#v", err)
	}
	if !strings.Contains(err.Error(), "Deployment/"+ns+"/web") {
		t.Errorf("the message does not name the Deployment: %v", err)
	}
}

// errorsOwner is the owner of the objects one of these tests applies.
func errorsOwner(task string) apply.Owner {
	return apply.OwnerOf(store.TaskRef{Pipeline: store.PipelineRef{Repository: "e2e", Name: "errors"}, Task: task})
}
