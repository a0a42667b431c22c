package e2e

import (
	"context"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/slipwayhq/slipway/test/testenv"
)

// ownedPipeline is a one-task deploy-yaml pipeline of cm.yaml; extra adds task fields.
func ownedPipeline(name, cluster, ns, extra string) []byte {
	return []byte("name: " + name + "\nstages:\n- name: deploy\n  tasks:\n  - name: deploy\n    type: deploy-yaml\n    path: cm.yaml\n    cluster: " +
		cluster + "\n    namespace: " + ns + "\n    wait: 30s\n    stableFor: 0s\n" + extra)
}

// configMaps is a manifest of ConfigMaps of these names, each with data v: value.
func configMaps(value string, names ...string) []byte {
	var b strings.Builder
	for _, n := range names {
		b.WriteString("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + n + "\ndata:\n  v: " + value + "\n")
	}
	return []byte(b.String())
}

// createByHand creates a ConfigMap no Slipway task applied, as someone with cluster access would.
func createByHand(t *testing.T, cs kubernetes.Interface, ns, name string) {
	t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: map[string]string{"v": "by-hand"}}
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// assertByHand fails unless the ConfigMap is still the one created by hand: its data and
// no owner label.
func assertByHand(t *testing.T, cs kubernetes.Interface, ns, name, when string) {
	t.Helper()
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("%s: the ConfigMap %s created by hand: %v", when, name, err)
	}
	if cm.Data["v"] != "by-hand" || cm.Labels["slipway.dev/owner"] != "" {
		t.Fatalf("%s: the ConfigMap %s created by hand was changed: data %v labels %v", when, name, cm.Data, cm.Labels)
	}
}

// A ConfigMap that exists without Slipway's owner label and that the manifests also
// define fails the run before anything is applied, naming it and its file; with adopt: true
// it is taken over and history says so.
func TestExistingObjectIsRefusedUnlessAdopted(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	createByHand(t, cs, ns, "existing")
	repo, repoName, cfg := newProject(t, env)

	// "fresh" sorts after "existing" and before nothing: were anything applied before the
	// check, it would be there.
	repo.commit("define it", map[string][]byte{".pipeline.yaml": ownedPipeline("owned", "e2e", ns, ""),
		"cm.yaml": configMaps("from-git", "existing", "fresh")})
	out, code := slipway(t, "run", "--config", cfg, "--repo", repoName)
	if code != 1 || !strings.Contains(out, "ConfigMap/"+ns+"/existing (cm.yaml, document 1) ownership check failed") ||
		!strings.Contains(out, "Slipway did not create it") || !strings.Contains(out, "adopt: true") ||
		!strings.Contains(out, "refused before anything was applied") {
		t.Fatalf("run over an existing unlabelled object: exit %d, want 1 naming it:\n%s", code, out)
	}
	assertByHand(t, cs, ns, "existing", "after the refused run")
	if configMapExists(t, cs, ns, "fresh") {
		t.Fatal("the refused run applied the other object of the set")
	}

	repo.commit("adopt it", map[string][]byte{".pipeline.yaml": ownedPipeline("owned", "e2e", ns, "    adopt: true\n")})
	if out, code := slipway(t, "run", "--config", cfg, "--repo", repoName); code != 0 ||
		!strings.Contains(out, "ConfigMap/"+ns+"/existing configured: adopted") {
		t.Fatalf("run with adopt: true: exit %d:\n%s\n%+v", code, out, history(t, cfg, "owned"))
	}
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(context.Background(), "existing", metav1.GetOptions{})
	if err != nil || cm.Data["v"] != "from-git" {
		t.Fatalf("the adopted ConfigMap: %v, %v", cm.Data, err)
	}
	assertOwnedBy(t, "the adopted ConfigMap", cm.ObjectMeta, repoName+"/owned/deploy")
	h := history(t, cfg, "owned")
	if len(h) != 2 || h[0].Revision != "deploy:healthy(1 adopted)" || len(h[0].Adopted) != 1 ||
		h[0].Adopted[0] != "deploy ConfigMap/"+ns+"/existing" || len(h[1].Adopted) != 0 {
		t.Fatalf("history = %+v; want the second run to record the adoption", h)
	}
}

