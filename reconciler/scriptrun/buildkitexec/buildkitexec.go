// Package buildkitexec runs script tasks as BuildKit execs: the workspace goes in as a
// local source mounted read-write, the script runs with /bin/sh -c in the image, and the
// mount's result is exported back over the workspace (files the script removed disappear
// too). Secrets reach the exec as BuildKit secret env, so their values are in no LLB
// definition, cache key or build history record; steps are never taken from the cache
// unless the task asks for it.
package buildkitexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	gwpb "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/moby/buildkit/identity"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	"github.com/tonistiigi/fsutil"
	"golang.org/x/sync/errgroup"

	controlapi "github.com/moby/buildkit/api/services/control"

	"github.com/slipwayhq/slipway/reconciler/scriptrun"
)

// Registry is what the executor needs of Slipway's registry settings (builder.Registry).
type Registry interface {
	// PullName is where buildkitd pulls an image from (a configured mirror, or itself).
	PullName(ref string) (string, error)
	// BuildKitAuth answers buildkitd's credential requests.
	BuildKitAuth() session.Attachable
}

// Executor runs scripts on one buildkitd.
type Executor struct {
	address string
	reg     Registry
}

// New returns an executor for the buildkitd at address (unix://, tcp://).
func New(address string, reg Registry) (*Executor, error) {
	if address == "" {
		return nil, errors.New("executor buildkit needs an address")
	}
	return &Executor{address: address, reg: reg}, nil
}

// mountPoint is where the workspace is in the exec.
const mountPoint = "/workspace"

// localName names the workspace among the solve's local sources.
const localName = "workspace"

// outputName is the file the script's $SLIPWAY_OUTPUT names, in the workspace while the
// script runs (it comes back with the workspace and is taken out of it). Fixed per task,
// so that a step asking for cache keeps the same definition from run to run.
func outputName(task string) string { return ".slipway-output-" + task }

// goneWait bounds the wait for buildkitd to report a cancelled solve ended.
const goneWait = 10 * time.Second

// Run implements scriptrun.Executor.
func (e *Executor) Run(ctx context.Context, s scriptrun.Spec) (scriptrun.Result, error) {
	if s.Image == "" {
		return scriptrun.Result{}, errors.New("executor buildkit needs an image")
	}
	pull, err := e.reg.PullName(s.Image)
	if err != nil {
		return scriptrun.Result{}, &scriptrun.StartError{Reason: "image " + s.Image, Err: err}
	}
	out := filepath.Join(s.Workspace, outputName(s.Run.Task))
	if _, err := os.Lstat(out); err == nil {
		return scriptrun.Result{}, fmt.Errorf("the workspace already has %s, the file Slipway keeps $SLIPWAY_OUTPUT in", outputName(s.Run.Task))
	}
	// Writable by whatever user the image runs as.
	if err := os.WriteFile(out, nil, 0o666); err != nil {
		return scriptrun.Result{}, fmt.Errorf("output file: %w", err)
	}
	_ = os.Chmod(out, 0o666)
	defer os.Remove(out)
	export, err := os.MkdirTemp(filepath.Dir(s.Workspace), ".export-")
	if err != nil {
		return scriptrun.Result{}, fmt.Errorf("export folder: %w", err)
	}
	defer os.RemoveAll(export)

	code, started, err := e.solve(ctx, s, pull, export)
	switch {
	case err != nil && ctx.Err() != nil:
		return scriptrun.Result{}, fmt.Errorf("script stopped: %w", context.Cause(ctx))
	case err != nil && !started:
		return scriptrun.Result{}, &scriptrun.StartError{Reason: "the script could not start in " + s.Image, Err: err}
	case err != nil:
		return scriptrun.Result{}, fmt.Errorf("buildkit exec: %w", err)
	case code != 0:
		// A failed exec's mount is not exported: the workspace stays as it was.
		return scriptrun.Result{ExitCode: code}, nil
	}
	output, err := os.ReadFile(filepath.Join(export, outputName(s.Run.Task)))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return scriptrun.Result{}, fmt.Errorf("read $SLIPWAY_OUTPUT: %w", err)
	}
	_ = os.Remove(filepath.Join(export, outputName(s.Run.Task)))
	if err := replaceContents(s.Workspace, export); err != nil {
		return scriptrun.Result{}, fmt.Errorf("bring the workspace back: %w", err)
	}
	return scriptrun.Result{Output: output}, nil
}

