package e2e

import (
	"bytes"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/test/testenv"
)

// daemonProc is a running `slipway serve`.
type daemonProc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan error
}

func startServe(t *testing.T, cfg string, flags ...string) *daemonProc {
	t.Helper()
	d := &daemonProc{cmd: exec.Command(slipwayBinary(t), append([]string{"serve", "--config", cfg}, flags...)...), done: make(chan error, 1)}
	d.cmd.Stdout, d.cmd.Stderr = d, d
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		d.stop(t)
		if t.Failed() {
			// What the daemon said is most of what there is to know about a failed test.
			out := strings.Split(d.output(), "\n")
			t.Logf("slipway serve output (last %d of %d lines):\n%s", min(len(out), 80), len(out), strings.Join(out[max(0, len(out)-80):], "\n"))
		}
	})
	return d
}

func (d *daemonProc) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.Write(p)
}

func (d *daemonProc) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// waitOutput waits until the daemon's output contains want (a task log line reaches the
// store only when the task ends; the daemon prints it at once).
func (d *daemonProc) waitOutput(t *testing.T, timeout time.Duration, want string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(d.output(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("slipway serve never said %q", want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemonProc) stop(t *testing.T) {
	t.Helper()
	if d.cmd.ProcessState != nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("slipway serve exited with %v:\n%s", err, d.output())
		}
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		t.Errorf("slipway serve did not stop within 30s of SIGTERM:\n%s", d.output())
	}
}

// waitHistory polls jack-2048's history until cond holds.
func waitHistory(t *testing.T, cfg string, timeout time.Duration, what string, cond func([]historyEntry) bool) []historyEntry {
	t.Helper()
	return waitPipelineHistory(t, cfg, "jack-2048", timeout, what, cond)
}

func TestServePollsRestartsAndSupersedes(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	repo, _, cfg := newProject(t, env)
	manifests := readExample(t, env, "2048-yaml/2048_env.yaml")
	first := repo.commit("first", map[string][]byte{".pipeline.yaml": deployOnlyPipeline(env.Registry, ns), "2048_env.yaml": manifests})

	d := startServe(t, cfg)
	waitHistory(t, cfg, 60*time.Second, "run 1 of the first commit", func(h []historyEntry) bool {
		return len(h) == 1 && h[0].Status == "succeeded" && h[0].Commit == first
	})

	// A restart keeps the history and does not run the same head again.
	d.stop(t)
	d = startServe(t, cfg)
	time.Sleep(3 * time.Second)
	if h := waitHistory(t, cfg, 5*time.Second, "history", func([]historyEntry) bool { return true }); len(h) != 1 {
		t.Fatalf("a restart re-ran the head: %+v", h)
	}

	second := repo.commit("second", map[string][]byte{"2048_env.yaml": []byte(strings.Replace(string(manifests), "spec:\n  selector:", "spec:\n  replicas: 2\n  selector:", 1))})
	waitHistory(t, cfg, 60*time.Second, "run 2 of the second commit", func(h []historyEntry) bool {
		return len(h) == 2 && h[0].BuildID == 2 && h[0].Commit == second && h[0].Status == "succeeded"
	})

	// A newer commit arriving while a run waits for health cancels that wait: the older run
	// ends superseded within seconds, and the newer one deploys.
	slow := strings.Replace(string(manifests), "      labels:\n        application: jack-2048",
		"      labels:\n        application: jack-2048\n        pod-container-running-failed.stage.kwok.x-k8s.io: \"true\"", 1)
	slow = strings.Replace(slow, "spec:\n  selector:", "spec:\n  minReadySeconds: 10\n  selector:", 1)
	repo.commit("slow", map[string][]byte{"2048_env.yaml": []byte(slow)})
	waitHistory(t, cfg, 30*time.Second, "run 3 running", func(h []historyEntry) bool { return len(h) == 3 && h[0].Status == "running" })
	time.Sleep(2 * time.Second) // into its 30s health wait
	newest := repo.commit("newest", map[string][]byte{"2048_env.yaml": []byte(strings.Replace(string(manifests), "spec:\n  selector:", "spec:\n  replicas: 1\n  selector:", 1))})
	pushed := time.Now()
	waitHistory(t, cfg, 15*time.Second, "run 3 superseded", func(h []historyEntry) bool {
		return len(h) >= 4 && h[len(h)-3].Status == "superseded"
	})
	t.Logf("run 3 superseded %s after the newer commit was pushed (poll interval 1s)", time.Since(pushed).Round(100*time.Millisecond))
	h := waitHistory(t, cfg, 60*time.Second, "run 4 succeeded", func(h []historyEntry) bool {
		return len(h) == 4 && h[0].BuildID == 4 && h[0].Status == "succeeded"
	})
	if h[0].Commit != newest {
		t.Errorf("run 4 ran %s, want the newest commit %s", h[0].Commit, newest)
	}
	if !strings.Contains(h[1].Reason, "superseded") {
		t.Errorf("run 3 reason = %q", h[1].Reason)
	}
	d.stop(t)
}
