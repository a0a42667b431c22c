package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/test/testenv"
)

// A re-deploy of an unchanged set skips every object (no dry-run, no apply: the live
// objects are untouched), even a Deployment whose status its controller rewrote since;
// an object someone changed on the cluster is applied again, and only that one.
func TestDeployYAMLSkipsUnchangedObjects(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	manifests := `apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: gitops
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: ` + env.BaseImage + `}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{port: 80}]
`
	repo, repoName, cfg := newProject(t, env)
	repo.commit("app", map[string][]byte{
		".pipeline.yaml": []byte("name: noop\nstages:\n- name: deploy\n  tasks:\n  - name: app\n    type: deploy-yaml\n    path: app.yaml\n    cluster: e2e\n    namespace: " + ns + "\n    wait: 30s\n"),
		"app.yaml":       []byte(manifests),
	})
	run := func(what string) string {
		t.Helper()
		out, code := slipway(t, "run", "--config", cfg, "--repo", repoName)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", what, code, out)
		}
		return out
	}
	run("first run")
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "settings", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := cs.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// Same commit again: the Deployment became Available since (status writes), yet all
	// three are unchanged and nothing is sent but LISTs.
	out := run("re-run")
	if !strings.Contains(out, "server-side dry-run of 0 objects passed (3 unchanged since the last deploy)") {
		t.Errorf("re-run did not skip all three objects:\n%s", out)
	}
	for _, obj := range []string{"ConfigMap/" + ns + "/settings", "Deployment/" + ns + "/web", "Service/" + ns + "/web"} {
		if !strings.Contains(out, obj+" unchanged") {
			t.Errorf("re-run: %s not reported unchanged:\n%s", obj, out)
		}
	}
	cm2, _ := cs.CoreV1().ConfigMaps(ns).Get(ctx, "settings", metav1.GetOptions{})
	svc2, _ := cs.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
	if cm2.ResourceVersion != cm.ResourceVersion || svc2.ResourceVersion != svc.ResourceVersion {
		t.Errorf("re-run wrote objects: ConfigMap rv %s -> %s, Service rv %s -> %s",
			cm.ResourceVersion, cm2.ResourceVersion, svc.ResourceVersion, svc2.ResourceVersion)
	}

	// Someone edits the ConfigMap by hand: the next run applies it again, and only it.
	cm2.Data["mode"] = "by-hand"
	if _, err := cs.CoreV1().ConfigMaps(ns).Update(ctx, cm2, metav1.UpdateOptions{FieldManager: "someone"}); err != nil {
		t.Fatal(err)
	}
	out = run("run after a hand edit")
	want := fmt.Sprintf("ConfigMap/%s/settings configured", ns)
	if !strings.Contains(out, want) || !strings.Contains(out, "server-side dry-run of 1 objects passed (2 unchanged since the last deploy)") {
		t.Errorf("after a hand edit: want %q and only it dry-run:\n%s", want, out)
	}
	cm3, _ := cs.CoreV1().ConfigMaps(ns).Get(ctx, "settings", metav1.GetOptions{})
	if cm3.Data["mode"] != "gitops" {
		t.Errorf("data.mode = %q after the run, want gitops restored", cm3.Data["mode"])
	}
}
