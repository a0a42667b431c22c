package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/slipwayhq/slipway/internal/repofs"
	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/render"
	"github.com/slipwayhq/slipway/store"
	"github.com/slipwayhq/slipway/test/testenv"
)

// The Kustomize layout of docs/pipeline.md: a base and two overlays that differ in
// replicas, namePrefix and a configMapGenerator.
var kustomizeBase = map[string]string{
	"deploy/base/kustomization.yaml": `resources:
  - deployment.yaml
  - service.yaml
  - legacy.yaml
labels:
  - pairs: {app.kubernetes.io/name: web}
    includeSelectors: true
`,
	"deploy/base/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:1.27-alpine
          envFrom:
            - configMapRef: {name: web-settings}
`,
	"deploy/base/service.yaml": `apiVersion: v1
kind: Service
metadata:
  name: web
  annotations:
    example.com/build: "${BUILD_ID}"     # substituted after the build
spec:
  selector: {app: web}
  ports: [{port: 80}]
`,
	"deploy/base/legacy.yaml": `apiVersion: v1
kind: ConfigMap
metadata: {name: legacy}
data: {mode: old}
`,
	"deploy/overlays/staging/kustomization.yaml": `resources: [../../base]
namePrefix: staging-
replicas: [{name: web, count: 1}]
configMapGenerator:
  - name: web-settings
    literals: [COLOR=blue]
`,
	"deploy/overlays/prod/kustomization.yaml": `resources: [../../base]
namePrefix: prod-
replicas: [{name: web, count: 3}]
configMapGenerator:
  - name: web-settings
    envs: [settings.env]
`,
	"deploy/overlays/prod/settings.env": "COLOR=green\n",
}

// kustomizePipelines is the pipeline file of docs/pipeline.md's Kustomize section, as
// written there, with its namespaces mapped onto the test's: one pipeline per target, the
// same task in each, the overlay chosen by the pipeline's variable OVERLAY.
func kustomizePipelines(t *testing.T, env *testenv.Env, staging, prod string) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(env.Root, "docs", "pipeline.md"))
	if err != nil {
		t.Fatal(err)
	}
	const start = "```yaml\nname: web-staging\n"
	i := strings.Index(string(doc), start)
	if i < 0 {
		t.Fatal("docs/pipeline.md no longer holds the Kustomize overlays example (name: web-staging)")
	}
	text := string(doc[i+len("```yaml\n"):])
	text = text[:strings.Index(text, "```")]
	for from, to := range map[string]string{"namespace: web-staging": "namespace: " + staging, "namespace: web-prod": "namespace: " + prod} {
		if !strings.Contains(text, from) {
			t.Fatalf("the docs' example lacks %q", from)
		}
		text = strings.Replace(text, from, to, 1)
	}
	return text
}

// waitRuns waits until both pipelines have n finished runs, and fails unless the newest
// of each succeeded.
func waitRuns(t *testing.T, cfg string, n int) {
	t.Helper()
	for _, p := range []string{"web-staging", "web-prod"} {
		h := waitPipelineHistory(t, cfg, p, 2*time.Minute, fmt.Sprintf("run %d of %s", n, p), func(h []historyEntry) bool {
			return len(h) == n && (h[0].Status == "succeeded" || h[0].Status == "failed")
		})
		if h[0].Status != "succeeded" {
			out, _ := slipway(t, "logs", "--config", cfg, p, fmt.Sprint(h[0].BuildID))
			t.Fatalf("%s run %d: %+v\n%s", p, n, h[0], out)
		}
	}
}

func bytesOf(files map[string]string) map[string][]byte {
	out := make(map[string][]byte, len(files))
	for k, v := range files {
		out[k] = []byte(v)
	}
	return out
}

// settingsOf is the ConfigMap a Deployment's first container takes its environment from.
func settingsOf(t *testing.T, d *appsv1.Deployment) string {
	t.Helper()
	env := d.Spec.Template.Spec.Containers[0].EnvFrom
	if len(env) != 1 || env[0].ConfigMapRef == nil {
		t.Fatalf("Deployment %s: envFrom %+v", d.Name, env)
	}
	return env[0].ConfigMapRef.Name
}

