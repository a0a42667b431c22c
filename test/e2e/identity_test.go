package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/slipwayhq/slipway/reconciler/apply"
	"github.com/slipwayhq/slipway/store"
	"github.com/slipwayhq/slipway/test/testenv"
)

// assertOwnedBy checks the owner metadata of an object Slipway applied for the task named
// REPOSITORY/PIPELINE/TASK: the annotation names it in full, the label is its safe form,
// and the labels of older Slipways are gone.
func assertOwnedBy(t *testing.T, what string, m metav1.ObjectMeta, task string) {
	t.Helper()
	parts := strings.Split(task, "/")
	ref := store.TaskRef{Pipeline: store.PipelineRef{Repository: parts[0], Name: parts[1]}, Task: parts[2]}
	if m.Annotations["slipway.dev/owner"] != task || m.Labels["slipway.dev/owner"] != apply.LabelValue(ref) ||
		!strings.HasPrefix(m.Labels["slipway.dev/owner"], parts[1]+"."+parts[2]+"-") {
		t.Errorf("%s is not owned by %s: labels %v annotations %v", what, task, m.Labels, m.Annotations)
	}
	if _, ok := m.Labels["slipway.dev/name"]; ok {
		t.Errorf("%s still has the old owner labels: %v", what, m.Labels)
	}
	if _, ok := m.Labels["slipway.dev/namespace"]; ok {
		t.Errorf("%s still has the old owner labels: %v", what, m.Labels)
	}
}

// twinPipeline is the pipeline both repositories of the twin test hold: same pipeline and
// task names, same namespace, drift reported.
func twinPipeline(ns string) []byte {
	return []byte(`name: twin
stages:
  - name: deploy
    tasks:
      - name: deploy
        type: deploy-yaml
        path: app.yaml
        cluster: e2e
        namespace: ` + ns + `
        wait: 60s
        drift: report
`)
}

// twinObjects are ConfigMaps with the given names and a one-replica Deployment named web.
func twinObjects(web string, configMaps ...string) []byte {
	var b strings.Builder
	for _, name := range configMaps {
		b.WriteString("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\ndata:\n  k: v\n")
	}
	b.WriteString(`---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ` + web + `
spec:
  replicas: 1
  selector:
    matchLabels: {app: ` + web + `}
  template:
    metadata:
      labels: {app: ` + web + `}
    spec:
      containers:
        - name: web
          image: example.com/web:1
`)
	return []byte(b.String())
}

