package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/daemon"
	"github.com/slipwayhq/slipway/store"
	"github.com/slipwayhq/slipway/test/testenv"
)

// The chart deploy of these tests: release web of the nginx example chart from the
// checkout, whose Deployment and Service are web-nginx and whose replicaCount (1) is a
// field the release sets.
const (
	chartDriftPipeline = "nginx-dir"
	chartWorkload      = "web-nginx"
)

// chartDriftSetup deploys the chart with the given drift settings (task fields) under a
// running `slipway serve`, and returns the config, an open store of that daemon and the
// repository.
func chartDriftSetup(t *testing.T, env *testenv.Env, ns, settings string) (string, store.Store, *workRepo) {
	t.Helper()
	repo, cfgPath := chartDriftServe(t, env, append(chartDirPipeline(ns, "60s", ""), settings...))
	waitPipelineHistory(t, cfgPath, chartDriftPipeline, 90*time.Second, "run 1", func(h []historyEntry) bool {
		return len(h) == 1 && h[0].Status == "succeeded"
	})
	st := openDaemonStore(t, cfgPath)
	time.Sleep(time.Second) // the watcher learns the new revision when the task ends
	return cfgPath, st, repo
}

// chartDriftServe pushes the chart repository with the pipeline and starts `slipway serve`
// (with extra flags) following it.
func chartDriftServe(t *testing.T, env *testenv.Env, pipeline []byte, serveFlags ...string) (*workRepo, string) {
	t.Helper()
	repo, _, cfgPath := newProject(t, env)
	files := chartDirRepo(t, env)
	files[".pipeline.yaml"] = pipeline
	repo.commit("deploy the chart", files)
	startServe(t, cfgPath, serveFlags...)
	// serve creates the fresh store first: a CLI opening it at the same moment can make
	// serve's own open fail with SQLITE_BUSY while it switches the database to WAL.
	time.Sleep(time.Second)
	return repo, cfgPath
}

