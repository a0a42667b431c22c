// Package scriptrun is what a script task's executors share with the run engine: the
// script to run with its workspace, and what came of it. The engine (package reconciler)
// resolves everything from the pipeline first (image, substituted env, secrets, working
// folder), so an executor only runs; each executor lives in its own package.
package scriptrun

import (
	"context"
	"fmt"
	"io"
)

// Executor runs one script to its end. Run returns when the script has ended and nothing it
// started is left behind (no process, BuildKit exec or Job), also when ctx is cancelled or
// times out; then it returns ctx's error, wrapped.
type Executor interface {
	Run(ctx context.Context, s Spec) (Result, error)
}

// Spec is one script, resolved.
type Spec struct {
	// Run identifies the run and task, for object names, labels and logs.
	Run RunRef
	// Image is a pullable reference, pinned by the engine where it can be.
	Image string
	// Script runs as /bin/sh -c SCRIPT.
	Script string
	// Env holds the non-secret environment: built-in variables, the pipeline's variables and
	// the task's env, substituted. The executor adds SLIPWAY_OUTPUT and SLIPWAY_WORKSPACE.
	Env map[string]string
	// Secrets become environment variables; their values are already masked in Log.
	Secrets []SecretEnv
	// Workspace is the run's workspace on the daemon's host: the checkout at the run's commit,
	// read and written by the run's tasks in turn. The executor brings back what the script
	// changed (files written, changed or removed) before Run returns.
	Workspace string
	// WorkingDir is where the script starts, relative to the workspace ("" is its root);
	// the engine has checked that it stays inside.
	WorkingDir string
	// Resources bound the script where the executor can (requests and limits as Kubernetes
	// quantities, e.g. "500m", "256Mi"); empty fields mean no bound.
	Resources Resources
	// Cache allows the executor to reuse an earlier result of the very same step.
	Cache bool
	// Log receives the script's stdout as it comes (and its stderr too when Stderr is nil,
	// or when the executor cannot tell them apart). The engine masks secrets in it (across
	// writes), so executors write raw bytes.
	Log io.Writer
	// Stderr receives the script's stderr where the executor can tell it apart; nil: Log.
	Stderr io.Writer
}

// StderrWriter is where the script's stderr goes: Stderr, or Log.
func (s Spec) StderrWriter() io.Writer {
	if s.Stderr != nil {
		return s.Stderr
	}
	return s.Log
}

// RunRef names the run a script belongs to.
type RunRef struct {
	Repository string
	Pipeline   string
	BuildID    int64
	Task       string
}

// SecretEnv is one environment variable whose value is secret.
type SecretEnv struct {
	Name  string
	Value string
	// Kubernetes is where the value lives when it is a Kubernetes Secret; the Kubernetes
	// executor references it (secretKeyRef) instead of copying Value into the Job.
	Kubernetes *SecretRef
}

// SecretRef is a key of a Kubernetes Secret.
type SecretRef struct {
	Cluster, Namespace, Name, Key string
}

// Resources are Kubernetes quantities.
type Resources struct {
	CPURequest, CPULimit, MemoryRequest, MemoryLimit string
}

// Result is what a script that ran to its end left.
type Result struct {
	// ExitCode is the script's exit status; non-zero fails the task.
	ExitCode int
	// Reason says why the executor ended it, when it was not the script's own exit
	// (e.g. "OOMKilled"); empty otherwise.
	Reason string
	// Output is the content of the file named by $SLIPWAY_OUTPUT (KEY=VALUE lines).
	Output []byte
}

// ExitError is how the engine reports a script that ran and exited non-zero.
type ExitError struct {
	Code int
	// Tail holds the last lines of the script's output, already masked.
	Tail string
}

func (e *ExitError) Error() string {
	if e.Tail == "" {
		return fmt.Sprintf("script exited with code %d", e.Code)
	}
	return fmt.Sprintf("script exited with code %d; last lines:\n%s", e.Code, e.Tail)
}

// StartError reports a script that could not start: the image could not be pulled, the pod
// could not be scheduled, and the like. Reason names the cause in the executor's words.
type StartError struct {
	Reason string
	Err    error
}

func (e *StartError) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return e.Reason + ": " + e.Err.Error()
}

func (e *StartError) Unwrap() error { return e.Err }
