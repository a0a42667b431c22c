package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/internal/repofs"
	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/render"
	"github.com/slipwayhq/slipway/test/testenv"
)

// Shape of the Kustomize benchmark: a base of 166 apps (ConfigMap, Deployment, Service)
// and an overlay that adds a generated ConfigMap and Secret: 500 objects built.
const (
	kustomizeApps    = 166
	kustomizeObjects = kustomizeApps*3 + 2
	kustomizeRuns    = 3
	kustomizeTarget  = 1.2 // Slipway's build + render within this factor of kubectl's build
)

// writeKustomization writes the base and the overlay (namespace, namePrefix, labels, the
// images transformer, replicas, a strategic-merge patch on every Deployment, generators,
// and a ${BUILD_ID} substituted after the build) under dir, and a one-object kustomization
// that measures kubectl's start-up alone.
func writeKustomization(dir string) error {
	var base strings.Builder
	base.WriteString("resources:\n")
	files := map[string]string{}
	for i := range kustomizeApps {
		app := fmt.Sprintf("app-%03d", i)
		fmt.Fprintf(&base, "  - %s.yaml\n", app)
		files["base/"+app+".yaml"] = fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata: {name: %[1]s, labels: {app: %[1]s}}
data: {LISTEN: ":8080", GREETING: "hello from %[1]s"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s, labels: {app: %[1]s}}
spec:
  replicas: 1
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      containers:
        - name: app
          image: registry.local/bench/app:1
          ports: [{containerPort: 8080}]
          envFrom: [{configMapRef: {name: %[1]s}}, {configMapRef: {name: settings}}]
---
apiVersion: v1
kind: Service
metadata: {name: %[1]s, labels: {app: %[1]s}}
spec:
  selector: {app: %[1]s}
  ports: [{name: http, port: 80, targetPort: 8080}]
`, app)
	}
	files["base/kustomization.yaml"] = base.String()
	files["overlay/kustomization.yaml"] = `resources: [../base]
namespace: bench-kustomize
namePrefix: prod-
labels:
  - pairs: {environment: production}
    includeTemplates: true
images:
  - name: registry.local/bench/app
    newTag: "1.${BUILD_ID}"
replicas: [{name: app-000, count: 3}]
patches:
  - target: {kind: Deployment}
    patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata: {name: any}
      spec:
        template:
          spec:
            containers:
              - name: app
                resources: {requests: {cpu: 10m, memory: 16Mi}}
configMapGenerator:
  - name: settings
    literals: [REGION=local, TIER=web]
secretGenerator:
  - name: token
    literals: [token=bench]
`
	files["one/kustomization.yaml"] = "resources: [cm.yaml]\n"
	files["one/cm.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\n"
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// TestBenchKustomize times Slipway's build + render of a 500-object overlay (kustomize's
// library through the confined file system, then ${...} substitution and parsing into
// objects: what a deploy-yaml task does before the dry-run) beside `kubectl kustomize` of
// the same folder (kustomize as kubectl embeds it). kubectl runs as a process, so its
// start-up (a one-object build) is measured too and taken off; Slipway runs in process.
func TestBenchKustomize(t *testing.T) {
	env := testenv.Get(t)
	if env.Kubectl == "" {
		t.Fatal("SLIPWAY_KUBECTL is not set: run `make env-up` (it pins kubectl)")
	}
	dir := t.TempDir()
	if err := writeKustomization(dir); err != nil {
		t.Fatal(err)
	}
	repo, err := repofs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	limits := pipeline.Limits{}.Text()
	vars := render.Map{"BUILD_ID": "42"}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	slipwayBuild := func() (time.Duration, time.Duration) {
		start := time.Now()
		built, err := render.BuildKustomization(repo, "overlay", limits)
		if err != nil {
			t.Fatal(err)
		}
		buildOnly := time.Since(start)
		start = time.Now()
		ms, err := render.LoadManifests(repo, "overlay", limits, vars)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != kustomizeObjects || !strings.Contains(string(built.YAML), "image: registry.local/bench/app:1.${BUILD_ID}") {
			t.Fatalf("Slipway built %d objects, want %d", len(ms), kustomizeObjects)
		}
		return buildOnly, time.Since(start)
	}
	kubectl := func(folder string, objects int) time.Duration {
		start := time.Now()
		out, err := exec.CommandContext(ctx, env.Kubectl, "kustomize", filepath.Join(dir, folder)).Output()
		took := time.Since(start)
		if err != nil {
			t.Fatalf("kubectl kustomize %s: %v", folder, err)
		}
		if n := strings.Count("\n"+string(out), "\n---\n") + 1; n != objects {
			t.Fatalf("kubectl kustomize %s built %d objects, want %d", folder, n, objects)
		}
		return took
	}

	// One warm-up of each (file cache, kubectl's binary), not counted.
	slipwayBuild()
	kubectl("overlay", kustomizeObjects)
	kubectl("one", 1)
	var build, renders, kc, startup, kcNet []float64
	for range kustomizeRuns {
		b, r := slipwayBuild()
		full, one := kubectl("overlay", kustomizeObjects), kubectl("one", 1)
		build, renders = append(build, b.Seconds()), append(renders, r.Seconds())
		kc, startup, kcNet = append(kc, full.Seconds()), append(startup, one.Seconds()), append(kcNet, (full-one).Seconds())
	}

	ms := func(s float64) string { return fmt.Sprintf("%.0f ms", s*1000) }
	row := func(name string, xs []float64) string {
		return fmt.Sprintf("| %s | %s | %s–%s |\n", name, ms(median(xs)), ms(slices.Min(xs)), ms(slices.Max(xs)))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nKustomize: a %d-object overlay (namespace, namePrefix, labels, images, replicas, a patch on every Deployment, "+
		"two generators) over a base of %d files; median of %d runs, spread min–max\n\n", kustomizeObjects, kustomizeApps+1, kustomizeRuns)
	b.WriteString("| contender | median | spread |\n|---|---:|---:|\n")
	b.WriteString(row("Slipway: kustomize build (library, confined file system)", build))
	b.WriteString(row("Slipway: build + substitution + parse into objects (what a deploy renders)", renders))
	b.WriteString(row("`kubectl kustomize` (process)", kc))
	b.WriteString(row("`kubectl kustomize` of a one-object kustomization (its start-up)", startup))
	b.WriteString(row("`kubectl kustomize`, start-up taken off", kcNet))
	ratio := median(renders) / median(kcNet)
	verdict := "met"
	if ratio > kustomizeTarget {
		verdict = "MISSED"
		t.Errorf("Slipway's build + render %.2f× kubectl's build, target ≤ %.1f×", ratio, kustomizeTarget)
	}
	fmt.Fprintf(&b, "\n| target | measured | verdict |\n|---|---:|---|\n| build + render ≤ %.1f× `kubectl kustomize` (start-up off) | %.2f× | %s |\n",
		kustomizeTarget, ratio, verdict)
	t.Log(b.String())
	fmt.Println(b.String())
	writeReport(t, env, "kustomize.json", map[string]any{
		"objects": kustomizeObjects, "runs": kustomizeRuns, "target_ratio": kustomizeTarget, "ratio": ratio, "verdict": verdict,
		"slipway_build_seconds": build, "slipway_render_seconds": renders,
		"kubectl_seconds": kc, "kubectl_startup_seconds": startup, "kubectl_net_seconds": kcNet,
	})
}
