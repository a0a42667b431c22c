package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/test/testenv"
)

// slowlyHealthy makes the 2048 Deployment take several seconds to become available, so a
// run spends that long in its health wait.
func slowlyHealthy(manifests []byte) []byte {
	return []byte(strings.Replace(string(manifests), "spec:\n  selector:", "spec:\n  minReadySeconds: 6\n  selector:", 1))
}

// runWindow is when a run ran, from its history row.
func runWindow(t *testing.T, h historyEntry) (start, end time.Time) {
	t.Helper()
	start, err := time.Parse(time.RFC3339Nano, h.Started)
	if err != nil {
		t.Fatalf("run %d started_at %q: %v", h.BuildID, h.Started, err)
	}
	return start, start.Add(time.Duration(h.Duration * float64(time.Second)))
}

// `slipway run` beside a daemon running the same pipeline waits for the daemon's run to end
// instead of running the pipeline a second time at once (a claim in the store).
func TestRunBesideServeWaitsForThePipeline(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	repo, repoName, cfg := newProject(t, env)
	manifests := slowlyHealthy(readExample(t, env, "2048-yaml/2048_env.yaml"))
	repo.commit("first", map[string][]byte{".pipeline.yaml": deployOnlyPipeline(env.Registry, ns), "2048_env.yaml": manifests})

	startServe(t, cfg)
	waitHistory(t, cfg, 60*time.Second, "the daemon's run 1 running", func(h []historyEntry) bool {
		return len(h) == 1 && h[0].Status == "running"
	})
	cmd := exec.Command(slipwayBinary(t), "run", "--config", cfg, "--repo", repoName)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("slipway run: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "is running BUILD_ID 1 in slipway serve") {
		t.Errorf("slipway run did not say what it waited for:\n%s", out)
	}
	h := history(t, cfg, "jack-2048")
	if len(h) != 2 || h[0].Status != "succeeded" || h[1].Status != "succeeded" || h[0].Trigger != "manual" {
		t.Fatalf("history = %+v, want the daemon's run and then the CLI's, both succeeded", h)
	}
	_, daemonEnd := runWindow(t, h[1])
	cliStart, _ := runWindow(t, h[0])
	if cliStart.Before(daemonEnd) {
		t.Errorf("the CLI's run started at %s, before the daemon's ended at %s: the pipeline ran twice at once", cliStart, daemonEnd)
	}
}

// A stage behind a pull-request approval never starts, whatever else the run does, when
// the repository has no forge to read the reviews from: the run fails before the stage,
// saying so, and nothing of the stage is applied.
func TestStageBehindPullRequestApprovalNeverStarts(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	repo, repoName, cfg := newProject(t, env)
	configMap := func(name string) []byte {
		return []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\ndata:\n  build: \"${BUILD_ID}\"\n")
	}
	repo.commit("gated", map[string][]byte{
		"staging/cm.yaml":    configMap("staging-config"),
		"production/cm.yaml": configMap("production-config"),
		".pipeline.yaml": []byte(`name: gated
stages:
  - name: staging
    tasks:
      - {name: deploy-staging, type: deploy-yaml, path: staging, cluster: e2e, namespace: ` + ns + `}
  - name: production
    approval:
      pullRequest: {approvals: 1}
    tasks:
      - {name: deploy-production, type: deploy-yaml, path: production, cluster: e2e, namespace: ` + ns + `}
`)})
	out, code := slipway(t, "run", "--config", cfg, "--repo", repoName)
	if code == 0 || !strings.Contains(out, "stage production: repository "+repoName+" has no forge configured in slipway.yaml: pull-request approval cannot be checked") {
		t.Fatalf("exit %d, want a run that fails at the gate:\n%s", code, out)
	}
	ctx := context.Background()
	if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "staging-config", metav1.GetOptions{}); err != nil {
		t.Errorf("the ungated stage ran: %v", err)
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "production-config", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the gated stage deployed: %v", err)
	}
	logs, code := slipway(t, "logs", "--config", cfg, "gated", "1")
	if code != 0 || !strings.Contains(logs, "== production/deploy-production [deploy-yaml] skipped") ||
		!strings.Contains(logs, "== staging/deploy-staging [deploy-yaml] succeeded") {
		t.Errorf("the gated task is not recorded skipped:\n%s", logs)
	}
}

// A newer commit supersedes a chart deploy that only waits for its release to become
// healthy, as it does a YAML deploy's.
func TestChartHealthWaitIsSupersededByANewerCommit(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	repo, _, cfg := newChartProject(t, env, ns)
	files := chartDirRepo(t, env)
	files[".pipeline.yaml"] = chartDirPipeline(ns, "90s", "")
	repo.commit("healthy", files)
	d := startServe(t, cfg)
	waitPipelineHistory(t, cfg, "nginx-dir", 90*time.Second, "run 1", func(h []historyEntry) bool {
		return len(h) == 1 && h[0].Status == "succeeded"
	})

	repo.commit("never healthy", map[string][]byte{".pipeline.yaml": chartDirPipeline(ns, "90s", `          podLabels:
            pod-container-running-failed.stage.kwok.x-k8s.io: "true"
          minReadySeconds: 10
`)})
	waitPipelineHistory(t, cfg, "nginx-dir", 60*time.Second, "run 2 running", func(h []historyEntry) bool {
		return len(h) == 2 && h[0].Status == "running"
	})
	d.waitOutput(t, 60*time.Second, "waiting up to 1m30s for the release's 4 objects to become healthy and stay so for 10s\" build_id=2")
	newest := repo.commit("healthy again", map[string][]byte{".pipeline.yaml": chartDirPipeline(ns, "90s", `          replicaCount: 2
`)})
	pushed := time.Now()
	waitPipelineHistory(t, cfg, "nginx-dir", 30*time.Second, "run 2 superseded", func(h []historyEntry) bool {
		return len(h) >= 3 && h[len(h)-2].Status == "superseded"
	})
	t.Logf("the chart deploy's health wait was superseded %s after the newer commit was pushed (poll 1s)",
		time.Since(pushed).Round(100*time.Millisecond))
	h := waitPipelineHistory(t, cfg, "nginx-dir", 90*time.Second, "run 3 succeeded", func(h []historyEntry) bool {
		return len(h) == 3 && h[0].Status == "succeeded"
	})
	if h[0].Commit != newest || !strings.Contains(h[1].Reason, "superseded by BUILD_ID 3") {
		t.Errorf("history = %+v", h)
	}
}
