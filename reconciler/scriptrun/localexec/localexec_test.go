package localexec

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/reconciler/scriptrun"
)

func spec(t *testing.T, script string) (scriptrun.Spec, *bytes.Buffer) {
	t.Helper()
	var log bytes.Buffer
	ws := t.TempDir()
	return scriptrun.Spec{Script: script, Workspace: ws, Env: map[string]string{"BUILD_ID": "7"},
		Secrets: []scriptrun.SecretEnv{{Name: "TOKEN", Value: "s3cret"}}, Log: &log}, &log
}

func TestRunsInTheWorkspaceWithACleanEnvironment(t *testing.T) {
	t.Setenv("DAEMON_ONLY", "leak")
	s, log := spec(t, `mkdir -p sub && echo "edited $BUILD_ID" > sub/file && cd sub && pwd && env | sort && echo VERSION=1.2.$BUILD_ID >> "$SLIPWAY_OUTPUT"`)
	res, err := New().Run(context.Background(), s)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("run: %+v %v\n%s", res, err, log)
	}
	if b, _ := os.ReadFile(filepath.Join(s.Workspace, "sub", "file")); string(b) != "edited 7\n" {
		t.Errorf("workspace file %q", b)
	}
	if string(res.Output) != "VERSION=1.2.7\n" {
		t.Errorf("output %q", res.Output)
	}
	out := log.String()
	for _, want := range []string{"BUILD_ID=7", "TOKEN=s3cret", "PATH=" + defaultPath, "SLIPWAY_WORKSPACE=" + s.Workspace} {
		if !strings.Contains(out, want) {
			t.Errorf("environment lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "DAEMON_ONLY") {
		t.Errorf("the daemon's environment leaked into the script:\n%s", out)
	}
}

func TestWorkingDirAndExitCode(t *testing.T) {
	s, log := spec(t, "pwd; echo oops >&2; exit 3")
	var stderr bytes.Buffer
	s.Stderr = &stderr
	_ = os.Mkdir(filepath.Join(s.Workspace, "d"), 0o755)
	s.WorkingDir = "d"
	res, err := New().Run(context.Background(), s)
	if err != nil || res.ExitCode != 3 {
		t.Fatalf("run: %+v %v", res, err)
	}
	if real, _ := filepath.EvalSymlinks(filepath.Join(s.Workspace, "d")); strings.TrimSpace(log.String()) != real {
		t.Errorf("started in %q, want %q", log.String(), real)
	}
	if stderr.String() != "oops\n" {
		t.Errorf("stderr %q", stderr.String())
	}
	if err := os.Symlink("/etc", filepath.Join(s.Workspace, "out")); err != nil {
		t.Fatal(err)
	}
	s.WorkingDir = "out"
	if _, err := New().Run(context.Background(), s); err == nil || !strings.Contains(err.Error(), "outside the workspace") {
		t.Errorf("a workingDir that links out of the workspace: %v", err)
	}
}

func TestImageRefused(t *testing.T) {
	s, _ := spec(t, "true")
	s.Image = "busybox"
	if _, err := New().Run(context.Background(), s); !errors.Is(err, ErrImage) {
		t.Errorf("image with executor local: %v", err)
	}
}

// A cancelled script's whole process group ends, children that ignore SIGTERM included,
// before Run returns.
func TestCancelKillsTheProcessGroup(t *testing.T) {
	s, _ := spec(t, `(trap '' TERM; sleep 60) & echo $! > child.pid; wait`)
	ctx, cancel := context.WithCancel(context.Background())
	pidFile := filepath.Join(s.Workspace, "child.pid")
	go func() {
		for {
			if b, err := os.ReadFile(pidFile); err == nil && len(bytes.TrimSpace(b)) > 0 {
				cancel()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	start := time.Now()
	_, err := New().Run(ctx, s)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("run: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("cancel took %s", took)
	}
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid == 0 {
		t.Fatal("no child pid")
	}
	// Reaped or not, a killed child must stop running: signal 0 fails, or it is a zombie.
	// SIGKILL takes effect when the child is next scheduled, which on a busy machine can be
	// after Run returned.
	var stat []byte
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err := syscall.Kill(pid, 0); err != nil {
			return
		}
		if stat, _ = os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); strings.Contains(string(stat), ") Z ") {
			return
		}
	}
	t.Errorf("child %d still runs 5 s after the cancel: %s", pid, stat)
}
