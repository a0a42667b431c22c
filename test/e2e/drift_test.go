package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/slipwayhq/slipway/store"
	"github.com/slipwayhq/slipway/test/testenv"
)

// driftPipeline deploys the 2048 manifests with the given drift settings (YAML lines
// indented as task fields).
func driftPipeline(registry, ns, settings string) []byte {
	return []byte(strings.TrimSuffix(string(deployOnlyPipeline(registry, ns)), "\n") + "\n" + settings)
}

// driftSetup deploys the 2048 manifests with replicas: 1 (a field Slipway sets) under a
// running `slipway serve` (with extra flags), and returns the config and an open store of
// that daemon.
func driftSetup(t *testing.T, env *testenv.Env, ns, settings string, serveFlags ...string) (string, store.Store) {
	t.Helper()
	repo, url := newWorkRepo(t, env)
	repoName := strings.TrimSuffix(url[strings.LastIndex(url, "/")+1:], ".git")
	cfgPath := writeConfig(t, env, repoName, url)
	manifests := strings.Replace(string(readExample(t, env, "2048-yaml/2048_env.yaml")), "spec:\n  selector:", "spec:\n  replicas: 1\n  selector:", 1)
	repo.commit("one", map[string][]byte{".pipeline.yaml": driftPipeline(env.Registry, ns, settings), "2048_env.yaml": []byte(manifests)})
	startServe(t, cfgPath, serveFlags...)
	waitHistory(t, cfgPath, 60*time.Second, "run 1", func(h []historyEntry) bool { return len(h) == 1 && h[0].Status == "succeeded" })
	st := openDaemonStore(t, cfgPath)
	time.Sleep(time.Second) // the watcher learns the new revision when the task ends
	return cfgPath, st
}

