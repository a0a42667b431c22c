package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/config"
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
	d := &daemonProc{cmd: exec.Command(slipwayBinary(t), append([]string{"serve", "--config", cfgPath}, serveFlags...)...), done: make(chan error, 1)}
	d.cmd.Stdout, d.cmd.Stderr = d, d
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() { d.stop(t) })
	waitHistory(t, cfgPath, 60*time.Second, "run 1", func(h []historyEntry) bool { return len(h) == 1 && h[0].Status == "succeeded" })
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), cfg.Store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
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
	ctx := context.Background()
	addr := freeAddress(t)
	cfg, st := driftSetup(t, env, ns, "        drift: report\n", "--metrics-address", addr)

	kubectl(t, env, "-n", ns, "annotate", "deployment/jack-2048", "example.com/owner=ops")
	start := time.Now()
	kubectl(t, env, "-n", ns, "scale", "deployment/jack-2048", "--replicas=3")
	e := waitEvent(t, st, 2*time.Second, "for the scale", func(e store.DriftEvent) bool {
		return e.Object.Kind == "Deployment" && strings.Contains(e.Patch, "/spec/replicas")
	})
	t.Logf("report latency: drift detected %s after kubectl scale started (seen by the test after %s)",
		e.DetectedAt.Sub(start).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	t.Logf("reported change by %s at %s: %s", e.Manager, e.ChangedAt.Format(time.RFC3339), e.Patch)
	if e.Action != store.DriftReported || e.Manager != "kubectl" || e.ChangedAt.IsZero() || e.Gone {
		t.Fatalf("event %+v: want reported, manager kubectl, with a change time", e)
	}
	time.Sleep(time.Second)
	dep, err := cs.AppsV1().Deployments(ns).Get(ctx, "jack-2048", metav1.GetOptions{})
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

	metrics := scrape(t, addr)
	for _, want := range []string{`slipway_drift_objects{pipeline="jack-2048"} 1`, `slipway_drift_events_total{action="reported",pipeline="jack-2048"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s:\n%s", want, metrics)
		}
	}

	// `slipway drift` computes the same from scratch, without the daemon's help.
	out, code := slipway(t, "drift", "--config", cfg, "jack-2048", "-o", "json")
	if code != 0 {
		t.Fatalf("slipway drift: exit %d\n%s", code, out)
	}
	var rows []struct {
		Object  string            `json:"object"`
		Mode    string            `json:"mode"`
		Gone    bool              `json:"gone"`
		Manager string            `json:"manager"`
		Patch   []json.RawMessage `json:"patch"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("slipway drift JSON: %v\n%s", err, out)
	}
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
	start := time.Now()
	kubectl(t, env, "-n", ns, "scale", "deployment/jack-2048", "--replicas=3")
	for {
		dep, err := cs.AppsV1().Deployments(ns).Get(ctx, "jack-2048", metav1.GetOptions{})
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
	t.Logf("correct latency (scale issued -> replicas back to 1): %s", time.Since(start).Round(time.Millisecond))
	e := waitEvent(t, st, 2*time.Second, "of the correction", func(e store.DriftEvent) bool { return e.Action == store.DriftCorrected })
	if e.Manager != "kubectl" || !strings.Contains(e.Patch, "/spec/replicas") {
		t.Fatalf("correction event %+v", e)
	}

	start = time.Now()
	kubectl(t, env, "-n", ns, "delete", "service", "svc-2048", "--wait=false")
	for {
		svc, err := cs.CoreV1().Services(ns).Get(ctx, "svc-2048", metav1.GetOptions{})
		if err == nil && svc.CreationTimestamp.After(start.Add(-time.Second)) && svc.DeletionTimestamp == nil {
			break
		}
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("svc-2048 not recreated 5s after kubectl delete: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("deleted Service recreated after %s", time.Since(start).Round(time.Millisecond))
	waitEvent(t, st, 2*time.Second, "of the recreated Service", func(e store.DriftEvent) bool {
		return e.Action == store.DriftCorrected && e.Gone && e.Object.Kind == "Service"
	})

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

func freeAddress(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
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
