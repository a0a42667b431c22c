package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/store"
	"github.com/slipwayhq/slipway/test/testenv"
)

// crashAfterStart labels the 2048 Deployment's pods for kwok's chaos stage, which turns a
// Running, Ready pod Failed (container terminated "containerFailed", exit code 1) a second
// or two later; the ReplicaSet replaces it and the same happens again. Without
// minReadySeconds the Deployment is Available most of the time: the first healthy moment
// comes within seconds, as with a real app that crashes shortly after it starts.
func crashAfterStart(manifests string) string {
	return strings.Replace(manifests, "      labels:\n        application: jack-2048",
		"      labels:\n        application: jack-2048\n        pod-container-running-failed.stage.kwok.x-k8s.io: \"true\"", 1)
}

// A commit whose pods crash right after becoming Ready fails its stability window within
// wait, naming the pod and the container's failure, and the previous revision is re-applied;
// the crashed revision is never a rollback target. A healthy commit passes after its window
// (the run lasts at least stableFor), and stableFor: 0 keeps accepting the first healthy
// moment, the documented trade-off, with the very same crashing commit.
func TestStabilityWindowCatchesCrashAfterStart(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	repo, repoName, cfg := newProject(t, env)
	manifests := strings.Replace(string(readExample(t, env, "2048-yaml/2048_env.yaml")), "spec:\n  selector:", "spec:\n  replicas: 2\n  selector:", 1)
	manifests = manifests[:strings.Index(manifests, "---\napiVersion: networking.k8s.io/v1")]
	pipeline := func(stableFor string) []byte {
		extra := ""
		if stableFor != "" {
			extra = "        stableFor: " + stableFor + "\n"
		}
		return deployPipeline(env.Registry, ns, "", "60s", extra)
	}
	run := func() (string, int, time.Duration) {
		start := time.Now()
		out, code := slipway(t, "run", "--config", cfg, "--repo", repoName)
		return out, code, time.Since(start)
	}

	// 1. A healthy commit, default window (10s): it passes, after the window.
	repo.commit("healthy", map[string][]byte{".pipeline.yaml": pipeline(""), "2048_env.yaml": []byte(manifests)})
	out, code, _ := run()
	if code != 0 || !strings.Contains(out, "become healthy and stay so for 10s") {
		t.Fatalf("healthy commit: exit %d, want 0 after a 10s window:\n%s", code, out)
	}
	h := history(t, cfg, "jack-2048")
	if len(h) != 1 || h[0].Status != "succeeded" || h[0].Revision != "deploy-2048:healthy" || h[0].Duration < 10 {
		t.Fatalf("history after the healthy commit (duration must cover the 10s window) = %+v", h)
	}
	t.Logf("healthy commit: run took %.1fs with a 10s window", h[0].Duration)

	// 2. Pods that crash right after start: the window fails, naming the pod and the
	// container's failure, well within wait, and BUILD_ID 1's objects come back.
	crashing := crashAfterStart(manifests) + "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: only-in-the-crashing-revision\n"
	repo.commit("crash after start", map[string][]byte{"2048_env.yaml": []byte(crashing)})
	out, code, took := run()
	if code != 1 || !strings.Contains(out, "did not stay healthy for the 10s stability window") ||
		!strings.Contains(out, "Deployment/"+ns+"/jack-2048: pod jack-2048-") || !strings.Contains(out, "containerFailed: container failed (exit code 1)") ||
		!strings.Contains(out, "rolled back to BUILD_ID 1") {
		t.Fatalf("crashing commit: exit %d, want 1 naming the pod, its failure and the rollback:\n%s", code, out)
	}
	if took > 55*time.Second {
		t.Errorf("crashing commit took %s, want it well within its 60s wait", took)
	}
	dep, err := cs.AppsV1().Deployments(ns).Get(ctx, "jack-2048", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := dep.Spec.Template.Labels["pod-container-running-failed.stage.kwok.x-k8s.io"]; ok || !strings.HasSuffix(dep.Spec.Template.Spec.Containers[0].Image, ":alpha-1") {
		t.Errorf("after the rollback the Deployment is not BUILD_ID 1's: image %s labels %v", dep.Spec.Template.Spec.Containers[0].Image, dep.Spec.Template.Labels)
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "only-in-the-crashing-revision", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the object only the crashing revision added survived the rollback: %v", err)
	}
	h = history(t, cfg, "jack-2048")
	if len(h) != 2 || h[0].Status != "failed" || h[0].Revision != "deploy-2048:rolled_back" {
		t.Fatalf("history after the crashing commit = %+v", h)
	}
	t.Logf("crashing commit failed its window and was rolled back after %s:\n%s", took.Round(time.Millisecond), out)

	// 3. A crashing commit again: the rollback goes to BUILD_ID 1 again, never to the
	// revision that crashed after start.
	repo.commit("crash after start, again", map[string][]byte{"2048_env.yaml": []byte(crashAfterStart(manifests))})
	if out, code, _ := run(); code != 1 || !strings.Contains(out, "rolled back to BUILD_ID 1") {
		t.Fatalf("second crashing commit: exit %d, want a rollback to BUILD_ID 1:\n%s", code, out)
	}

	// 4. stableFor: 0, the same crashing manifests: the first healthy moment is accepted,
	// as before the window existed.
	repo.commit("no window", map[string][]byte{".pipeline.yaml": pipeline("0s")})
	out, code, _ = run()
	if code != 0 || strings.Contains(out, "stay so for") {
		t.Fatalf("stableFor 0: exit %d, want the crashing commit accepted at its first healthy moment:\n%s", code, out)
	}
	if h := history(t, cfg, "jack-2048"); len(h) != 4 || h[0].Status != "succeeded" || h[0].Revision != "deploy-2048:healthy" {
		t.Fatalf("history after stableFor 0 = %+v", h)
	}
}

// The chart variant: an upgrade whose pods crash right after start fails its window, Helm
// rolls the release back, and the failed release revision is marked failed in Helm.
func TestChartStabilityWindowRollsBack(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	repo, url := newWorkRepo(t, env)
	repoName := strings.TrimSuffix(url[strings.LastIndex(url, "/")+1:], ".git")
	cfg := chartConfig(t, env, repoName, url, "oci://"+env.Registry+"/e2e/"+ns)
	files := chartDirRepo(t, env)
	files[".pipeline.yaml"] = chartDirPipeline(ns, "60s", "")
	repo.commit("healthy install", files)
	if out, code := slipway(t, "run", "--config", cfg, "--repo", repoName); code != 0 || !strings.Contains(out, "stay so for 10s") {
		t.Fatalf("install: exit %d, want 0 after the window:\n%s", code, out)
	}
	repo.commit("crash after start", map[string][]byte{".pipeline.yaml": chartDirPipeline(ns, "60s", `          podLabels:
            pod-container-running-failed.stage.kwok.x-k8s.io: "true"
`)})
	start := time.Now()
	out, code := slipway(t, "run", "--config", cfg, "--repo", repoName)
	took := time.Since(start)
	if code == 0 || !strings.Contains(out, "did not stay healthy for the 10s stability window") ||
		!strings.Contains(out, "container failed (exit code 1)") || !strings.Contains(out, "rolled back to release revision 1") {
		t.Fatalf("crashing upgrade: exit %d, want a failure naming the pod's failure and the rollback:\n%s", code, out)
	}
	t.Logf("crashing upgrade failed its window and was rolled back after %s:\n%s", took.Round(time.Millisecond), out)
	if took > 55*time.Second {
		t.Errorf("crashing upgrade took %s, want it well within its 60s wait", took)
	}
	if got := historyString(helmHistory(t, cs, ns, "web")); !strings.HasPrefix(got, "1:superseded:") || !strings.Contains(got, " 2:failed:") || !strings.Contains(got, " 3:deployed:") {
		t.Errorf("helm history after the rollback: %s", got)
	}
	dep, err := cs.AppsV1().Deployments(ns).Get(context.Background(), "web-nginx", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := dep.Spec.Template.Labels["pod-container-running-failed.stage.kwok.x-k8s.io"]; ok {
		t.Errorf("after the rollback the Deployment keeps the crashing pods' label: %v", dep.Spec.Template.Labels)
	}
	h := history(t, cfg, "nginx-dir")
	if len(h) != 2 || h[0].Revision != "deploy-web:rolled_back" || h[1].Revision != "deploy-web:healthy" {
		t.Errorf("slipway history = %+v", h)
	}
}

// A workload that starts failing 30 s after a successful run (kwok's chaos stage with a
// delay, well after the 10 s window; kwok needs the jitter-delay too, or it takes its
// 1 s default jitter as the delay): the health watch of `slipway serve` records a health
// event on the current revision, marks it failed, and with healthWatch: rollback starts
// one rollback run to the previous healthy revision, then no more.
func TestHealthWatchRollsBackALateCrashOnce(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	addr := testenv.FreeAddress(t)
	repo, repoName, cfg := newProject(t, env)
	manifests := strings.Replace(string(readExample(t, env, "2048-yaml/2048_env.yaml")), "spec:\n  selector:", "spec:\n  replicas: 1\n  selector:", 1)
	manifests = manifests[:strings.Index(manifests, "---\napiVersion: networking.k8s.io/v1")]
	repo.commit("healthy", map[string][]byte{
		".pipeline.yaml": deployPipeline(env.Registry, ns, "", "60s", "        healthWatch: rollback\n"),
		"2048_env.yaml":  []byte(manifests),
	})
	d := startServe(t, cfg, "--metrics-address", addr)
	waitHistory(t, cfg, 60*time.Second, "run 1", func(h []historyEntry) bool { return len(h) == 1 && h[0].Status == "succeeded" })

	late := strings.Replace(crashAfterStart(manifests), "      labels:\n        application: jack-2048",
		"      annotations:\n        pod-container-running-failed.stage.kwok.x-k8s.io/delay: 30s\n        pod-container-running-failed.stage.kwok.x-k8s.io/jitter-delay: 31s\n"+
			"      labels:\n        application: jack-2048", 1)
	repo.commit("crashes 30s after start", map[string][]byte{"2048_env.yaml": []byte(late)})
	waitHistory(t, cfg, 60*time.Second, "run 2 passing its window", func(h []historyEntry) bool {
		return len(h) == 2 && h[0].Status == "succeeded" && h[0].Revision == "deploy-2048:healthy"
	})
	deployed := time.Now()
	st := openDaemonStore(t, cfg)
	e := waitEvent(t, st, 60*time.Second, "unhealthy on BUILD_ID 2", func(e store.DriftEvent) bool {
		return e.Action == store.HealthUnhealthy && e.BuildID == 2
	})
	t.Logf("health event %s after run 2 ended: %s %s", e.DetectedAt.Sub(deployed).Round(time.Millisecond), e.Object.Name, e.Error)
	if e.Object.Kind != "Deployment" || e.Object.Name != "jack-2048" || !strings.Contains(e.Error, "containerFailed: container failed (exit code 1)") ||
		!strings.Contains(e.Error, "rollback run BUILD_ID 3 to BUILD_ID 1 started") {
		t.Errorf("health event %+v: want the Deployment, the pod's reason and the rollback run", e)
	}
	if m := scrape(t, addr); !strings.Contains(m, `slipway_unhealthy_objects{pipeline="jack-2048",repository="`+repoName+`"} 1`) {
		t.Errorf("metrics lack slipway_unhealthy_objects 1 while BUILD_ID 2 is current:\n%s", m)
	}
	h := waitHistory(t, cfg, 60*time.Second, "the rollback run", func(h []historyEntry) bool {
		return len(h) == 3 && h[0].Trigger == "rollback" && h[0].Parent == 1 && h[0].Status == "succeeded"
	})
	if h[1].Revision != "deploy-2048:failed" {
		t.Errorf("BUILD_ID 2's revision is %s, want failed (never a rollback target)", h[1].Revision)
	}
	dep, err := cs.AppsV1().Deployments(ns).Get(context.Background(), "jack-2048", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := dep.Spec.Template.Labels["pod-container-running-failed.stage.kwok.x-k8s.io"]; ok {
		t.Errorf("after the rollback the Deployment keeps the crashing pods' label")
	}
	out, code := slipway(t, "drift", "--config", cfg, "--events", "jack-2048")
	if code != 0 || !strings.Contains(out, "unhealthy") || !strings.Contains(out, "containerFailed") {
		t.Errorf("slipway drift --events: exit %d, want the unhealthy event:\n%s", code, out)
	}

	// Then no more: BUILD_ID 2's pods of the crashing ReplicaSet are gone, the rolled-back
	// objects stay healthy, and no second rollback starts (a 40 s look: longer than the
	// chaos delay, so a second crash would have shown).
	time.Sleep(40 * time.Second)
	if h := history(t, cfg, "jack-2048"); len(h) != 3 {
		t.Fatalf("after the rollback more runs started: %+v", h)
	}
	var unhealthy int
	for _, e := range driftEvents(t, st) {
		if e.Action == store.HealthUnhealthy {
			unhealthy++
		}
	}
	if unhealthy != 1 {
		t.Errorf("%d unhealthy events, want 1", unhealthy)
	}
	if m := scrape(t, addr); !strings.Contains(m, `slipway_unhealthy_objects{pipeline="jack-2048",repository="`+repoName+`"} 0`) {
		t.Errorf("metrics after the rollback: want slipway_unhealthy_objects 0:\n%s", m)
	}
	d.stop(t)
}