func kubectl(t *testing.T, env *testenv.Env, args ...string) {
	t.Helper()
	cmd := exec.Command(env.Kubectl, append([]string{"--kubeconfig", env.Kubeconfig}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// waitEvent polls the drift events until one satisfies cond.
func waitEvent(t *testing.T, st store.Store, timeout time.Duration, what string, cond func(store.DriftEvent) bool) store.DriftEvent {
	t.Helper()
	ps, err := st.ListPipelines(context.Background())
	if err != nil || len(ps) != 1 {
		t.Fatalf("pipelines %+v: %v", ps, err)
	}
	ref := ps[0].Ref
	deadline := time.Now().Add(timeout)
	for {
		evs, err := st.ListDriftEvents(context.Background(), ref, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if cond(e) {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no drift event %s within %s; events: %+v", what, timeout, evs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scaleReported annotates deployment/name (a field Slipway never set), scales it to 3
// replicas and waits up to 2 s for the drift event of the scale, logging the latency as
// what's ("report latency: ...").
func scaleReported(t *testing.T, env *testenv.Env, st store.Store, ns, name, what string) store.DriftEvent {
	t.Helper()
	kubectl(t, env, "-n", ns, "annotate", "deployment/"+name, "example.com/owner=ops")
	start := time.Now()
	kubectl(t, env, "-n", ns, "scale", "deployment/"+name, "--replicas=3")
	e := waitEvent(t, st, 2*time.Second, "for the scale", func(e store.DriftEvent) bool {
		return e.Object.Kind == "Deployment" && strings.Contains(e.Patch, "/spec/replicas")
	})
	t.Logf("%s: drift detected %s after kubectl scale started (seen by the test after %s)",
		what, e.DetectedAt.Sub(start).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	t.Logf("reported change by %s at %s: %s", e.Manager, e.ChangedAt.Format(time.RFC3339), e.Patch)
	return e
}

// assertReportLeftAlone checks, a second after scaleReported, that report mode left
// deployment/name as kubectl made it and that the annotation was not taken for drift.
func assertReportLeftAlone(t *testing.T, cs kubernetes.Interface, st store.Store, ns, name string) {
	t.Helper()
	time.Sleep(time.Second)
	dep, err := cs.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *dep.Spec.Replicas != 3 || dep.Annotations["example.com/owner"] != "ops" {
		t.Fatalf("report mode changed the object: replicas %d annotations %v", *dep.Spec.Replicas, dep.Annotations)
	}
	for _, e := range driftEvents(t, st) {
		if strings.Contains(e.Patch, "example.com") {
			t.Fatalf("the annotation kubectl added was reported as drift: %+v", e)
		}
	}
}

// scaleReverted scales deployment/name to 3 replicas and waits up to 2 s for correct mode
// to set it back to 1, logging the latency as what's.
func scaleReverted(t *testing.T, env *testenv.Env, cs kubernetes.Interface, ns, name, what string) {
	t.Helper()
	start := time.Now()
	kubectl(t, env, "-n", ns, "scale", "deployment/"+name, "--replicas=3")
	for {
		dep, err := cs.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if *dep.Spec.Replicas == 1 && dep.Generation > 2 {
			break
		}
		if time.Since(start) > 2*time.Second {
			t.Fatalf("replicas %d (generation %d) 2s after kubectl scale: not reverted", *dep.Spec.Replicas, dep.Generation)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%s (scale issued -> replicas back to 1): %s", what, time.Since(start).Round(time.Millisecond))
}

// serviceRecreated deletes Service name and waits up to 5 s for correct mode to recreate
// it (check, when not nil, vets the new one) and up to 2 s more for the drift event of
// that, logging the time as what's.
func serviceRecreated(t *testing.T, env *testenv.Env, cs kubernetes.Interface, st store.Store, ns, name, what string, check func(*corev1.Service)) {
	t.Helper()
	start := time.Now()
	kubectl(t, env, "-n", ns, "delete", "service", name, "--wait=false")
	for {
		svc, err := cs.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && svc.CreationTimestamp.After(start.Add(-time.Second)) && svc.DeletionTimestamp == nil {
			if check != nil {
				check(svc)
			}
			break
		}
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("%s not recreated 5s after kubectl delete: %v", name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%s after %s", what, time.Since(start).Round(time.Millisecond))
	waitEvent(t, st, 2*time.Second, "of the recreated Service", func(e store.DriftEvent) bool {
		return e.Action == store.DriftCorrected && e.Gone && e.Object.Kind == "Service"
	})
}

// driftRow is one entry of `slipway drift -o json`.
type driftRow struct {
	Pipeline string            `json:"pipeline"`
	Object   string            `json:"object"`
	Mode     string            `json:"mode"`
	Gone     bool              `json:"gone"`
	Manager  string            `json:"manager"`
	Patch    []json.RawMessage `json:"patch"`
}

// driftCLI runs `slipway drift -o json` with args and returns its rows and its output.
func driftCLI(t *testing.T, args ...string) ([]driftRow, string) {
	t.Helper()
	out, code := slipway(t, append([]string{"drift"}, append(args, "-o", "json")...)...)
	if code != 0 {
		t.Fatalf("slipway drift: exit %d\n%s", code, out)
	}
	var rows []driftRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("slipway drift JSON: %v\n%s", err, out)
	}
	return rows, out
}

// driftPipelineRef is the one pipeline of a daemon's store.
func driftPipelineRef(t *testing.T, st store.Store) store.PipelineRef {
	t.Helper()
	ps, err := st.ListPipelines(context.Background())
	if err != nil || len(ps) != 1 {
		t.Fatalf("pipelines %+v: %v", ps, err)
	}
	return ps[0].Ref
}

func driftEvents(t *testing.T, st store.Store) []store.DriftEvent {
	t.Helper()
	ps, err := st.ListPipelines(context.Background())
	if err != nil || len(ps) != 1 {
		t.Fatalf("pipelines %+v: %v", ps, err)
	}
	evs, err := st.ListDriftEvents(context.Background(), ps[0].Ref, 0)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// report mode: `kubectl scale` is recorded within 2 s, naming kubectl, and left alone; an
// annotation Slipway never set is not drift.
func TestDriftReportNamesKubectl(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	addr := testenv.FreeAddress(t)
	cfg, st := driftSetup(t, env, ns, "        drift: report\n", "--metrics-address", addr)

	e := scaleReported(t, env, st, ns, "jack-2048", "report latency")
	if e.Action != store.DriftReported || e.Manager != "kubectl" || e.ChangedAt.IsZero() || e.Gone {
		t.Fatalf("event %+v: want reported, manager kubectl, with a change time", e)
	}
	assertReportLeftAlone(t, cs, st, ns, "jack-2048")

	metrics := scrape(t, addr)
	repo := driftPipelineRef(t, st).Repository
	for _, want := range []string{`slipway_drift_objects{pipeline="jack-2048",repository="` + repo + `"} 1`,
		`slipway_drift_events_total{action="reported",pipeline="jack-2048",repository="` + repo + `"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s:\n%s", want, metrics)
		}
	}

	// `slipway drift` computes the same from scratch, without the daemon's help.
	rows, out := driftCLI(t, "--config", cfg, "jack-2048")
	if len(rows) != 1 || rows[0].Object != "Deployment/"+ns+"/jack-2048" || rows[0].Mode != "report" || rows[0].Gone ||
		rows[0].Manager != "kubectl" || len(rows[0].Patch) != 1 || !strings.Contains(string(rows[0].Patch[0]), "/spec/replicas") {
		t.Fatalf("slipway drift:\n%s", out)
	}
}

// correct mode: a scale is reverted within 2 s, a deleted Service is recreated, and an
// annotation Slipway never set is not drift and stays.
func TestDriftCorrectRevertsScaleAndRecreatesService(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	ctx := context.Background()
	_, st := driftSetup(t, env, ns, "")

	kubectl(t, env, "-n", ns, "annotate", "deployment/jack-2048", "example.com/owner=ops")
	scaleReverted(t, env, cs, ns, "jack-2048", "correct latency")
	e := waitEvent(t, st, 2*time.Second, "of the correction", func(e store.DriftEvent) bool { return e.Action == store.DriftCorrected })
	if e.Manager != "kubectl" || !strings.Contains(e.Patch, "/spec/replicas") {
		t.Fatalf("correction event %+v", e)
	}

	serviceRecreated(t, env, cs, st, ns, "svc-2048", "deleted Service recreated", nil)

	dep, err := cs.AppsV1().Deployments(ns).Get(ctx, "jack-2048", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if dep.Annotations["example.com/owner"] != "ops" {
		t.Fatalf("the annotation kubectl added was removed: %v", dep.Annotations)
	}
	for _, e := range driftEvents(t, st) {
		if strings.Contains(e.Patch, "example.com") {
			t.Fatalf("the annotation kubectl added was drift: %+v", e)
		}
	}
}

// driftIgnore on /spec/replicas: scaling is neither reported nor reverted.
func TestDriftIgnoreReplicas(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	ctx := context.Background()
	_, st := driftSetup(t, env, ns, "        driftIgnore:\n          - kind: Deployment\n            paths: [/spec/replicas]\n")

	kubectl(t, env, "-n", ns, "scale", "deployment/jack-2048", "--replicas=3")
	time.Sleep(3 * time.Second)
	dep, err := cs.AppsV1().Deployments(ns).Get(ctx, "jack-2048", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *dep.Spec.Replicas != 3 {
		t.Fatalf("replicas %d: an ignored field was corrected", *dep.Spec.Replicas)
	}
	if evs := driftEvents(t, st); len(evs) != 0 {
		t.Fatalf("an ignored field was drift: %+v", evs)
	}
	// A field that is not ignored is still corrected: the watcher is live.
	kubectl(t, env, "-n", ns, "set", "image", "deployment/jack-2048", "jack-2048=example.invalid/other:1")
	waitEvent(t, st, 2*time.Second, "for the image", func(e store.DriftEvent) bool { return e.Action == store.DriftCorrected })
	dep, err = cs.AppsV1().Deployments(ns).Get(ctx, "jack-2048", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := dep.Spec.Template.Spec.Containers[0].Image; *dep.Spec.Replicas != 3 || !strings.HasSuffix(img, ":alpha-1") {
		t.Fatalf("after correcting the image: replicas %d image %s, want 3 and revision 1's image", *dep.Spec.Replicas, img)
	}
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The sweep (every second here) spares the objects the watch shows unwritten since they
// were last found matching, checks every object in every sixth sweep, and checks again an
// object written since; a change is still reported by the watch at once.
func TestDriftSweepSparesUnwrittenObjects(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	addr := testenv.FreeAddress(t)
	_, st := driftSetup(t, env, ns, "        drift: report\n", "--metrics-address", addr, "--drift-sweep", "1s")
	swept := func(sweep, result string) float64 {
		return metricsOf(t, addr)[`slipway_drift_sweep_objects_total{result="`+result+`",sweep="`+sweep+`"}`]
	}
	waitSwept := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("no %s within 30 s:\n%s", what, scrape(t, addr))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// The first sweeps check what the deploy's rollout was still writing (and what was
	// checked before the watch caches synced); a full sweep comes every sixth.
	waitSwept("full sweep", func() bool { return swept("full", "checked") > 0 })
	objects := swept("full", "checked")
	if swept("full", "unchanged") != 0 {
		t.Fatalf("a full sweep spared objects:\n%s", scrape(t, addr))
	}
	checked, spared := swept("partial", "checked"), swept("partial", "unchanged")
	waitSwept("two partial sweeps sparing every object", func() bool { return swept("partial", "unchanged") >= spared+2*objects })
	if c := swept("partial", "checked"); c != checked {
		t.Fatalf("partial sweeps at rest checked %v objects, want none: every one of the %v is unwritten", c-checked, objects)
	}

	// A write moves the object's resourceVersion: the watch reports it, and the sweeps check
	// it again (it stays drifted, so it is never spared).
	e := scaleReported(t, env, st, ns, "jack-2048", "report latency with spared sweeps")
	if e.Action != store.DriftReported {
		t.Fatalf("event %+v, want reported", e)
	}
	checked = swept("partial", "checked")
	waitSwept("partial sweep checking the drifted Deployment", func() bool { return swept("partial", "checked") >= checked+2 })
	if evs := driftEvents(t, st); len(evs) != 1 {
		t.Fatalf("drift events %+v: want the one report, not one per sweep", evs)
	}
}
