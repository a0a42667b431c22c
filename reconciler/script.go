package reconciler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/policy"
	"github.com/slipwayhq/slipway/reconciler/scriptrun"
	"github.com/slipwayhq/slipway/render"
	"github.com/slipwayhq/slipway/store"
)

// Executors are the script executors the daemon has, by name (pipeline.ExecutorBuildKit,
// ...); built once from slipway.yaml where the Runner is made.
type Executors map[string]scriptrun.Executor

// maxScriptOutput bounds the $SLIPWAY_OUTPUT file a script may leave.
const maxScriptOutput = 64 << 10

// tailLines is how many of the last output lines a failed script's reason carries.
const tailLines = 10

// runScript runs a script task on its executor in the run's workspace: what it writes
// there is what later tasks read. It returns the declared outputs the script wrote.
func (r *Runner) runScript(ctx context.Context, rc *runContext, task string, t *pipeline.ScriptTask, tl *taskLog) (map[string]string, error) {
	name, err := r.config.ScriptExecutor(t.Executor)
	if err != nil {
		return nil, err
	}
	ex := r.executors[name]
	if ex == nil {
		return nil, fmt.Errorf("executor %s is configured but this process has none: %w", name, ErrExecutorUnavailable)
	}
	spec, err := r.scriptSpec(rc, task, t)
	if err != nil {
		return nil, err
	}
	out := newScriptOutput(rc, tl)
	spec.Log, spec.Stderr = out.writer(store.StreamStdout), out.writer(store.StreamStderr)
	execute := func() (scriptrun.Result, error) {
		defer out.close()
		// Made once the script may run, so no copy of the commit's files waits for a slot.
		ws, err := r.ownWorkspace(ctx, rc)
		if err != nil {
			return scriptrun.Result{}, err
		}
		spec.Workspace = ws
		if spec.Image != "" {
			tl.Printf("running the script on %s in %s", name, spec.Image)
		} else {
			tl.Printf("running the script on %s", name)
		}
		return ex.Run(ctx, spec)
	}
	var res scriptrun.Result
	if name == pipeline.ExecutorKubernetes {
		// The script runs in a pod, on the cluster's cores, which its scheduler bounds; here
		// the workspace streams in and out as an uncompressed tar and the log is followed,
		// which waits on the API server as a deploy does. So it keeps the run's place and
		// takes no build slot: one would sit idle for the pod's whole run.
		res, err = execute()
	} else {
		// The local executor's script runs on this host, BuildKit's in the builder the image
		// builds use: both keep a core busy.
		res, err = underBuildSlot(ctx, rc, r.builds, tl, execute)
	}
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		ee := &scriptrun.ExitError{Code: res.ExitCode, Tail: out.tail()}
		if res.Reason != "" {
			return nil, fmt.Errorf("%s: %w", res.Reason, ee)
		}
		return nil, ee
	}
	outputs, err := parseOutputs(res.Output, t.Outputs)
	if err != nil {
		return nil, err
	}
	if len(outputs) > 0 {
		tl.Printf("outputs: %s", strings.Join(slices.Sorted(maps.Keys(outputs)), ", "))
	}
	return outputs, nil
}

// ErrExecutorUnavailable says a script's executor is not wired in this process.
var ErrExecutorUnavailable = errors.New("executor unavailable")

// scriptSpec resolves what the executor runs: the image and env substituted, the secrets
// read, the working folder checked against the workspace.
func (r *Runner) scriptSpec(rc *runContext, task string, t *pipeline.ScriptTask) (scriptrun.Spec, error) {
	vars := rc.varsSnapshot()
	spec := scriptrun.Spec{
		Run: scriptrun.RunRef{Repository: rc.run.Pipeline.Repository, Pipeline: rc.run.Pipeline.Name,
			BuildID: rc.run.BuildID, Task: task},
		Script: t.Script,
		Env:    map[string]string{},
		Cache:  t.Cache,
	}
	var err error
	if spec.Image, err = render.Substitute(t.Image, vars); err != nil {
		return spec, fmt.Errorf("image: %w", err)
	}
	// The script's environment: built-in variables, the pipeline's variables, the task's
	// env — never the secrets, which only secretEnv hands over. A step that may come from
	// the cache gets only its own env: BUILD_ID and the like differ in every run and would
	// make every run's step a new one.
	if !t.Cache {
		for _, k := range pipeline.Builtins() {
			spec.Env[k] = vars[k]
		}
		for k := range rc.pipeline.Variables {
			spec.Env[k] = vars[k]
		}
	}
	for k, v := range t.Env {
		if spec.Env[k], err = render.Substitute(v, vars); err != nil {
			return spec, fmt.Errorf("env %s: %w", k, err)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(t.SecretEnv)) {
		name := t.SecretEnv[k]
		val, ok := vars[name]
		if !ok {
			return spec, fmt.Errorf("secretEnv %s: secret %s is not declared", k, name)
		}
		se := scriptrun.SecretEnv{Name: k, Value: val}
		for _, s := range rc.pipeline.Secrets {
			if s.Name == name && s.File == "" {
				se.Kubernetes = &scriptrun.SecretRef{Cluster: s.Cluster, Namespace: policy.SecretNamespace(s), Name: s.Secret, Key: s.Key}
			}
		}
		spec.Secrets = append(spec.Secrets, se)
	}
	if wd := t.WorkingDir; wd != "" {
		clean := path.Clean(wd)
		if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
			return spec, fmt.Errorf("workingDir %q points outside the workspace", wd)
		}
		if clean != "." {
			spec.WorkingDir = clean
		}
	}
	if res := t.Resources; res != nil {
		if res.Requests != nil {
			spec.Resources.CPURequest, spec.Resources.MemoryRequest = res.Requests.CPU, res.Requests.Memory
		}
		if res.Limits != nil {
			spec.Resources.CPULimit, spec.Resources.MemoryLimit = res.Limits.CPU, res.Limits.Memory
		}
	}
	return spec, nil
}