// Prune deletes only objects that carry the task's identity and are in its previous
// inventory: an unlabelled object the manifests defined (refused) and then dropped stays,
// and so does one created by hand in the place of an object the task had applied.
func TestPruneLeavesObjectsThatAreNotOurs(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	createByHand(t, cs, ns, "foreign")
	repo, repoName, cfg := newProject(t, env)
	run := func() (string, int) { return slipway(t, "run", "--config", cfg, "--repo", repoName) }

	repo.commit("define foreign", map[string][]byte{".pipeline.yaml": ownedPipeline("prune", "e2e", ns, ""),
		"cm.yaml": configMaps("from-git", "foreign", "mine", "replaced")})
	if out, code := run(); code != 1 || !strings.Contains(out, "ConfigMap/"+ns+"/foreign (cm.yaml, document 1) ownership check failed") {
		t.Fatalf("exit %d, want the foreign object refused:\n%s", code, out)
	}
	repo.commit("drop foreign", map[string][]byte{"cm.yaml": configMaps("from-git", "mine", "replaced")})
	if out, code := run(); code != 0 {
		t.Fatalf("deploy without the foreign object: exit %d:\n%s", code, out)
	}
	assertByHand(t, cs, ns, "foreign", "after it was dropped from the manifests")

	// Someone replaces "replaced" by one of their own; the commit that drops it from the
	// manifests finds its name in the inventory, but not the task's label on it.
	if err := cs.CoreV1().ConfigMaps(ns).Delete(context.Background(), "replaced", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	createByHand(t, cs, ns, "replaced")
	repo.commit("drop replaced", map[string][]byte{"cm.yaml": configMaps("from-git", "mine")})
	if out, code := run(); code != 0 || strings.Contains(out, "/replaced pruned") {
		t.Fatalf("deploy dropping the replaced object: exit %d, want success pruning nothing:\n%s", code, out)
	}
	assertByHand(t, cs, ns, "replaced", "after its name was dropped from the manifests")
	assertByHand(t, cs, ns, "foreign", "at the end")

	// What the task did create is pruned as usual.
	repo.commit("drop mine", map[string][]byte{"cm.yaml": configMaps("from-git", "other")})
	if out, code := run(); code != 0 || !strings.Contains(out, "ConfigMap/"+ns+"/mine pruned") {
		t.Fatalf("deploy dropping an object of the task's: exit %d, want it pruned:\n%s", code, out)
	}
}

// prune: false holds for rollbacks: the automatic one after a failed health wait, and
// `slipway rollback`, delete nothing, though the revisions they replace added objects.
func TestPruneFalseHoldsForRollbacks(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	repo, repoName, cfg := newProject(t, env)
	run := func() (string, int) { return slipway(t, "run", "--config", cfg, "--repo", repoName) }
	deployment := func(healthy bool) string {
		chaos := ""
		if !healthy {
			// kwok fails the container after start; minReadySeconds makes the Deployment
			// wait past kwok's first Ready, as a real crash after start needs too.
			chaos = "        pod-container-running-failed.stage.kwok.x-k8s.io: \"true\"\n"
		}
		return "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  minReadySeconds: 5\n  replicas: 1\n" +
			"  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels:\n        app: web\n" + chaos +
			"    spec:\n      containers:\n      - name: web\n        image: registry.invalid/web:1\n"
	}
	manifest := func(healthy bool, cms ...string) []byte {
		return append([]byte(deployment(healthy)), configMaps("x", cms...)...)
	}
	pipeline := ownedPipeline("keep", "e2e", ns, "    prune: false\n")
	pipeline = []byte(strings.Replace(string(pipeline), "wait: 30s", "wait: 20s", 1))

	repo.commit("one", map[string][]byte{".pipeline.yaml": pipeline, "cm.yaml": manifest(true, "one")})
	if out, code := run(); code != 0 {
		t.Fatalf("run 1: exit %d:\n%s", code, out)
	}
	repo.commit("two, unhealthy", map[string][]byte{"cm.yaml": manifest(false, "two")})
	out, code := run()
	if code != 1 || !strings.Contains(out, "rolled back to BUILD_ID 1") {
		t.Fatalf("run 2: exit %d, want 1 and a rollback to BUILD_ID 1:\n%s", code, out)
	}
	if !strings.Contains(out, "ConfigMap/"+ns+"/one not pruned (prune: false)") || !strings.Contains(out, "ConfigMap/"+ns+"/two not pruned (prune: false)") {
		t.Errorf("run 2 does not say what prune: false kept:\n%s", out)
	}
	for _, n := range []string{"one", "two"} {
		if !configMapExists(t, cs, ns, n) {
			t.Errorf("ConfigMap %s was deleted by the deploy or its automatic rollback with prune: false", n)
		}
	}

	repo.commit("three", map[string][]byte{"cm.yaml": manifest(true, "three")})
	if out, code := run(); code != 0 {
		t.Fatalf("run 3: exit %d:\n%s", code, out)
	}
	if out, code := slipway(t, "rollback", "--config", cfg, "keep", "--to", "1"); code != 0 {
		t.Fatalf("slipway rollback --to 1: exit %d:\n%s", code, out)
	}
	for _, n := range []string{"one", "two", "three"} {
		if !configMapExists(t, cs, ns, n) {
			t.Errorf("ConfigMap %s was deleted with prune: false (after slipway rollback)", n)
		}
	}
	logs, _ := slipway(t, "logs", "--config", cfg, "keep", "4")
	if !strings.Contains(logs, "ConfigMap/"+ns+"/three not pruned (prune: false)") {
		t.Errorf("the rollback run does not say what prune: false kept:\n%s", logs)
	}
}

// A task moved to another cluster does not prune there by the old cluster's inventory,
// and leaves the old cluster's objects, saying so. The two clusters of slipway.yaml are
// two names for the environment's one API server: the objects the task applied "on the
// old cluster" are visible by the same names, with the task's own owner label, "on the
// new one". Label checks alone would let prune delete them there; only inventories kept
// per cluster do not (the new cluster has none yet), which is what this proves.
func TestTaskMovedToAnotherClusterDoesNotPruneByName(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	repo, repoName, cfg := newProject(t, env)
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	two := strings.Replace(string(b), "clusters:\n", "clusters:\n  - name: e2e-other\n    kubeconfig: "+env.Kubeconfig+"\n", 1)
	if err := os.WriteFile(cfg, []byte(two), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func() (string, int) { return slipway(t, "run", "--config", cfg, "--repo", repoName) }

	repo.commit("on e2e", map[string][]byte{".pipeline.yaml": ownedPipeline("moved", "e2e", ns, ""),
		"cm.yaml": configMaps("x", "stays", "left")})
	if out, code := run(); code != 0 {
		t.Fatalf("run on e2e: exit %d:\n%s", code, out)
	}
	repo.commit("to e2e-other", map[string][]byte{".pipeline.yaml": ownedPipeline("moved", "e2e-other", ns, ""),
		"cm.yaml": configMaps("x", "stays")})
	out, code := run()
	if code != 0 || strings.Contains(out, "/left pruned") {
		t.Fatalf("run on e2e-other: exit %d, want success pruning nothing:\n%s", code, out)
	}
	if !strings.Contains(out, "task moved from cluster e2e to e2e-other: the 2 objects BUILD_ID 1 applied on e2e are left there") ||
		!strings.Contains(out, "left on e2e: ConfigMap/"+ns+"/left") {
		t.Errorf("the move is not reported:\n%s", out)
	}
	if !configMapExists(t, cs, ns, "left") {
		t.Fatal("the object the task applied on the old cluster was pruned by name on the new one")
	}

	// On the new cluster, what the task applied there is pruned as usual.
	repo.commit("drop stays", map[string][]byte{"cm.yaml": configMaps("x", "new")})
	if out, code := run(); code != 0 || !strings.Contains(out, "ConfigMap/"+ns+"/stays pruned") || strings.Contains(out, "/left pruned") {
		t.Fatalf("second run on e2e-other: exit %d, want stays pruned and left not:\n%s", code, out)
	}
	if !configMapExists(t, cs, ns, "left") {
		t.Fatal("left was pruned")
	}
}

// chartPipeline deploys the chart in folder mychart as release rel, its ConfigMap named cm.
func chartPipeline(name, ns, cm string) []byte {
	return []byte("name: " + name + "\nstages:\n- name: deploy\n  tasks:\n  - name: deploy\n    type: deploy-chart\n    release: rel\n    chartDir: mychart\n" +
		"    cluster: e2e\n    namespace: " + ns + "\n    wait: 30s\n    stableFor: 0s\n    values: {name: " + cm + "}\n")
}

// deploy-chart takes over nothing either: Helm refuses to install over an existing object
// without its release's ownership metadata (Slipway does not ask it to take ownership), and
// Slipway refuses to upgrade a release another task installed.
func TestChartDoesNotTakeOverForeignObjectsOrReleases(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	createByHand(t, cs, ns, "settings")
	repo, repoName, cfg := newProject(t, env)
	run := func() (string, int) { return slipway(t, "run", "--config", cfg, "--repo", repoName) }
	chart := map[string][]byte{
		"mychart/Chart.yaml":        []byte("apiVersion: v2\nname: mychart\nversion: 0.1.0\n"),
		"mychart/templates/cm.yaml": []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.name }}\ndata:\n  v: from-chart\n"),
		".pipeline.yaml":            chartPipeline("chart-a", ns, "settings"),
	}
	repo.commit("chart over an existing object", chart)
	out, code := run()
	if code != 1 || !strings.Contains(out, "ConfigMap \"settings\" in namespace \""+ns+"\" exists and cannot be imported into the current release") {
		t.Fatalf("install over an existing unlabelled ConfigMap: exit %d, want Helm's refusal naming it:\n%s", code, out)
	}
	assertByHand(t, cs, ns, "settings", "after the refused install")

	repo.commit("own name", map[string][]byte{".pipeline.yaml": chartPipeline("chart-a", ns, "mine")})
	if out, code := run(); code != 0 {
		t.Fatalf("install: exit %d:\n%s", code, out)
	}
	// Another pipeline (here: the same file renamed) deploying the same release name.
	repo.commit("another pipeline, same release", map[string][]byte{".pipeline.yaml": chartPipeline("chart-b", ns, "mine")})
	out, code = run()
	if code != 1 || !strings.Contains(out, "release "+ns+"/rel (revision 1) is not this task's") ||
		!strings.Contains(out, "belongs to "+repoName+"/chart-a/deploy") {
		t.Fatalf("upgrade of another task's release: exit %d, want a refusal naming its owner:\n%s", code, out)
	}
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(context.Background(), "mine", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	assertOwnedBy(t, "the release's ConfigMap", cm.ObjectMeta, repoName+"/chart-a/deploy")
	assertByHand(t, cs, ns, "settings", "at the end")
}