func getDeployment(t *testing.T, cs kubernetes.Interface, ns, name string) *appsv1.Deployment {
	t.Helper()
	d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Issue 15, test 4: a base and two overlays deployed by two tasks into two namespaces under
// `slipway serve`; drift (correct in staging, report in prod) and prune act on the built
// objects; a changed configMapGenerator rolls the Deployment through the new hashed name
// and prunes the old ConfigMap.
func TestKustomizeOverlaysDeployDriftPrune(t *testing.T) {
	env := testenv.Get(t)
	cs := env.Clientset(t)
	staging, prod := env.Namespace(t), env.Namespace(t)
	repo, repoName, cfg := newProject(t, env)
	files := bytesOf(kustomizeBase)
	files[".pipeline.yaml"] = []byte(kustomizePipelines(t, env, staging, prod))
	repo.commit("kustomize overlays", files)
	if out, code := slipway(t, "validate", "--config", cfg, "--repository", repoName, repo.dir); code != 0 {
		t.Fatalf("validate:\n%s", out)
	}
	startServe(t, cfg)
	waitRuns(t, cfg, 1)

	// The built objects, per overlay.
	for _, o := range []struct {
		ns, prefix, color string
		replicas          int32
	}{{staging, "staging-", "blue", 1}, {prod, "prod-", "green", 3}} {
		d := getDeployment(t, cs, o.ns, o.prefix+"web")
		if *d.Spec.Replicas != o.replicas || d.Labels["app.kubernetes.io/name"] != "web" || d.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != "web" {
			t.Errorf("%s: replicas %d labels %v selector %v", d.Name, *d.Spec.Replicas, d.Labels, d.Spec.Selector.MatchLabels)
		}
		name := settingsOf(t, d)
		if !strings.HasPrefix(name, o.prefix+"web-settings-") {
			t.Errorf("%s takes its settings from %s, want the generated %sweb-settings-<hash>", d.Name, name, o.prefix)
		}
		cm, err := cs.CoreV1().ConfigMaps(o.ns).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil || cm.Data["COLOR"] != o.color {
			t.Errorf("ConfigMap %s: %v %v", name, err, cm.Data)
		}
		svc, err := cs.CoreV1().Services(o.ns).Get(t.Context(), o.prefix+"web", metav1.GetOptions{})
		if err != nil || svc.Annotations["example.com/build"] != "1" {
			t.Errorf("Service %sweb: %v; annotations %v (want BUILD_ID substituted after the build)", o.prefix, err, svc.Annotations)
		}
		if _, err := cs.CoreV1().ConfigMaps(o.ns).Get(t.Context(), o.prefix+"legacy", metav1.GetOptions{}); err != nil {
			t.Errorf("ConfigMap %slegacy: %v", o.prefix, err)
		}
	}

	// Drift on built objects: staging (correct) is set back, prod (report) is reported and
	// left alone.
	st := openDaemonStore(t, cfg)
	time.Sleep(time.Second) // the watcher learns the new revision when the task ends
	kubectl(t, env, "-n", staging, "scale", "deployment/staging-web", "--replicas=5")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if d := getDeployment(t, cs, staging, "staging-web"); *d.Spec.Replicas == 1 && d.Generation > 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("staging-web: the scale to 5 was not corrected within 10s")
		}
	}
	kubectl(t, env, "-n", prod, "scale", "deployment/prod-web", "--replicas=5")
	e := waitPipelineEvent(t, st, "web-prod", 10*time.Second, func(e store.DriftEvent) bool {
		return e.Object.Name == "prod-web" && e.Action == store.DriftReported
	})
	if !strings.Contains(e.Patch, "/spec/replicas") || e.Task != "web" {
		t.Errorf("drift event %+v", e)
	}
	time.Sleep(time.Second)
	if d := getDeployment(t, cs, prod, "prod-web"); *d.Spec.Replicas != 5 {
		t.Errorf("prod-web: report mode changed replicas to %d", *d.Spec.Replicas)
	}

	// A changed generator: a new hashed name, the Deployment rolls to it, the old one is pruned.
	before := getDeployment(t, cs, staging, "staging-web")
	oldSettings := settingsOf(t, before)
	repo.commit("staging goes red", map[string][]byte{"deploy/overlays/staging/kustomization.yaml": []byte(
		strings.Replace(kustomizeBase["deploy/overlays/staging/kustomization.yaml"], "COLOR=blue", "COLOR=red", 1))})
	waitRuns(t, cfg, 2)
	after := getDeployment(t, cs, staging, "staging-web")
	newSettings := settingsOf(t, after)
	if newSettings == oldSettings || after.Generation <= before.Generation {
		t.Errorf("settings %s -> %s, generation %d -> %d: want a new name and a rollout", oldSettings, newSettings, before.Generation, after.Generation)
	}
	if cm, err := cs.CoreV1().ConfigMaps(staging).Get(t.Context(), newSettings, metav1.GetOptions{}); err != nil || cm.Data["COLOR"] != "red" {
		t.Errorf("new settings %s: %v %v", newSettings, err, cm.Data)
	}
	if _, err := cs.CoreV1().ConfigMaps(staging).Get(t.Context(), oldSettings, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("old settings %s: want pruned, got %v", oldSettings, err)
	}
	// The run re-applied prod's Deployment, which drift had changed.
	if d := getDeployment(t, cs, prod, "prod-web"); *d.Spec.Replicas != 3 {
		t.Errorf("prod-web after run 2: replicas %d, want 3", *d.Spec.Replicas)
	}

	// Prune: a resource removed from the base goes from both namespaces.
	repo.commit("no legacy", map[string][]byte{
		"deploy/base/legacy.yaml":        nil,
		"deploy/base/kustomization.yaml": []byte(strings.Replace(kustomizeBase["deploy/base/kustomization.yaml"], "  - legacy.yaml\n", "", 1)),
	})
	waitRuns(t, cfg, 3)
	for _, o := range []struct{ ns, name string }{{staging, "staging-legacy"}, {prod, "prod-legacy"}} {
		if _, err := cs.CoreV1().ConfigMaps(o.ns).Get(t.Context(), o.name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("ConfigMap %s: want pruned, got %v", o.name, err)
		}
	}
	if _, err := cs.CoreV1().Services(staging).Get(t.Context(), "staging-web", metav1.GetOptions{}); err != nil {
		t.Errorf("Service staging-web after the prune: %v", err)
	}
}