// OutputError says a script's $SLIPWAY_OUTPUT file holds something it may not.
type OutputError struct{ Reason string }

func (e *OutputError) Error() string { return "$SLIPWAY_OUTPUT: " + e.Reason }

// parseOutputs reads KEY=VALUE lines; only declared keys are accepted.
func parseOutputs(data []byte, declared []string) (map[string]string, error) {
	if len(data) > maxScriptOutput {
		return nil, &OutputError{Reason: fmt.Sprintf("%d bytes, more than the %d allowed", len(data), maxScriptOutput)}
	}
	out := map[string]string{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		switch {
		case !ok:
			return nil, &OutputError{Reason: fmt.Sprintf("line %d is not KEY=VALUE", i+1)}
		case !slices.Contains(declared, k):
			msg := fmt.Sprintf("line %d sets %q, which the task does not declare in outputs", i+1, k)
			if len(declared) > 0 {
				msg += " (it declares " + strings.Join(declared, ", ") + ")"
			}
			return nil, &OutputError{Reason: msg}
		}
		out[k] = v
	}
	return out, nil
}

// scriptOutput turns a script's output into masked log lines: bytes are held until a line
// ends, so a secret split across two writes is still whole when it is masked.
type scriptOutput struct {
	rc *runContext
	tl *taskLog

	mu      sync.Mutex
	partial map[store.LogStream]*bytes.Buffer
	last    []string // the last lines, masked
}

// maxPartialLine is where a line without an end is cut into a log line of its own.
const maxPartialLine = store.MaxLogLineBytes

func newScriptOutput(rc *runContext, tl *taskLog) *scriptOutput {
	return &scriptOutput{rc: rc, tl: tl, partial: map[store.LogStream]*bytes.Buffer{}}
}

type streamWriter struct {
	o      *scriptOutput
	stream store.LogStream
}

func (w streamWriter) Write(p []byte) (int, error) {
	w.o.write(w.stream, p)
	return len(p), nil
}

func (o *scriptOutput) writer(s store.LogStream) streamWriter { return streamWriter{o: o, stream: s} }

func (o *scriptOutput) write(s store.LogStream, p []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	buf := o.partial[s]
	if buf == nil {
		buf = &bytes.Buffer{}
		o.partial[s] = buf
	}
	buf.Write(p)
	for {
		b := buf.Bytes()
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if len(b) >= maxPartialLine {
				o.emit(s, string(b))
				buf.Reset()
			}
			return
		}
		o.emit(s, string(b[:i]))
		buf.Next(i + 1)
	}
}

// emit records one line; o.mu is held.
func (o *scriptOutput) emit(s store.LogStream, line string) {
	line = o.rc.mask(strings.TrimSuffix(line, "\r"))
	o.last = append(o.last, line)
	if len(o.last) > tailLines {
		o.last = o.last[len(o.last)-tailLines:]
	}
	o.tl.output(s, line)
}

// close records what is left of unfinished lines. They are stored with the task's end
// (taskLog.ending), in its write, like every line the last flush did not take.
func (o *scriptOutput) close() {
	o.mu.Lock()
	for _, s := range []store.LogStream{store.StreamStdout, store.StreamStderr} {
		if buf := o.partial[s]; buf != nil && buf.Len() > 0 {
			o.emit(s, buf.String())
			buf.Reset()
		}
	}
	o.mu.Unlock()
}

// tail is the last lines of the output, masked.
func (o *scriptOutput) tail() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.last, "\n")
}
