package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/slipwayhq/slipway/test/testenv"
)

// Shape of the chart drift benchmark: one Helm release of chartDriftObjects ConfigMaps,
// watched by one `slipway serve` in report mode.
const (
	chartDriftObjects  = 200
	chartDriftEdits    = 100
	chartDriftPipeline = "bench-chart-drift"
)

// TestBenchChartDrift measures drift detection of a chart release's objects: the latency
// from an out-of-band PATCH of one of the release's ConfigMaps returning to
// slipway_drift_events_total counting it, over 100 edits, and the API requests per edit.
func TestBenchChartDrift(t *testing.T) {
	env := testenv.Get(t)
	cs := env.Clientset(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	tmp := t.TempDir()
	ns := env.Namespace(t)

	bin := filepath.Join(tmp, "slipway")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/slipway")
	build.Dir = env.Root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/slipway: %v\n%s", err, out)
	}

	// A chart rendering the ConfigMaps from one template, and a pipeline deploying it from
	// the checkout, pushed to a repository on the Git server.
	work := filepath.Join(tmp, "work")
	files := map[string]string{
		"chart/Chart.yaml":  "apiVersion: v2\nname: configmaps\nversion: 1.0.0\n",
		"chart/values.yaml": fmt.Sprintf("count: %d\n", chartDriftObjects),
		"chart/templates/configmaps.yaml": `{{- range $i := until (int .Values.count) }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cm-{{ printf "%03d" $i }}
data:
  GREETING: "hello from cm-{{ $i }}"
{{- end }}
`,
		".pipeline.yaml": fmt.Sprintf(`name: %s
stages:
  - name: deploy
    tasks:
      - name: configmaps
        type: deploy-chart
        release: configmaps
        chartDir: chart
        cluster: bench
        namespace: %s
        wait: 120s
        drift: report
`, chartDriftPipeline, ns),
	}
	for name, body := range files {
		p := filepath.Join(work, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repoName, url := env.Repo(t)
	push := strings.Replace(url, "http://", "http://"+env.GitUser+":"+env.GitPassword+"@", 1)
	for _, args := range [][]string{{"init", "-q", "--initial-branch=master", "."}, {"add", "-A"},
		{"commit", "-q", "-m", "a chart of ConfigMaps"}, {"push", "-q", push, "master"}} {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@example.com",
			"GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@example.com", "GIT_TERMINAL_PROMPT=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", args[0], err, out)
		}
	}
	cfgPath := writeDriftConfig(t, tmp, env, repoName, url)

	addr := freeAddr(t)
	logPath := filepath.Join(tmp, "serve.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	serve := exec.Command(bin, "serve", "--config", cfgPath, "--metrics-address", addr)
	serve.Stdout, serve.Stderr = logFile, logFile
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serve.Wait() }()
	defer func() {
		_ = serve.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("slipway serve exited with %v (log %s)", err, logPath)
			}
		case <-time.After(30 * time.Second):
			_ = serve.Process.Kill()
			t.Errorf("slipway serve did not stop within 30s of SIGTERM (log %s)", logPath)
		}
	}()
	fail := func(format string, args ...any) {
		t.Helper()
		log, _ := os.ReadFile(logPath)
		if len(log) > 8000 {
			log = log[len(log)-8000:]
		}
		t.Fatalf(format+"\nslipway serve's log (tail):\n%s", append(args, log)...)
	}

	deployStart := time.Now()
	// serve creates the fresh store first: a CLI opening it at the same moment can make
	// serve's own open fail with SQLITE_BUSY while it switches the database to WAL.
	time.Sleep(time.Second)
	for {
		out, err := exec.CommandContext(ctx, bin, "history", "--config", cfgPath, chartDriftPipeline, "-o", "json").Output()
		var h []struct {
			Status string `json:"status"`
		}
		if err == nil && json.Unmarshal(out, &h) == nil && len(h) == 1 && h[0].Status == "succeeded" {
			break
		}
		if err == nil && len(h) == 1 && h[0].Status == "failed" {
			fail("the deploy failed: %s", out)
		}
		if time.Since(deployStart) > 5*time.Minute {
			fail("no successful deploy within 5 minutes: %s %v", out, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	deployWall := time.Since(deployStart)
	time.Sleep(5 * time.Second) // the watcher learns the revision when the task ends
	before := scrapeMetrics(t, addr)
	if v := before["slipway_drift_events_total"]; v != 0 {
		fail("%v drift events before any edit", v)
	}

	var lat []time.Duration
	events := before["slipway_drift_events_total"]
	cpu0, _ := procCPU(serve.Process.Pid)
	for i := 0; i < chartDriftEdits; i++ {
		name := fmt.Sprintf("cm-%03d", i*chartDriftObjects/chartDriftEdits)
		patch := fmt.Sprintf(`{"data":{"GREETING":"edited out of band %d"}}`, i)
		if _, err := cs.CoreV1().ConfigMaps(ns).Patch(ctx, name, types.MergePatchType, []byte(patch),
			metav1.PatchOptions{FieldManager: "bench-kubectl"}); err != nil {
			t.Fatalf("patch %s/%s: %v", ns, name, err)
		}
		start := time.Now()
		for {
			m := scrapeMetrics(t, addr)
			if m["slipway_drift_events_total"] > events {
				lat = append(lat, time.Since(start))
				events = m["slipway_drift_events_total"]
				break
			}
			if time.Since(start) > 30*time.Second {
				fail("edit %d (%s/%s): no drift event within 30s", i, ns, name)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	cpu1, _ := procCPU(serve.Process.Pid)
	after := scrapeMetrics(t, addr)
	requests := after["slipway_kube_requests_total"] - before["slipway_kube_requests_total"]
	rss, hwm, err := procMemory(serve.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if got := events - before["slipway_drift_events_total"]; got != chartDriftEdits {
		fail("%v drift events after %d edits", got, chartDriftEdits)
	}
	sorted := append([]time.Duration(nil), lat...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	p50, p95, pmax := percentile(sorted, 50), percentile(sorted, 95), sorted[len(sorted)-1]
	verdict := "met"
	if p95 > driftTargetP95 {
		verdict = "MISSED"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nslipway serve watching a Helm release of %d ConfigMaps (deploy-chart, drift: report), local control plane; deploy took %.1f s\n\n",
		chartDriftObjects, deployWall.Seconds())
	b.WriteString("| measure | value |\n|---|---:|\n")
	fmt.Fprintf(&b, "| drift latency, PATCH returned → event counted, p50 | %d ms |\n", p50.Milliseconds())
	fmt.Fprintf(&b, "| drift latency p95 | %d ms |\n", p95.Milliseconds())
	fmt.Fprintf(&b, "| drift latency max | %d ms |\n", pmax.Milliseconds())
	fmt.Fprintf(&b, "| serve's API requests per edit | %.1f (%s) |\n", requests/chartDriftEdits, describeFloat(diffByVerb(before, after)))
	fmt.Fprintf(&b, "| serve's CPU over the %d edits | %.2f s |\n", chartDriftEdits, cpu1-cpu0)
	fmt.Fprintf(&b, "| RSS after the edits (VmRSS) / peak (VmHWM) | %d MiB / %d MiB |\n", rss/1024, hwm/1024)
	fmt.Fprintf(&b, "\n| target | measured | verdict |\n|---|---:|---|\n| drift latency p95 ≤ %s | %d ms | %s |\n",
		driftTargetP95, p95.Milliseconds(), verdict)
	t.Log(b.String())
	fmt.Println(b.String())
	if p95 > driftTargetP95 {
		t.Errorf("drift latency p95 %s exceeds the target %s", p95, driftTargetP95)
	}
}
