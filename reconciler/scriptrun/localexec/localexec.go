// Package localexec runs script tasks as processes on the daemon's host: /bin/sh -c in the
// run's workspace, with a clean environment (the Spec's env and PATH only), in a process
// group of its own that a timeout or cancel kills whole. It runs no image: the pipeline
// language refuses image with executor local, and Run refuses a Spec that has one.
package localexec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/slipwayhq/slipway/reconciler/scriptrun"
)

// defaultPath is the PATH scripts get: the daemon's own PATH is not passed on, so that
// nothing of its environment leaks into a repository's script.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Executor runs scripts on this host.
type Executor struct {
	shell string
	// grace is how long the process group has after SIGTERM before SIGKILL.
	grace time.Duration
}

// New returns an executor that runs scripts with /bin/sh.
func New() *Executor { return &Executor{shell: "/bin/sh", grace: 500 * time.Millisecond} }

// ErrImage says a Spec names an image, which a host process cannot honour.
var ErrImage = errors.New("executor local runs no image")

// Run implements scriptrun.Executor.
func (e *Executor) Run(ctx context.Context, s scriptrun.Spec) (scriptrun.Result, error) {
	if s.Image != "" {
		return scriptrun.Result{}, fmt.Errorf("image %s: %w", s.Image, ErrImage)
	}
	outDir, err := os.MkdirTemp("", "slipway-output-")
	if err != nil {
		return scriptrun.Result{}, fmt.Errorf("output file: %w", err)
	}
	defer os.RemoveAll(outDir)
	outFile := filepath.Join(outDir, "output")
	if err := os.WriteFile(outFile, nil, 0o600); err != nil {
		return scriptrun.Result{}, fmt.Errorf("output file: %w", err)
	}
	dir, err := workDir(s)
	if err != nil {
		return scriptrun.Result{}, err
	}

	cmd := exec.Command(e.shell, "-c", s.Script)
	cmd.Dir = dir
	cmd.Env = environment(s, outFile)
	cmd.Stdout, cmd.Stderr = s.Log, s.StderrWriter()
	// Its own process group, so that everything the script starts is killed with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return scriptrun.Result{}, &scriptrun.StartError{Reason: "could not start " + e.shell, Err: err}
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	var werr error
	select {
	case werr = <-waited:
		// The script is gone; what it left running in its group goes with it.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	case <-ctx.Done():
		e.killGroup(cmd.Process.Pid, waited)
		return scriptrun.Result{}, fmt.Errorf("script stopped: %w", context.Cause(ctx))
	}
	res := scriptrun.Result{}
	var exitErr *exec.ExitError
	switch {
	case werr == nil:
	case errors.As(werr, &exitErr):
		res.ExitCode = exitErr.ExitCode()
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.ExitCode = 128 + int(ws.Signal())
			res.Reason = "killed by signal " + ws.Signal().String()
		}
	default:
		return res, fmt.Errorf("wait for the script: %w", werr)
	}
	out, err := os.ReadFile(outFile)
	if err != nil {
		return res, fmt.Errorf("read $SLIPWAY_OUTPUT: %w", err)
	}
	res.Output = out
	return res, nil
}

// killGroup ends the script's process group: SIGTERM, then SIGKILL after the grace period,
// and returns once the shell has been reaped.
func (e *Executor) killGroup(pid int, waited <-chan error) {
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-waited:
	case <-time.After(e.grace):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-waited
	}
	// Children that ignored SIGTERM outlive the shell; the group still names them.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}

func workDir(s scriptrun.Spec) (string, error) {
	root, err := filepath.Abs(s.Workspace)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, filepath.FromSlash(s.WorkingDir))
	rel, err := filepath.Rel(root, dir)
	if err != nil || rel == ".." || filepath.IsAbs(rel) || len(rel) > 2 && rel[:3] == "../" {
		return "", fmt.Errorf("workingDir %q points outside the workspace", s.WorkingDir)
	}
	// A symlink the checkout or an earlier script made must not lead out either.
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("workingDir %q: %w", s.WorkingDir, err)
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", err
	}
	if rel, err := filepath.Rel(realRoot, real); err != nil || rel == ".." || len(rel) > 2 && rel[:3] == "../" {
		return "", fmt.Errorf("workingDir %q points outside the workspace", s.WorkingDir)
	}
	return real, nil
}

// environment is the script's whole environment: nothing of the daemon's.
func environment(s scriptrun.Spec, outFile string) []string {
	env := []string{"PATH=" + defaultPath}
	for k, v := range s.Env {
		env = append(env, k+"="+v)
	}
	for _, sec := range s.Secrets {
		env = append(env, sec.Name+"="+sec.Value)
	}
	return append(env, "SLIPWAY_OUTPUT="+outFile, "SLIPWAY_WORKSPACE="+s.Workspace)
}
