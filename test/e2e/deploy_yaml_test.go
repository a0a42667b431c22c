package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/test/testenv"
)

// deployOnlyPipeline is seed 1.1's deploy half: the image tag already exists (images are
// built by the build-image task, tested with the builders).
func deployOnlyPipeline(registry, ns string) []byte {
	return deployPipeline(registry, ns, "", "30s", "")
}

// deployPipeline is the 2048 deploy pipeline with top-level lines (timeout, triggers) after
// its name, the task's health wait, and extra task lines (a task timeout).
func deployPipeline(registry, ns, top, wait, taskExtra string) []byte {
	return []byte(`name: jack-2048
` + top + `variables:
  REGISTRY: ` + registry + `
  DOMAIN: 2048.example.cn
stages:
  - name: deploy
    tasks:
      - name: deploy-2048
        type: deploy-yaml
        path: 2048_env.yaml
        cluster: e2e
        namespace: ` + ns + `
        wait: ` + wait + `
` + taskExtra)
}

type historyEntry struct {
	BuildID  int64    `json:"build_id"`
	Status   string   `json:"status"`
	Commit   string   `json:"commit"`
	Branch   string   `json:"branch"`
	Tag      string   `json:"tag"`
	Trigger  string   `json:"trigger"`
	Parent   int64    `json:"parent"`
	Created  string   `json:"created_at"`
	Started  string   `json:"started_at"`
	Duration float64  `json:"duration_seconds"`
	Revision string   `json:"revision"`
	Adopted  []string `json:"adopted"`
	Reason   string   `json:"reason"`
}

func history(t *testing.T, cfg, pipeline string) []historyEntry {
	t.Helper()
	out, code := slipway(t, "history", "--config", cfg, pipeline, "-o", "json")
	if code != 0 {
		t.Fatalf("slipway history: exit %d\n%s", code, out)
	}
	return parseHistory(t, out)
}

func parseHistory(t *testing.T, out string) []historyEntry {
	t.Helper()
	var rows []historyEntry
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("history JSON: %v\n%s", err, out)
	}
	return rows
}