// A remote base, a path out of the checkout and a symlink out are refused by `slipway
// validate` and by a run, naming the file and line (or the path and link), and nothing of
// the kustomization is applied.
func TestKustomizeRefusesWhatLeavesTheCheckout(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	pipe := []byte("name: confined\nstages:\n- name: deploy\n  tasks:\n  - {name: app, type: deploy-yaml, path: k8s/overlay, cluster: e2e, namespace: " + ns + ", wait: 30s}\n")
	for _, tc := range []struct {
		name  string
		kust  string
		links map[string]string
		want  []string
	}{
		{"remote base", "resources:\n  - local.yaml\n  - https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v3.3.1\n", nil,
			[]string{`k8s/overlay/kustomization.yaml:3`, `resources[1]: "https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v3.3.1": remote bases and files are not fetched`}},
		{"github shorthand", "resources:\n  - local.yaml\n  - github.com/kubernetes-sigs/kustomize/examples/multibases?ref=v3.3.1\n", nil,
			[]string{`k8s/overlay/kustomization.yaml:3`, `resources[1]: "github.com/kubernetes-sigs/kustomize/examples/multibases?ref=v3.3.1"`}},
		{"escape", "resources:\n  - local.yaml\n  - ../../../neighbour\n", nil,
			[]string{`path "../neighbour" leaves the repository`}},
		{"symlink out", "resources:\n  - local.yaml\n  - stolen.yaml\n", map[string]string{"k8s/overlay/stolen.yaml": "../../../neighbour/secret.yaml"},
			[]string{`symlink "k8s/overlay/stolen.yaml" points outside the repository ("../../../neighbour/secret.yaml")`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cm := "kustomize-" + strings.ReplaceAll(tc.name, " ", "-")
			repo, name, cfg := hostileRepo(t, env, "", map[string][]byte{
				".pipeline.yaml":                 pipe,
				"k8s/overlay/kustomization.yaml": []byte(tc.kust),
				"k8s/overlay/local.yaml":         configMap(cm),
			}, tc.links)
			refusedBoth(t, repo, name, cfg, tc.want...)
			if _, err := cs.CoreV1().ConfigMaps(ns).Get(t.Context(), cm, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("ConfigMap %s of the refused kustomization: %v", cm, err)
			}
		})
	}
}

