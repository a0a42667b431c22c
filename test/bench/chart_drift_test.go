package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

	bin := buildSlipwayTo(ctx, t, env, tmp)

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
	repoName, url := pushWork(ctx, t, env, work, "a chart of ConfigMaps")
	cfgPath := writeDriftConfig(t, tmp, env, repoName, url)

	serve := startDriftServe(t, bin, cfgPath, tmp)
	defer serve.stop()
	addr, fail := serve.addr, serve.fail

	// serve creates the fresh store first: a CLI opening it at the same moment can make
	// serve's own open fail with SQLITE_BUSY while it switches the database to WAL.
	deployWall := serve.waitDeployed(ctx, chartDriftPipeline, time.Second)
	time.Sleep(5 * time.Second) // the watcher learns the revision when the task ends
	before := scrapeMetrics(t, addr)
	if v := before["slipway_drift_events_total"]; v != 0 {
		fail("%v drift events before any edit", v)
	}

	var lat []time.Duration
	events := before["slipway_drift_events_total"]
	cpu0, _ := procCPU(serve.pid())
	for i := 0; i < chartDriftEdits; i++ {
		name := fmt.Sprintf("cm-%03d", i*chartDriftObjects/chartDriftEdits)
		var d time.Duration
		d, events = serve.driftEdit(ctx, cs, ns, name, i, events)
		lat = append(lat, d)
	}
	cpu1, _ := procCPU(serve.pid())
	after := scrapeMetrics(t, addr)
	requests := after["slipway_kube_requests_total"] - before["slipway_kube_requests_total"]
	rss, hwm, err := procMemory(serve.pid())
	if err != nil {
		t.Fatal(err)
	}
	if got := events - before["slipway_drift_events_total"]; got != chartDriftEdits {
		fail("%v drift events after %d edits", got, chartDriftEdits)
	}
	p50, p95, pmax, verdict := latencyStats(lat)
	var b strings.Builder
	fmt.Fprintf(&b, "\nslipway serve watching a Helm release of %d ConfigMaps (deploy-chart, drift: report), local control plane; deploy took %.1f s\n\n",
		chartDriftObjects, deployWall.Seconds())
	b.WriteString("| measure | value |\n|---|---:|\n")
	writeLatencyRows(&b, p50, p95, pmax)
	fmt.Fprintf(&b, "| serve's API requests per edit | %.1f (%s) |\n", requests/chartDriftEdits, describeFloat(diffByVerb(before, after)))
	fmt.Fprintf(&b, "| serve's CPU over the %d edits | %.2f s |\n", chartDriftEdits, cpu1-cpu0)
	fmt.Fprintf(&b, "| RSS after the edits (VmRSS) / peak (VmHWM) | %d MiB / %d MiB |\n", rss/1024, hwm/1024)
	writeLatencyTarget(&b, p95, verdict)
	t.Log(b.String())
	fmt.Println(b.String())
	if p95 > driftTargetP95 {
		t.Errorf("drift latency p95 %s exceeds the target %s", p95, driftTargetP95)
	}
}