func configMapExists(t *testing.T, cs kubernetes.Interface, ns, name string) bool {
	t.Helper()
	_, err := cs.CoreV1().ConfigMaps(ns).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// Two repositories whose pipelines have equal pipeline and task names deploy to one
// namespace: each keeps its objects, owned by its own identity; one may not take the
// other's object, even with adopt: true; an object handed over from one to the other
// (owner label removed by hand, then adopted) survives the first one's prune; a prune in
// one never touches the other's objects; and drift of one's Deployment is reported
// against that repository's pipeline only.
func TestTwoRepositoriesWithEqualNamesKeepApart(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	ctx := context.Background()

	repoA, urlA := newWorkRepo(t, env)
	repoB, urlB := newWorkRepo(t, env)
	nameOf := func(url string) string { return strings.TrimSuffix(url[strings.LastIndex(url, "/")+1:], ".git") }
	a, b := nameOf(urlA), nameOf(urlB)
	cfg := writeConfig(t, env, a, urlA)
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	second := "\n  - name: " + b + "\n    url: " + urlB + "\n    branch: master\n    auth: {usernameFile: git-user, passwordFile: git-password}\n    poll: 1s\n    " + grantEverything + "\nclusters:"
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(text), "\nclusters:", second, 1)), 0o600); err != nil {
		t.Fatal(err)
	}

	// "shared" starts in repository a; b takes it over later.
	repoA.commit("a", map[string][]byte{".pipeline.yaml": twinPipeline(ns), "app.yaml": twinObjects("a-web", "a-one", "a-two", "shared")})
	repoB.commit("b", map[string][]byte{".pipeline.yaml": twinPipeline(ns), "app.yaml": twinObjects("b-web", "b-one", "b-two")})
	startServe(t, cfg)
	succeeded := func(n int) func([]historyEntry) bool {
		return func(h []historyEntry) bool { return len(h) == n && h[0].Status == "succeeded" }
	}
	waitPipelineHistory(t, cfg, a+"/twin", 90*time.Second, "run 1 of a", succeeded(1))
	waitPipelineHistory(t, cfg, b+"/twin", 90*time.Second, "run 1 of b", succeeded(1))

	for repo, names := range map[string][]string{a: {"a-one", "a-two", "shared"}, b: {"b-one", "b-two"}} {
		for _, name := range names {
			cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			assertOwnedBy(t, "ConfigMap "+name, cm.ObjectMeta, repo+"/twin/deploy")
		}
	}
	if got, other := apply.LabelValue(store.TaskRef{Pipeline: store.PipelineRef{Repository: a, Name: "twin"}, Task: "deploy"}),
		apply.LabelValue(store.TaskRef{Pipeline: store.PipelineRef{Repository: b, Name: "twin"}, Task: "deploy"}); got == other {
		t.Fatalf("both repositories' tasks have the label value %q", got)
	}

	// b may not take "shared" from a, even with adopt: true: its run fails naming the
	// object and its owner, before anything is applied.
	adopting := append(twinPipeline(ns), "        adopt: true\n"...)
	repoB.commit("b takes shared", map[string][]byte{".pipeline.yaml": adopting, "app.yaml": twinObjects("b-web", "b-one", "b-two", "shared")})
	h := waitPipelineHistory(t, cfg, b+"/twin", 90*time.Second, "run 2 of b", func(h []historyEntry) bool {
		return len(h) == 2 && h[0].Status == "failed"
	})
	if !strings.Contains(h[0].Reason, "ConfigMap/"+ns+"/shared (app.yaml") || !strings.Contains(h[0].Reason, "it belongs to "+a+"/twin/deploy") {
		t.Fatalf("run 2 of b: %s; want a refusal naming shared and its owner", h[0].Reason)
	}
	shared, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "shared", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	assertOwnedBy(t, "ConfigMap shared after b's refused run", shared.ObjectMeta, a+"/twin/deploy")

	// Handed over by someone with cluster access (owner label removed), b adopts it; then
	// a drops it and a-two: a's prune deletes a-two only.
	kubectl(t, env, "-n", ns, "label", "configmap/shared", "slipway.dev/owner-")
	repoB.commit("b adopts shared", map[string][]byte{".pipeline.yaml": append(adopting, "        # shared handed over\n"...)})
	waitPipelineHistory(t, cfg, b+"/twin", 90*time.Second, "run 3 of b", succeeded(3))
	if shared, err = cs.CoreV1().ConfigMaps(ns).Get(ctx, "shared", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	assertOwnedBy(t, "ConfigMap shared after b adopted it", shared.ObjectMeta, b+"/twin/deploy")
	repoA.commit("a drops a-two and shared", map[string][]byte{"app.yaml": twinObjects("a-web", "a-one")})
	waitPipelineHistory(t, cfg, a+"/twin", 90*time.Second, "run 2 of a", succeeded(2))
	if configMapExists(t, cs, ns, "a-two") {
		t.Errorf("a-two, dropped by a, was not pruned")
	}
	for _, name := range []string{"a-one", "b-one", "b-two", "shared"} {
		if !configMapExists(t, cs, ns, name) {
			t.Errorf("ConfigMap %s is gone after a's prune", name)
		}
	}

	// Drift of a's Deployment is a's, not b's.
	refA, refB := store.PipelineRef{Repository: a, Name: "twin"}, store.PipelineRef{Repository: b, Name: "twin"}
	st := openDaemonStore(t, cfg)
	time.Sleep(time.Second) // the watcher learns the new revision when the task ends
	kubectl(t, env, "-n", ns, "scale", "deployment/a-web", "--replicas=3")
	deadline := time.Now().Add(5 * time.Second)
	for {
		evs, err := st.ListDriftEvents(ctx, refA, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) > 0 {
			if e := evs[0]; e.Object.Name != "a-web" || e.Task != "deploy" || e.Action != store.DriftReported {
				t.Fatalf("drift event of a: %+v", e)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no drift event for a's pipeline 5s after kubectl scale")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if evs, err := st.ListDriftEvents(ctx, refB, 0); err != nil || len(evs) != 0 {
		t.Fatalf("drift events of b: %+v, %v; want none", evs, err)
	}
	rows, out := driftCLI(t, "--config", cfg, a+"/twin")
	if len(rows) != 1 || rows[0].Pipeline != refA.String() || rows[0].Object != "Deployment/"+ns+"/a-web" {
		t.Fatalf("slipway drift %s/twin:\n%s", a, out)
	}
	if rows, out := driftCLI(t, "--config", cfg, b+"/twin"); len(rows) != 0 {
		t.Fatalf("slipway drift %s/twin:\n%s", b, out)
	}
}

// An installation upgraded from a Slipway whose owner labels were the pipeline and task
// names (slipway.dev/name, slipway.dev/namespace): until the next deploy the daemon still
// watches the old-labelled objects (an edit is reported within seconds, not at the sweep)
// and does not take the missing new labels for drift; the next deploy adopts the objects
// with the new owner metadata and prunes nothing, not even an object dropped from the
// manifests in that very deploy (it carries the old labels only, which prune no longer
// selects). Later deploys prune as usual.
func TestOldOwnerLabelsAreAdoptedAndNothingPruned(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	ctx := context.Background()
	repo, repoName, cfg := newProject(t, env)
	pipeline := []byte("name: legacy\nstages:\n- name: deploy\n  tasks:\n  - name: deploy\n    type: deploy-yaml\n    path: cm.yaml\n    cluster: e2e\n    namespace: " + ns + "\n    wait: 30s\n    drift: report\n")
	cms := func(names ...string) []byte {
		var b strings.Builder
		for _, n := range names {
			b.WriteString("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + n + "\ndata:\n  k: v\n")
		}
		return []byte(b.String())
	}
	repo.commit("three", map[string][]byte{".pipeline.yaml": pipeline, "cm.yaml": cms("keep", "dropped", "later")})
	if out, code := slipway(t, "run", "--config", cfg, "--repo", repoName); code != 0 {
		t.Fatalf("the first deploy failed:\n%s", out)
	}

	// What an older Slipway left: the same objects and field manager, the old labels only
	// (applying them without the new metadata removes it, as Slipway owned it).
	for _, name := range []string{"keep", "dropped", "later"} {
		ac := corev1ac.ConfigMap(name, ns).WithData(map[string]string{"k": "v"}).
			WithLabels(map[string]string{"slipway.dev/name": "legacy", "slipway.dev/namespace": "deploy"})
		cm, err := cs.CoreV1().ConfigMaps(ns).Apply(ctx, ac, metav1.ApplyOptions{FieldManager: "slipway", Force: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := cm.Labels["slipway.dev/owner"]; ok || cm.Annotations["slipway.dev/owner"] != "" {
			t.Fatalf("%s still has the new owner metadata: %v %v", name, cm.Labels, cm.Annotations)
		}
	}

	// The upgraded daemon: it does not run the head again, watches the old-labelled objects
	// and reports an edit of one, not the labels.
	startServe(t, cfg)
	st := openDaemonStore(t, cfg)
	time.Sleep(time.Second) // the daemon loads the current revisions and starts its watches
	kubectl(t, env, "-n", ns, "patch", "configmap/keep", "--type=merge", "-p", `{"data":{"k":"edited"}}`)
	e := waitEvent(t, st, 3*time.Second, "for the edit of an old-labelled object", func(e store.DriftEvent) bool {
		return e.Object.Name == "keep"
	})
	if !strings.Contains(e.Patch, "/data/k") || strings.Contains(e.Patch, "slipway.dev") {
		t.Fatalf("drift of keep: %s; want the data only", e.Patch)
	}
	if evs := driftEvents(t, st); len(evs) != 1 {
		t.Fatalf("drift events %+v; want only the edit", evs)
	}

	repo.commit("drop one", map[string][]byte{"cm.yaml": cms("keep", "later")})
	waitPipelineHistory(t, cfg, "legacy", 60*time.Second, "the migrating deploy", func(h []historyEntry) bool {
		return len(h) == 2 && h[0].Status == "succeeded"
	})
	for _, name := range []string{"keep", "later"} {
		cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		assertOwnedBy(t, "ConfigMap "+name, cm.ObjectMeta, repoName+"/legacy/deploy")
	}
	dropped, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "dropped", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the object dropped in the migrating deploy was pruned: %v", err)
	}
	if dropped.Labels["slipway.dev/name"] != "legacy" || dropped.Labels["slipway.dev/owner"] != "" {
		t.Errorf("the object dropped in the migrating deploy: labels %v", dropped.Labels)
	}

	// Adopted objects are pruned as usual from then on.
	repo.commit("drop another", map[string][]byte{"cm.yaml": cms("keep")})
	waitPipelineHistory(t, cfg, "legacy", 60*time.Second, "the deploy after the migration", func(h []historyEntry) bool {
		return len(h) == 3 && h[0].Status == "succeeded"
	})
	if configMapExists(t, cs, ns, "later") {
		t.Errorf("later, dropped after the migration, was not pruned")
	}
	if !configMapExists(t, cs, ns, "keep") || !configMapExists(t, cs, ns, "dropped") {
		t.Errorf("keep or dropped is gone")
	}
}