func TestDeployYAMLSeed11(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	repo, repoName, cfg := newProject(t, env)
	manifests := readExample(t, env, "2048-yaml/2048_env.yaml")
	repo.commit("2048 by YAML", map[string][]byte{
		".pipeline.yaml": deployOnlyPipeline(env.Registry, ns),
		"2048_env.yaml":  manifests,
	})

	// Someone else's object in the same namespace: prune must never touch it.
	foreign := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "not-ours", Namespace: ns}}
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	run := func() (string, int) { return slipway(t, "run", "--config", cfg, "--repo", repoName) }

	// 1. First run: BUILD_ID 1, healthy, image tag alpha-1.
	out, code := run()
	if code != 0 {
		t.Fatalf("first run failed (exit %d):\n%s", code, out)
	}
	dep, err := cs.AppsV1().Deployments(ns).Get(ctx, "jack-2048", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := dep.Spec.Template.Spec.Containers[0].Image; img != env.Registry+"/devops/jack-2048:alpha-1" {
		t.Errorf("image = %s, want tag alpha-1", img)
	}
	if !available(dep) {
		t.Errorf("deployment not Available after the run: %+v", dep.Status)
	}
	if _, err := cs.CoreV1().Services(ns).Get(ctx, "svc-2048", metav1.GetOptions{}); err != nil {
		t.Errorf("service: %v", err)
	}
	ing, err := cs.NetworkingV1().Ingresses(ns).Get(ctx, "ing-2048", metav1.GetOptions{})
	if err != nil || ing.Spec.Rules[0].Host != "2048.example.cn" {
		t.Errorf("ingress: %v %+v", err, ing)
	}
	if h := history(t, cfg, "jack-2048"); len(h) != 1 || h[0].BuildID != 1 || h[0].Status != "succeeded" || h[0].Revision != "deploy-2048:healthy" {
		t.Fatalf("history after run 1 = %+v", h)
	}

	// 2. Change replicas: BUILD_ID 2 applies it and stores a second revision.
	withReplicas := strings.Replace(string(manifests), "spec:\n  selector:", "spec:\n  replicas: 3\n  selector:", 1)
	repo.commit("three replicas", map[string][]byte{"2048_env.yaml": []byte(withReplicas)})
	if out, code := run(); code != 0 {
		t.Fatalf("second run failed:\n%s", out)
	}
	dep, _ = cs.AppsV1().Deployments(ns).Get(ctx, "jack-2048", metav1.GetOptions{})
	if *dep.Spec.Replicas != 3 || dep.Spec.Template.Spec.Containers[0].Image != env.Registry+"/devops/jack-2048:alpha-2" {
		t.Errorf("after run 2: replicas %d image %s", *dep.Spec.Replicas, dep.Spec.Template.Spec.Containers[0].Image)
	}
	if h := history(t, cfg, "jack-2048"); len(h) != 2 || h[0].BuildID != 2 || h[0].Revision != "deploy-2048:healthy" {
		t.Fatalf("history after run 2 = %+v", h)
	}

	// 3. Remove the Ingress: it is pruned, the foreign ConfigMap is untouched.
	noIngress := withReplicas[:strings.Index(withReplicas, "---\napiVersion: networking.k8s.io/v1")]
	repo.commit("no ingress", map[string][]byte{"2048_env.yaml": []byte(noIngress)})
	if out, code := run(); code != 0 {
		t.Fatalf("third run failed:\n%s", out)
	} else if !strings.Contains(out, "") {
		t.Log(out)
	}
	if _, err := cs.NetworkingV1().Ingresses(ns).Get(ctx, "ing-2048", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ingress after removal: want NotFound, got %v", err)
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "not-ours", metav1.GetOptions{}); err != nil {
		t.Errorf("foreign ConfigMap: %v", err)
	}

	// 4. An invalid object in the middle of the set: the run fails naming file and object,
	// and nothing of that commit is applied (replicas stay 3, image stays alpha-3).
	bad := strings.Replace(noIngress, "replicas: 3", "replicas: 5", 1) +
		"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\ndata:\n  key: [1, 2]\n" +
		"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: after-broken\ndata:\n  key: fine\n"
	repo.commit("broken object", map[string][]byte{"2048_env.yaml": []byte(bad)})
	out, code = run()
	if code != 1 || !strings.Contains(out, "ConfigMap/"+ns+"/broken (2048_env.yaml, document 3)") || !strings.Contains(out, "nothing was applied") {
		t.Fatalf("broken object: exit %d, want 1 naming the file and object:\n%s", code, out)
	}
	dep, _ = cs.AppsV1().Deployments(ns).Get(ctx, "jack-2048", metav1.GetOptions{})
	if *dep.Spec.Replicas != 3 || !strings.HasSuffix(dep.Spec.Template.Spec.Containers[0].Image, ":alpha-3") {
		t.Errorf("the failed commit changed the cluster: replicas %d image %s", *dep.Spec.Replicas, dep.Spec.Template.Spec.Containers[0].Image)
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "after-broken", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("an object after the broken one was applied: %v", err)
	}

	// 5. An undefined variable fails before anything touches the cluster.
	undefined := strings.Replace(noIngress, "alpha-${BUILD_ID}", "alpha-${BUILD_NUMBER}", 1)
	repo.commit("undefined variable", map[string][]byte{"2048_env.yaml": []byte(undefined)})
	out, code = run()
	if code != 1 || !strings.Contains(out, "BUILD_NUMBER") {
		t.Fatalf("undefined variable: exit %d, want 1 naming BUILD_NUMBER:\n%s", code, out)
	}
	dep, _ = cs.AppsV1().Deployments(ns).Get(ctx, "jack-2048", metav1.GetOptions{})
	if !strings.HasSuffix(dep.Spec.Template.Spec.Containers[0].Image, ":alpha-3") {
		t.Errorf("undefined variable run changed the image to %s", dep.Spec.Template.Spec.Containers[0].Image)
	}

	// 6. A Deployment that never becomes ready: the run fails within wait with the pod's
	// reason, and rollback (auto, the default) restores BUILD_ID 3's objects: its image,
	// and without the ConfigMap only the failed revision added.
	chaos := strings.Replace(noIngress, "      labels:\n        application: jack-2048",
		"      labels:\n        application: jack-2048\n        pod-container-running-failed.stage.kwok.x-k8s.io: \"true\"", 1)
	// kwok reports the pod Ready before its chaos stage fails the container; minReadySeconds
	// makes the Deployment wait past that, as a real crash-after-start needs too.
	chaos = strings.Replace(chaos, "spec:\n  replicas: 3", "spec:\n  minReadySeconds: 10\n  replicas: 3", 1)
	chaos += "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: only-in-the-bad-revision\ndata:\n  a: b\n"
	repo.commit("never ready", map[string][]byte{"2048_env.yaml": []byte(chaos)})
	start := time.Now()
	out, code = run()
	took := time.Since(start)
	if code != 1 || !strings.Contains(out, "container failed") || !strings.Contains(out, "rolled back to BUILD_ID 3") {
		t.Fatalf("never-ready deploy: exit %d, want 1 with the container's reason and the rollback:\n%s", code, out)
	}
	if took > 100*time.Second {
		t.Errorf("never-ready deploy took %s, want it to end soon after its 30s wait and the rollback", took)
	}
	dep, _ = cs.AppsV1().Deployments(ns).Get(ctx, "jack-2048", metav1.GetOptions{})
	if img := dep.Spec.Template.Spec.Containers[0].Image; !strings.HasSuffix(img, ":alpha-3") {
		t.Errorf("after the rollback the image is %s, want BUILD_ID 3's alpha-3", img)
	}
	if _, ok := dep.Spec.Template.Labels["pod-container-running-failed.stage.kwok.x-k8s.io"]; ok || !available(dep) {
		t.Errorf("after the rollback the Deployment is not BUILD_ID 3's, or not Available: labels %v", dep.Spec.Template.Labels)
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "only-in-the-bad-revision", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the object only the failed revision added survived the rollback: %v", err)
	}
	h := history(t, cfg, "jack-2048")
	if len(h) != 5 || h[0].Status != "failed" || h[0].Revision != "deploy-2048:rolled_back" {
		t.Fatalf("history after the rolled-back deploy = %+v", h)
	}
	t.Logf("never-ready deploy failed and was rolled back after %s", took.Round(time.Millisecond))
}

func available(d *appsv1.Deployment) bool {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// servedProject is a project with a daemon serving it.
type servedProject struct {
	repo      *workRepo
	repoName  string
	cfg       string
	manifests []byte // the 2048 example's, as committed
	d         *daemonProc
}

// servedDeployOnly is a new project whose first commit deploys the 2048 example
// (deployOnlyPipeline), served by a daemon that has run it once, successfully.
func servedDeployOnly(t *testing.T, env *testenv.Env) servedProject {
	t.Helper()
	repo, repoName, cfg := newProject(t, env)
	manifests := readExample(t, env, "2048-yaml/2048_env.yaml")
	repo.commit("first", map[string][]byte{".pipeline.yaml": deployOnlyPipeline(env.Registry, env.Namespace(t)), "2048_env.yaml": manifests})
	d := startServe(t, cfg)
	waitHistory(t, cfg, 60*time.Second, "run 1", func(h []historyEntry) bool { return len(h) == 1 && h[0].Status == "succeeded" })
	return servedProject{repo: repo, repoName: repoName, cfg: cfg, manifests: manifests, d: d}
}