// A kustomization of the shape popular public ones have (a namespace, labels and
// commonLabels, the images transformer, replicas, strategic-merge and JSON 6902 patches,
// generators with options) builds exactly as the environment's `kubectl kustomize` builds
// it, and deploys.
func TestKustomizeRealWorldShapeMatchesKubectl(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	files := map[string]string{
		"app/base/kustomization.yaml": `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [deployment.yaml, service.yaml, hpa.yaml]
commonLabels: {app: podinfo}
configMapGenerator:
  - name: podinfo-config
    literals: [PODINFO_UI_COLOR=#34577c]
`,
		"app/base/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: podinfo}
spec:
  minReadySeconds: 3
  revisionHistoryLimit: 5
  strategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 0}}
  selector: {matchLabels: {app: podinfo}}
  template:
    metadata:
      labels: {app: podinfo}
      annotations: {prometheus.io/scrape: "true", prometheus.io/port: "9797"}
    spec:
      containers:
        - name: podinfod
          image: ghcr.io/stefanprodan/podinfo:6.0.0
          ports: [{name: http, containerPort: 9898, protocol: TCP}]
          envFrom: [{configMapRef: {name: podinfo-config}}]
          resources:
            limits: {cpu: 2000m, memory: 512Mi}
            requests: {cpu: 100m, memory: 64Mi}
`,
		"app/base/service.yaml": `apiVersion: v1
kind: Service
metadata: {name: podinfo}
spec:
  type: ClusterIP
  selector: {app: podinfo}
  ports: [{name: http, port: 9898, protocol: TCP, targetPort: http}]
`,
		"app/base/hpa.yaml": `apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: podinfo}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  minReplicas: 2
  maxReplicas: 4
  metrics:
    - type: Resource
      resource: {name: cpu, target: {type: Utilization, averageUtilization: 99}}
`,
		"app/production/kustomization.yaml": `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: ` + ns + `
resources: [../base]
labels:
  - pairs: {environment: production}
    includeTemplates: true
images:
  - name: ghcr.io/stefanprodan/podinfo
    newName: registry.example.com/podinfo
    newTag: 6.7.1
replicas: [{name: podinfo, count: 2}]
patches:
  - path: resources.yaml
  - target: {kind: HorizontalPodAutoscaler, name: podinfo}
    patch: |-
      - op: replace
        path: /spec/maxReplicas
        value: 6
configMapGenerator:
  - name: podinfo-config
    behavior: merge
    literals: [PODINFO_UI_MESSAGE=production]
secretGenerator:
  - name: podinfo-token
    literals: [token=not-a-real-secret]
generatorOptions:
  labels: {generated: "true"}
`,
		"app/production/resources.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: podinfo}
spec:
  template:
    spec:
      containers:
        - name: podinfod
          resources:
            requests: {cpu: 200m}
`,
	}
	dir := t.TempDir()
	writeFiles(t, dir, files)

	cmd := exec.Command(env.Kubectl, "kustomize", filepath.Join(dir, "app/production"))
	want, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v", err)
	}
	repo, err := repofs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	built, err := render.BuildKustomization(repo, "app/production", pipeline.Limits{}.Text())
	if err != nil {
		t.Fatal(err)
	}
	if a, b := objectsOf(t, built.YAML), objectsOf(t, want); !reflect.DeepEqual(a, b) {
		t.Fatalf("Slipway's build differs from kubectl kustomize's:\n%s\n--- kubectl:\n%s", built.YAML, want)
	}

	// And it deploys: a run of the same files.
	project, projectName, cfg := newProject(t, env)
	commit := bytesOf(files)
	commit[".pipeline.yaml"] = []byte("name: podinfo\nstages:\n- name: deploy\n  tasks:\n  - {name: production, type: deploy-yaml, path: app/production, cluster: e2e, namespace: " + ns + ", wait: 60s}\n")
	project.commit("podinfo", commit)
	if out, code := slipway(t, "run", "--config", cfg, "--repo", projectName); code != 0 {
		t.Fatalf("run: exit %d\n%s", code, out)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, "podinfo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != "registry.example.com/podinfo:6.7.1" || *d.Spec.Replicas != 2 || c.Resources.Requests.Cpu().String() != "200m" ||
		d.Labels["environment"] != "production" || d.Spec.Template.Labels["environment"] != "production" {
		t.Errorf("Deployment: image %s replicas %d requests %v labels %v template labels %v", c.Image, *d.Spec.Replicas, c.Resources.Requests, d.Labels, d.Spec.Template.Labels)
	}
	hpa, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "podinfo", metav1.GetOptions{})
	if err != nil || hpa.Spec.MaxReplicas != 6 {
		t.Errorf("HPA: %v %+v", err, hpa)
	}
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, c.EnvFrom[0].ConfigMapRef.Name, metav1.GetOptions{})
	if err != nil || cm.Data["PODINFO_UI_MESSAGE"] != "production" || cm.Data["PODINFO_UI_COLOR"] != "#34577c" || cm.Labels["generated"] != "true" {
		t.Errorf("merged ConfigMap: %v %v %v", err, cm.Data, cm.Labels)
	}
}