func openDaemonStore(t *testing.T, cfgPath string) store.Store {
	t.Helper()
	// As the daemon opens it: with the keys that decrypt its revisions.
	_, st, err := daemon.OpenConfigAndStore(context.Background(), cfgPath, logrus.NewEntry(logrus.StandardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// waitPipelineHistory polls a pipeline's history until cond holds.
func waitPipelineHistory(t *testing.T, cfg, pipeline string, timeout time.Duration, what string, cond func([]historyEntry) bool) []historyEntry {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, code := slipway(t, "history", "--config", cfg, pipeline, "-o", "json")
		if code == 0 {
			if h := parseHistory(t, out); cond(h) {
				return h
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: history is\n%s", what, out)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// eventRow is one entry of `slipway drift --events -o json`.
type eventRow struct {
	ID         int64             `json:"id"`
	Pipeline   string            `json:"pipeline"`
	Task       string            `json:"task"`
	BuildID    int64             `json:"build_id"`
	Cluster    string            `json:"cluster"`
	Object     string            `json:"object"`
	Action     string            `json:"action"`
	Gone       bool              `json:"gone"`
	Patch      []json.RawMessage `json:"patch"`
	Manager    string            `json:"manager"`
	ChangedAt  string            `json:"changed_at"`
	DetectedAt string            `json:"detected_at"`
}

func driftEventsCLI(t *testing.T, args ...string) []eventRow {
	t.Helper()
	out, code := slipway(t, append([]string{"drift", "--events", "-o", "json"}, args...)...)
	if code != 0 {
		t.Fatalf("slipway drift --events: exit %d\n%s", code, out)
	}
	var rows []eventRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("slipway drift --events JSON: %v\n%s", err, out)
	}
	return rows
}

// report mode: `kubectl scale` of the release's Deployment is recorded within 2 s naming
// kubectl and left alone; `slipway drift` and `slipway drift --events` show it.
func TestChartDriftReportNamesKubectl(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	ctx := context.Background()
	cfg, st, _ := chartDriftSetup(t, env, ns, "        drift: report\n")

	// The post-renderer put Slipway's owner labels and Helm's ownership metadata on the
	// release's objects: the watch selects them like a YAML deploy's.
	dep, err := cs.AppsV1().Deployments(ns).Get(ctx, chartWorkload, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := st.ListPipelines(ctx)
	if err != nil || len(ps) != 1 {
		t.Fatalf("pipelines %+v: %v", ps, err)
	}
	assertOwnedBy(t, "the release's Deployment", dep.ObjectMeta, ps[0].Ref.Repository+"/"+chartDriftPipeline+"/deploy-web")
	if dep.Labels["app.kubernetes.io/managed-by"] != "Helm" || dep.Annotations["meta.helm.sh/release-name"] != "web" {
		t.Fatalf("release object metadata: labels %v annotations %v", dep.Labels, dep.Annotations)
	}

	e := scaleReported(t, env, st, ns, chartWorkload, "chart report latency")
	if e.Action != store.DriftReported || e.Manager != "kubectl" || e.Gone || e.Task != "deploy-web" || e.BuildID != 1 {
		t.Fatalf("event %+v: want reported by kubectl for deploy-web of BUILD_ID 1", e)
	}
	assertReportLeftAlone(t, cs, st, ns, chartWorkload)

	// `slipway drift` computes the same from the release manifest, without the daemon.
	rows, out := driftCLI(t, "--config", cfg, chartDriftPipeline)
	if len(rows) != 1 || rows[0].Object != "Deployment/"+ns+"/"+chartWorkload || rows[0].Mode != "report" ||
		rows[0].Manager != "kubectl" || len(rows[0].Patch) != 1 || !strings.Contains(string(rows[0].Patch[0]), "/spec/replicas") {
		t.Fatalf("slipway drift:\n%s", out)
	}

	evs := driftEventsCLI(t, "--config", cfg, chartDriftPipeline)
	if len(evs) != 1 || evs[0].Action != "reported" || evs[0].Manager != "kubectl" || evs[0].Object != "Deployment/"+ns+"/"+chartWorkload ||
		evs[0].Task != "deploy-web" || evs[0].BuildID != 1 || len(evs[0].Patch) != 1 || evs[0].DetectedAt == "" {
		t.Fatalf("slipway drift --events: %+v", evs)
	}
	table, code := slipway(t, "drift", "--config", cfg, "--events")
	if code != 0 || !strings.Contains(table, "reported") || !strings.Contains(table, "kubectl") {
		t.Fatalf("slipway drift --events (table): exit %d\n%s", code, table)
	}
	t.Logf("slipway drift --events:\n%s", table)
}

// correct mode: a scale of the release's Deployment is reverted within 2 s, a deleted
// Service is recreated (adoptable by Helm), the events listing shows both, and the next
// deploy (helm upgrade) works on the corrected objects and is not undone.
func TestChartDriftCorrectRevertsAndRecreates(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	ctx := context.Background()
	cfg, st, repo := chartDriftSetup(t, env, ns, "")

	scaleReverted(t, env, cs, ns, chartWorkload, "chart correct latency")
	e := waitEvent(t, st, 2*time.Second, "of the correction", func(e store.DriftEvent) bool { return e.Action == store.DriftCorrected })
	if e.Manager != "kubectl" || !strings.Contains(e.Patch, "/spec/replicas") || e.Object.Kind != "Deployment" {
		t.Fatalf("correction event %+v", e)
	}

	serviceRecreated(t, env, cs, st, ns, chartWorkload, "chart: deleted Service recreated", func(svc *corev1.Service) {
		// Recreated as the release rendered it, Helm's ownership metadata included, so
		// the next helm upgrade adopts it.
		if svc.Annotations["meta.helm.sh/release-name"] != "web" || svc.Annotations["meta.helm.sh/release-namespace"] != ns ||
			svc.Labels["app.kubernetes.io/managed-by"] != "Helm" || svc.Labels["slipway.dev/owner"] == "" ||
			!strings.HasSuffix(svc.Annotations["slipway.dev/owner"], "/"+chartDriftPipeline+"/deploy-web") {
			t.Fatalf("recreated Service metadata: labels %v annotations %v", svc.Labels, svc.Annotations)
		}
	})

	evs := driftEventsCLI(t, "--config", cfg)
	if len(evs) != 2 || evs[0].Object != "Service/"+ns+"/"+chartWorkload || !evs[0].Gone || evs[0].Action != "corrected" ||
		evs[1].Object != "Deployment/"+ns+"/"+chartWorkload || evs[1].Action != "corrected" || evs[1].Manager != "kubectl" {
		t.Fatalf("slipway drift --events, newest first: %+v", evs)
	}
	if limited := driftEventsCLI(t, "--config", cfg, "--limit", "1"); len(limited) != 1 || limited[0].ID != evs[0].ID {
		t.Fatalf("slipway drift --events --limit 1: %+v", limited)
	}

	// The next deploy is an ordinary helm upgrade over the corrected objects; its new
	// replica count is the new desired state, not drift.
	pipelineText := strings.Replace(string(chartDirPipeline(ns, "60s", "")), "valuesFiles: [values-e2e.yaml]", "valuesFiles: [values-e2e.yaml, replicas.yaml]", 1)
	repo.commit("two replicas", map[string][]byte{".pipeline.yaml": []byte(pipelineText), "replicas.yaml": []byte("replicaCount: 2\n")})
	waitPipelineHistory(t, cfg, chartDriftPipeline, 90*time.Second, "run 2", func(h []historyEntry) bool {
		return len(h) == 2 && h[0].BuildID == 2 && h[0].Status == "succeeded"
	})
	h, err := storage.Init(driver.NewSecrets(cs.CoreV1().Secrets(ns))).History("web")
	if err != nil {
		t.Fatal(err)
	}
	if got := historyString(h); !strings.HasPrefix(got, "1:superseded:") || !strings.Contains(got, " 2:deployed:") {
		t.Fatalf("helm history after the upgrade: %s", got)
	}
	time.Sleep(2 * time.Second)
	dep, err := cs.AppsV1().Deployments(ns).Get(ctx, chartWorkload, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *dep.Spec.Replicas != 2 {
		t.Fatalf("replicas %d after the upgrade to 2: the watcher set back the old revision", *dep.Spec.Replicas)
	}
	if n := len(driftEvents(t, st)); n != 2 {
		t.Fatalf("%d drift events after the upgrade, want the 2 from before: the upgrade was taken for drift", n)
	}
	if out, code := slipway(t, "drift", "--config", cfg, chartDriftPipeline); code != 0 || !strings.Contains(out, "no drift") {
		t.Fatalf("slipway drift after the upgrade: exit %d\n%s", code, out)
	}
}

// driftIgnore on a chart task: scaling the release's Deployment is neither reported nor
// reverted, while another field of it still is.
func TestChartDriftIgnoreReplicas(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	ctx := context.Background()
	_, st, _ := chartDriftSetup(t, env, ns, "        driftIgnore:\n          - kind: Deployment\n            paths: [/spec/replicas]\n")

	kubectl(t, env, "-n", ns, "scale", "deployment/"+chartWorkload, "--replicas=3")
	time.Sleep(3 * time.Second)
	if evs := driftEvents(t, st); len(evs) != 0 {
		t.Fatalf("an ignored field was drift: %+v", evs)
	}
	kubectl(t, env, "-n", ns, "set", "image", "deployment/"+chartWorkload, "nginx=example.invalid/other:1")
	waitEvent(t, st, 2*time.Second, "for the image", func(e store.DriftEvent) bool { return e.Action == store.DriftCorrected })
	dep, err := cs.AppsV1().Deployments(ns).Get(ctx, chartWorkload, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := dep.Spec.Template.Spec.Containers[0].Image; *dep.Spec.Replicas != 3 || img != "example.com/web:dir-1" {
		t.Fatalf("after correcting the image: replicas %d image %s, want 3 and the release's example.com/web:dir-1", *dep.Spec.Replicas, img)
	}
}

// A first install that never becomes healthy is uninstalled; its revision is recorded
// rolled_back, so the drift watcher (sweeping every second here) never brings its objects
// back.
func TestChartDriftLeavesUninstalledReleaseAlone(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	ctx := context.Background()
	_, cfg := chartDriftServe(t, env, chartDirPipeline(ns, "20s", `          podLabels:
            pod-container-running-failed.stage.kwok.x-k8s.io: "true"
          minReadySeconds: 10
`), "--drift-sweep", "1s")
	h := waitPipelineHistory(t, cfg, chartDriftPipeline, 90*time.Second, "the failed run 1", func(h []historyEntry) bool {
		return len(h) == 1 && h[0].Status == "failed"
	})
	if !strings.Contains(h[0].Revision, "deploy-web:rolled_back") || !strings.Contains(h[0].Reason, "uninstalled") {
		t.Fatalf("run 1: %+v, want the revision rolled_back and the reason saying the release was uninstalled", h[0])
	}
	st := openDaemonStore(t, cfg)
	time.Sleep(3 * time.Second) // three sweeps
	deps, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(deps.Items) != 0 {
		t.Fatalf("objects of the uninstalled release are back: %v, %d Deployments", err, len(deps.Items))
	}
	if evs := driftEvents(t, st); len(evs) != 0 {
		t.Fatalf("drift events for an uninstalled release: %+v", evs)
	}
	if out, code := slipway(t, "drift", "--config", cfg, chartDriftPipeline); code != 0 || !strings.Contains(out, "no drift") {
		t.Fatalf("slipway drift: exit %d\n%s", code, out)
	}
}
