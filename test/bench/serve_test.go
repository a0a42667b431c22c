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
	"k8s.io/client-go/kubernetes"

	"github.com/slipwayhq/slipway/test/testenv"
)

// This file holds what the drift benchmarks share: building slipway, pushing a work tree
// to the Git server, running `slipway serve` with its metrics on a free port, waiting for
// the first deploy, and timing one out-of-band edit to its drift event.

// buildSlipwayTo builds ./cmd/slipway into dir and returns the binary's path.
func buildSlipwayTo(ctx context.Context, t *testing.T, env *testenv.Env, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "slipway")
	// Built as `make build` builds what ships (no cgo): memory figures are the shipped binary's.
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./cmd/slipway")
	build.Dir = env.Root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/slipway: %v\n%s", err, out)
	}
	return bin
}

// pushWork commits the work tree as one commit on master and pushes it to a new
// repository on the Git server.
func pushWork(ctx context.Context, t *testing.T, env *testenv.Env, work, message string) (repoName, url string) {
	t.Helper()
	repoName, url = env.Repo(t)
	push := strings.Replace(url, "http://", "http://"+env.GitUser+":"+env.GitPassword+"@", 1)
	for _, args := range [][]string{{"init", "-q", "--initial-branch=master", "."}, {"add", "-A"},
		{"commit", "-q", "-m", message}, {"push", "-q", push, "master"}} {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@example.com",
			"GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@example.com", "GIT_TERMINAL_PROMPT=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", args[0], err, out)
		}
	}
	return repoName, url
}

// driftServe is a `slipway serve` child, its log in a file and its metrics on addr.
type driftServe struct {
	t       *testing.T
	bin     string
	cfgPath string
	addr    string
	logPath string
	logFile *os.File
	cmd     *exec.Cmd
	done    chan error
}

// startDriftServe starts `slipway serve --config cfgPath` with its metrics on a free port,
// logging to dir/serve.log. The caller defers stop.
func startDriftServe(t *testing.T, bin, cfgPath, dir string) *driftServe {
	t.Helper()
	s := &driftServe{t: t, bin: bin, cfgPath: cfgPath, addr: testenv.FreeAddress(t), logPath: filepath.Join(dir, "serve.log")}
	logFile, err := os.Create(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	s.logFile = logFile
	s.cmd = exec.Command(bin, "serve", "--config", cfgPath, "--metrics-address", s.addr)
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		logFile.Close()
		t.Fatal(err)
	}
	s.done = make(chan error, 1)
	go func() { s.done <- s.cmd.Wait() }()
	return s
}

// pid is the serve process's id.
func (s *driftServe) pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM and waits up to 30s for serve to exit, then closes its log.
func (s *driftServe) stop() {
	defer s.logFile.Close()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("slipway serve exited with %v (log %s)", err, s.logPath)
		}
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		s.t.Errorf("slipway serve did not stop within 30s of SIGTERM (log %s)", s.logPath)
	}
}

// fail ends the test with the tail of serve's log.
func (s *driftServe) fail(format string, args ...any) {
	s.t.Helper()
	log, _ := os.ReadFile(s.logPath)
	if len(log) > 8000 {
		log = log[len(log)-8000:]
	}
	s.t.Fatalf(format+"\nslipway serve's log (tail):\n%s", append(args, log)...)
}

// waitDeployed waits, after settle, for the pipeline's one run to succeed, asking
// `slipway history`, and returns how long that took, settle included.
func (s *driftServe) waitDeployed(ctx context.Context, pipeline string, settle time.Duration) time.Duration {
	s.t.Helper()
	start := time.Now()
	time.Sleep(settle)
	for {
		out, err := exec.CommandContext(ctx, s.bin, "history", "--config", s.cfgPath, pipeline, "-o", "json").Output()
		var h []struct {
			Status string `json:"status"`
		}
		if err == nil && json.Unmarshal(out, &h) == nil && len(h) == 1 && h[0].Status == "succeeded" {
			break
		}
		if err == nil && len(h) == 1 && h[0].Status == "failed" {
			s.fail("the deploy failed: %s", out)
		}
		if time.Since(start) > 5*time.Minute {
			s.fail("no successful deploy within 5 minutes: %s %v", out, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	return time.Since(start)
}

// driftEdit is edit i: it patches ConfigMap ns/name out of band and waits for serve's
// slipway_drift_events_total to pass events. It returns the latency from the PATCH
// returning and the new count.
func (s *driftServe) driftEdit(ctx context.Context, cs kubernetes.Interface, ns, name string, i int, events float64) (time.Duration, float64) {
	s.t.Helper()
	patch := fmt.Sprintf(`{"data":{"GREETING":"edited out of band %d"}}`, i)
	if _, err := cs.CoreV1().ConfigMaps(ns).Patch(ctx, name, types.MergePatchType, []byte(patch),
		metav1.PatchOptions{FieldManager: "bench-kubectl"}); err != nil {
		s.t.Fatalf("patch %s/%s: %v", ns, name, err)
	}
	start := time.Now()
	for {
		m := scrapeMetrics(s.t, s.addr)
		if m["slipway_drift_events_total"] > events {
			return time.Since(start), m["slipway_drift_events_total"]
		}
		if time.Since(start) > 30*time.Second {
			s.fail("edit %d (%s/%s): no drift event within 30s", i, ns, name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// latencyStats is the p50, p95 and maximum of the latencies, and whether p95 met
// driftTargetP95 ("met" or "MISSED").
func latencyStats(lat []time.Duration) (p50, p95, pmax time.Duration, verdict string) {
	sorted := append([]time.Duration(nil), lat...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	p50, p95, pmax = percentile(sorted, 50), percentile(sorted, 95), sorted[len(sorted)-1]
	verdict = "met"
	if p95 > driftTargetP95 {
		verdict = "MISSED"
	}
	return p50, p95, pmax, verdict
}

// writeLatencyRows writes the drift latency rows of a benchmark's measure table.
func writeLatencyRows(b *strings.Builder, p50, p95, pmax time.Duration) {
	fmt.Fprintf(b, "| drift latency, PATCH returned → event counted, p50 | %d ms |\n", p50.Milliseconds())
	fmt.Fprintf(b, "| drift latency p95 | %d ms |\n", p95.Milliseconds())
	fmt.Fprintf(b, "| drift latency max | %d ms |\n", pmax.Milliseconds())
}

// writeLatencyTarget writes the table of the p95 target and its verdict.
func writeLatencyTarget(b *strings.Builder, p95 time.Duration, verdict string) {
	fmt.Fprintf(b, "\n| target | measured | verdict |\n|---|---:|---|\n| drift latency p95 ≤ %s | %d ms | %s |\n",
		driftTargetP95, p95.Milliseconds(), verdict)
}