// waitPipelineEvent polls the drift events of one pipeline until one satisfies cond.
func waitPipelineEvent(t *testing.T, st store.Store, pipeline string, timeout time.Duration, cond func(store.DriftEvent) bool) store.DriftEvent {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		ps, err := st.ListPipelines(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var evs []store.DriftEvent
		for _, p := range ps {
			if p.Ref.Name != pipeline {
				continue
			}
			if evs, err = st.ListDriftEvents(t.Context(), p.Ref, 0); err != nil {
				t.Fatal(err)
			}
			for _, e := range evs {
				if cond(e) {
					return e
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no such drift event of %s within %s; events: %+v", pipeline, timeout, evs)
		}
	}
}

// objectsOf decodes a YAML stream into its objects, for comparing builds.
func objectsOf(t *testing.T, stream []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, doc := range strings.Split(string(stream), "\n---\n") {
		var o map[string]any
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("%v in\n%s", err, doc)
		}
		if len(o) > 0 {
			out = append(out, o)
		}
	}
	return out
}

// The docs' environment overlay example as written (namespaces mapped): a push deploys the
// staging overlay, and `slipway promote --to prod` renders the prod overlay, with the run's
// BUILD_ID, into prod's namespace.
func TestKustomizeOverlayPerEnvironmentPromoted(t *testing.T) {
	env := testenv.Get(t)
	staging, prod := env.Namespace(t), env.Namespace(t)
	cs := env.Clientset(t)
	doc, err := os.ReadFile(filepath.Join(env.Root, "docs", "pipeline.md"))
	if err != nil {
		t.Fatal(err)
	}
	const start = "```yaml\nname: web\nenvironments:\n"
	i := strings.Index(string(doc), start)
	if i < 0 {
		t.Fatal("docs/pipeline.md no longer holds the environment overlay example (name: web, environments)")
	}
	text := string(doc[i+len("```yaml\n"):])
	text = text[:strings.Index(text, "```")]
	text = strings.Replace(strings.Replace(text, "namespace: web-staging", "namespace: "+staging, 1), "namespace: web-prod", "namespace: "+prod, 1)
	repo, _, cfg := newProject(t, env)
	server, tokenFile := withAPI(t, cfg)
	files := bytesOf(kustomizeBase)
	files[".pipeline.yaml"] = []byte(text)
	repo.commit("overlays per environment", files)
	d := startAPIServe(t, cfg, server, tokenFile)
	waitPipelineHistory(t, cfg, "web", 2*time.Minute, "run 1 succeeded", func(h []historyEntry) bool {
		return len(h) == 1 && h[0].Status == "succeeded"
	})
	if dep := getDeployment(t, cs, staging, "staging-web"); *dep.Spec.Replicas != 1 {
		t.Errorf("staging overlay: replicas %d", *dep.Spec.Replicas)
	}
	if out, code := d.ctl(t, "promote", "web", "1", "--to", "prod", "--wait"); code != 0 || !strings.Contains(out, "#2 succeeded (trigger promote") {
		t.Fatalf("promote to prod: exit %d\n%s", code, out)
	}
	dep := getDeployment(t, cs, prod, "prod-web")
	if *dep.Spec.Replicas != 3 || !strings.HasPrefix(settingsOf(t, dep), "prod-web-settings-") {
		t.Errorf("prod overlay: replicas %d, settings %s", *dep.Spec.Replicas, settingsOf(t, dep))
	}
	svc, err := cs.CoreV1().Services(prod).Get(t.Context(), "prod-web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := svc.Annotations["example.com/build"]; got != "1" {
		t.Errorf("the promotion rendered BUILD_ID %q, want the artifact's 1", got)
	}
	if _, err := cs.AppsV1().Deployments(staging).Get(t.Context(), "prod-web", metav1.GetOptions{}); err == nil {
		t.Error("the prod overlay landed in staging")
	}
	d.stop(t)
}
