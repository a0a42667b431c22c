package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/test/testenv"
)

// apiDaemon is a `slipway serve` whose HTTP API listens on a known loopback port.
type apiDaemon struct {
	*daemonProc
	server    string // http://127.0.0.1:PORT
	tokenFile string
}

// withAPI gives the configuration a fixed loopback port and an API token file.
func withAPI(t *testing.T, cfg string) (server, tokenFile string) {
	t.Helper()
	addr := testenv.FreeAddress(t)
	token := make([]byte, 16)
	_, _ = rand.Read(token)
	tokenFile = filepath.Join(filepath.Dir(cfg), "api-token")
	if err := os.WriteFile(tokenFile, []byte(hex.EncodeToString(token)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), "listen: 127.0.0.1:0", "listen: "+addr+"\napiTokenFile: api-token", 1)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr, tokenFile
}

// startAPIServe starts `slipway serve` and waits until its HTTP API answers.
func startAPIServe(t *testing.T, cfg, server, tokenFile string, flags ...string) *apiDaemon {
	t.Helper()
	d := &apiDaemon{daemonProc: startServe(t, cfg, flags...), server: server, tokenFile: tokenFile}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(server + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon's HTTP API did not answer at %s:\n%s", server, d.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ctl runs a control verb against the daemon.
func (d *apiDaemon) ctl(t *testing.T, args ...string) (string, int) {
	t.Helper()
	return slipway(t, append(args, "--server", d.server, "--token-file", d.tokenFile)...)
}

// TestControlTriggerRerunAndCancelHealthWait drives the daemon through its API: a manual
// run of the head and of an older commit, a re-run with its parent recorded, a wrong token
// refused, and a cancel during a health wait that applies nothing afterwards.
func TestControlTriggerRerunAndCancelHealthWait(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	repo, _, cfg := newProject(t, env)
	server, tokenFile := withAPI(t, cfg)
	manifests := readExample(t, env, "2048-yaml/2048_env.yaml")
	first := repo.commit("first", map[string][]byte{".pipeline.yaml": deployOnlyPipeline(env.Registry, ns), "2048_env.yaml": manifests})
	d := startAPIServe(t, cfg, server, tokenFile)
	waitHistory(t, cfg, 60*time.Second, "run 1 of the first commit", func(h []historyEntry) bool {
		return len(h) == 1 && h[0].Status == "succeeded"
	})

	out, code := d.ctl(t, "trigger", "jack-2048", "--wait")
	if code != 0 || !strings.Contains(out, "#2 succeeded (trigger manual") {
		t.Fatalf("slipway trigger --wait: exit %d\n%s", code, out)
	}
	out, code = d.ctl(t, "rerun", "jack-2048", "1", "--wait")
	if code != 0 || !strings.Contains(out, "#3 succeeded (trigger manual") || !strings.Contains(out, "parent #1") {
		t.Fatalf("slipway rerun 1 --wait: exit %d\n%s", code, out)
	}
	second := repo.commit("second", map[string][]byte{"2048_env.yaml": []byte(strings.Replace(string(manifests), "spec:\n  selector:", "spec:\n  replicas: 2\n  selector:", 1))})
	waitHistory(t, cfg, 60*time.Second, "run 4 of the second commit", func(h []historyEntry) bool {
		return len(h) == 4 && h[0].Commit == second && h[0].Status == "succeeded"
	})
	out, code = d.ctl(t, "trigger", "jack-2048", "--commit", first, "-o", "json")
	if code != 0 || !strings.Contains(out, `"buildId":5`) || !strings.Contains(out, first) {
		t.Fatalf("slipway trigger --commit: exit %d\n%s", code, out)
	}
	h := waitHistory(t, cfg, 60*time.Second, "run 5 of the first commit", func(h []historyEntry) bool {
		return len(h) == 5 && h[0].Status == "succeeded"
	})
	if h[0].Commit != first || h[2].Parent != 1 || h[2].Trigger != "manual" {
		t.Fatalf("history after trigger --commit and rerun: %+v", h)
	}

	// A wrong token is refused and starts nothing; so is an unknown pipeline.
	out, code = slipway(t, "trigger", "jack-2048", "--server", server, "--token", "not-the-token")
	if code == 0 || !strings.Contains(out, "401") {
		t.Fatalf("a wrong token: exit %d\n%s", code, out)
	}
	out, code = d.ctl(t, "trigger", "no-such-pipeline")
	if code == 0 || !strings.Contains(out, "no such pipeline") {
		t.Fatalf("an unknown pipeline: exit %d\n%s", code, out)
	}
	if h := history(t, cfg, "jack-2048"); len(h) != 5 {
		t.Fatalf("refused requests started runs: %+v", h)
	}

	// Cancel during the health wait of a deploy that never gets ready: the run ends
	// cancelled within seconds, and nothing is applied afterwards (no automatic rollback).
	slow := neverReady(manifests)
	repo.commit("never ready", map[string][]byte{"2048_env.yaml": []byte(slow)})
	waitHistory(t, cfg, 30*time.Second, "run 6 running", func(h []historyEntry) bool { return len(h) == 6 && h[0].Status == "running" })
	time.Sleep(3 * time.Second) // applied, now in its 30s health wait
	gen := deploymentGeneration(t, env, ns)
	asked := time.Now()
	out, code = d.ctl(t, "cancel", "jack-2048", "6")
	if code != 0 || !strings.Contains(out, "#6 cancelled") {
		t.Fatalf("slipway cancel 6: exit %d\n%s", code, out)
	}
	t.Logf("run 6 cancelled %s after the request, in its health wait", time.Since(asked).Round(10*time.Millisecond))
	time.Sleep(3 * time.Second)
	if got := deploymentGeneration(t, env, ns); got != gen {
		t.Fatalf("the Deployment changed after the cancel (generation %d → %d): something was applied", gen, got)
	}
	h = history(t, cfg, "jack-2048")
	if h[0].Status != "cancelled" || h[0].Reason != "cancelled by request of api-token" {
		t.Fatalf("run 6: %+v", h[0])
	}
	out, code = d.ctl(t, "cancel", "jack-2048", "6")
	if code == 0 || !strings.Contains(out, "neither queued nor running") {
		t.Fatalf("cancelling an ended run: exit %d\n%s", code, out)
	}
	d.stop(t)
}

func deploymentGeneration(t *testing.T, env *testenv.Env, ns string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dep, err := env.Clientset(t).AppsV1().Deployments(ns).Get(ctx, "jack-2048", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return dep.Generation
}

// TestControlCancelMidBuild cancels a run while BuildKit runs a long RUN step: the run ends
// cancelled, the deploy after the build never starts and nothing reaches the cluster.
func TestControlCancelMidBuild(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	repo, _, cfg := newProject(t, env)
	server, tokenFile := withAPI(t, cfg)
	appendConfig(t, cfg, fmt.Sprintf("builder: {type: buildkit, address: %q}\n", env.BuildkitHost))
	repo.commit("slow build", map[string][]byte{
		".pipeline.yaml": []byte(`name: jack-2048
stages:
  - name: build
    tasks:
      - name: image
        type: build-image
        workspace: e2e
        image: slow
        tag: "${BUILD_ID}"
  - name: deploy
    tasks:
      - name: deploy
        type: deploy-yaml
        path: app.yaml
        cluster: e2e
        namespace: ` + ns + `
`),
		"Dockerfile": []byte("FROM " + env.BaseImage + "\nRUN sleep 120\n"),
		"app.yaml":   []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: built}\ndata: {a: b}\n"),
	})
	d := startAPIServe(t, cfg, server, tokenFile)
	waitHistory(t, cfg, 60*time.Second, "run 1 running", func(h []historyEntry) bool { return len(h) == 1 && h[0].Status == "running" })
	time.Sleep(3 * time.Second) // into the RUN step
	asked := time.Now()
	out, code := d.ctl(t, "cancel", "jack-2048", "1")
	if code != 0 || !strings.Contains(out, "#1 cancelled") {
		t.Fatalf("slipway cancel 1: exit %d\n%s\n%s", code, out, d.output())
	}
	t.Logf("run 1 cancelled %s after the request, mid-build", time.Since(asked).Round(10*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := env.Clientset(t).CoreV1().ConfigMaps(ns).Get(ctx, "built", metav1.GetOptions{}); err == nil {
		t.Fatal("the deploy after the cancelled build applied its ConfigMap")
	}
	// The build was in its RUN step when cancelled (BuildKit's progress is in the log).
	if out, _ = slipway(t, "logs", "--config", cfg, "jack-2048", "1"); !strings.Contains(out, "RUN sleep 120") {
		t.Fatalf("the run log shows no RUN step under way:\n%s", out)
	}
	d.stop(t)
}

// TestPipelineTimeoutEndsTimedOut: a pipeline timeout of 5s over a deploy whose health wait
// would take 60s ends the run timed_out after about 5s; a task timeout does the same.
func TestPipelineTimeoutEndsTimedOut(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	repo, repoName, cfg := newProject(t, env)
	manifests := readExample(t, env, "2048-yaml/2048_env.yaml")
	slow := neverReady(manifests)
	for i, c := range []struct {
		name           string
		pipeline, task string
		reason         string
	}{
		{"pipeline timeout", "timeout: 5s\n", "", "pipeline timeout of 5s exceeded"},
		{"task timeout", "", "        timeout: 4s\n", "task timeout of 4s exceeded"},
	} {
		repo.commit(c.name, map[string][]byte{".pipeline.yaml": deployPipeline(env.Registry, ns, c.pipeline, "60s", c.task), "2048_env.yaml": []byte(slow)})
		start := time.Now()
		out, code := slipway(t, "run", "--config", cfg, "--repo", repoName)
		took := time.Since(start)
		h := history(t, cfg, "jack-2048")
		if code == 0 || len(h) != i+1 || h[0].Status != "timed_out" || !strings.Contains(h[0].Reason, c.reason) {
			t.Fatalf("%s: exit %d after %s, history %+v\n%s", c.name, code, took, h, out)
		}
		limit := map[string]float64{"pipeline timeout": 5, "task timeout": 4}[c.name]
		if h[0].Duration < limit || h[0].Duration > limit+5 {
			t.Fatalf("%s: the run lasted %.1fs; want the %.0fs timeout, not the 60s health wait", c.name, h[0].Duration, limit)
		}
		t.Logf("%s: run ended timed_out after %.1fs (started → finished; slipway run took %s in all)", c.name, h[0].Duration, took.Round(100*time.Millisecond))
	}
}

// neverReady makes the 2048 Deployment one whose pods kwok keeps failing and that would
// need five minutes of readiness besides: its health wait can only end by timing out.
func neverReady(manifests []byte) string {
	slow := strings.Replace(string(manifests), "      labels:\n        application: jack-2048",
		"      labels:\n        application: jack-2048\n        pod-container-running-failed.stage.kwok.x-k8s.io: \"true\"", 1)
	return strings.Replace(slow, "spec:\n  selector:", "spec:\n  minReadySeconds: 300\n  selector:", 1)
}

func appendConfig(t *testing.T, cfg, text string) {
	t.Helper()
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}