// Definition is the LLB of a script step. Secrets appear in it by ID only; their values
// travel in the solve's session (SecretValues).
func Definition(ctx context.Context, s scriptrun.Spec, pull string, resolver llb.ImageMetaResolver) (*llb.Definition, error) {
	imgOpts := []llb.ImageOption{llb.LinuxAmd64}
	if resolver != nil {
		imgOpts = append(imgOpts, llb.WithMetaResolver(resolver))
	}
	img := llb.Image(pull, imgOpts...)
	opts := []llb.RunOption{
		llb.Args([]string{"/bin/sh", "-c", s.Script}),
		llb.Dir(path.Join(mountPoint, s.WorkingDir)),
		llb.WithCustomName(stepName(s)),
	}
	if !s.Cache {
		opts = append(opts, llb.IgnoreCache)
	}
	keys := make([]string, 0, len(s.Env))
	for k := range s.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		opts = append(opts, llb.AddEnv(k, s.Env[k]))
	}
	opts = append(opts, llb.AddEnv("SLIPWAY_OUTPUT", path.Join(mountPoint, outputName(s.Run.Task))),
		llb.AddEnv("SLIPWAY_WORKSPACE", mountPoint))
	for _, sec := range s.Secrets {
		opts = append(opts, llb.AddSecret(sec.Name, llb.SecretID(secretID(sec)), llb.SecretAsEnv(true)))
	}
	run := img.Run(opts...)
	ws := llb.Local(localName, llb.SharedKeyHint(s.Run.Repository+"/"+s.Run.Pipeline))
	result := run.AddMount(mountPoint, ws)
	return result.Marshal(ctx, llb.LinuxAmd64)
}

func secretID(s scriptrun.SecretEnv) string { return "env." + s.Name }

// SecretValues are the values buildkitd asks the session for, by secret ID.
func SecretValues(s scriptrun.Spec) map[string][]byte {
	out := make(map[string][]byte, len(s.Secrets))
	for _, sec := range s.Secrets {
		out[secretID(sec)] = []byte(sec.Value)
	}
	return out
}

func stepName(s scriptrun.Spec) string {
	return fmt.Sprintf("script %s (%s #%d)", s.Run.Task, s.Run.Pipeline, s.Run.BuildID)
}

// solve runs the step and exports the workspace mount into export. code is the script's
// exit code when it ran and failed; started says whether the exec began.
func (e *Executor) solve(ctx context.Context, s scriptrun.Spec, pull, export string) (code int, started bool, err error) {
	c, err := client.New(ctx, e.address)
	if err != nil {
		return 0, false, fmt.Errorf("connect to buildkitd %s: %w", e.address, err)
	}
	defer c.Close()
	wsFS, err := fsutil.NewFS(s.Workspace)
	if err != nil {
		return 0, false, err
	}
	build := func(ctx context.Context, gc gateway.Client) (*gateway.Result, error) {
		def, err := Definition(ctx, s, pull, gc)
		if err != nil {
			return nil, err
		}
		return gc.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB(), Evaluate: true})
	}
	provider := secretsprovider.FromMap(SecretValues(s))
	ref := identity.NewID()
	opt := client.SolveOpt{
		Ref:         ref,
		LocalMounts: map[string]fsutil.FS{localName: wsFS},
		Exports:     []client.ExportEntry{{Type: client.ExporterLocal, OutputDir: export}},
		Session:     []session.Attachable{e.reg.BuildKitAuth(), provider},
	}
	status := make(chan *client.SolveStatus)
	logs := &statusLog{name: stepName(s), stdout: s.Log, stderr: s.StderrWriter()}
	eg, egctx := errgroup.WithContext(ctx)
	eg.Go(func() error {
		_, err := c.Build(egctx, opt, "slipway", build, status)
		return err
	})
	eg.Go(func() error {
		for st := range status {
			logs.add(st)
		}
		return nil
	})
	err = eg.Wait()
	if err != nil && ctx.Err() != nil {
		e.waitGone(context.WithoutCancel(ctx), c, ref)
		return 0, logs.started, err
	}
	var exit *gwpb.ExitError
	if errors.As(err, &exit) {
		return int(exit.ExitCode), true, nil
	}
	return 0, logs.started, err
}

// waitGone returns once buildkitd no longer lists the solve as active, so that a cancelled
// script leaves no exec behind when Run returns.
func (e *Executor) waitGone(ctx context.Context, c *client.Client, ref string) {
	ctx, cancel := context.WithTimeout(ctx, goneWait)
	defer cancel()
	for ctx.Err() == nil {
		stream, err := c.ControlClient().ListenBuildHistory(ctx, &controlapi.BuildHistoryRequest{ActiveOnly: true, Ref: ref, EarlyExit: true})
		if err != nil {
			return
		}
		active := false
		for {
			ev, err := stream.Recv()
			if err != nil {
				break
			}
			if ev.Record != nil && ev.Record.Ref == ref && ev.Record.CompletedAt == nil {
				active = true
			}
		}
		if !active {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// statusLog picks the script's output out of the solve's status stream.
type statusLog struct {
	name           string
	stdout, stderr io.Writer
	steps          map[string]bool // digests of the script's vertex
	started        bool
}

func (l *statusLog) add(st *client.SolveStatus) {
	if l.steps == nil {
		l.steps = map[string]bool{}
	}
	for _, v := range st.Vertexes {
		if v.Name == l.name {
			l.steps[v.Digest.String()] = true
			if v.Started != nil {
				l.started = true
			}
		}
	}
	for _, lg := range st.Logs {
		if !l.steps[lg.Vertex.String()] {
			continue
		}
		w := l.stdout
		if lg.Stream == 2 {
			w = l.stderr
		}
		_, _ = w.Write(lg.Data)
	}
}

// replaceContents makes dir hold exactly what src holds, moving src's entries in. dir
// itself stays (the run engine holds it open).
func replaceContents(dir, src string) error {
	old, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range old {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.Rename(filepath.Join(src, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
