package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// envGetter exposes ARG values and then ENV values (ENV wins, as in Docker) to expansion.
func envGetter(args map[string]string, env []string) shell.EnvGetter {
	kv := make([]string, 0, len(args)+len(env))
	for k, v := range args {
		kv = append(kv, k+"="+v)
	}
	return shell.EnvsFromSlice(append(kv, env...))
}

// expand substitutes $VARS in the command's words with the stage's ARGs and ENV.
func (r *run) expand(st *stage, c instructions.Command) error {
	expander := func(word string) (string, error) {
		s, _, err := r.lex.ProcessWord(word, envGetter(st.args, st.cfg.Config.Env))
		return s, err
	}
	if e, ok := c.(instructions.SupportsSingleWordExpansion); ok {
		if err := e.Expand(expander); err != nil {
			return err
		}
	}
	if e, ok := c.(instructions.SupportsSingleWordExpansionRaw); ok {
		return e.ExpandRaw(expander)
	}
	return nil
}

// commandText is the instruction as written, for logs.
func commandText(c instructions.Command) string {
	if s, ok := c.(fmt.Stringer); ok {
		return s.String()
	}
	return strings.ToUpper(c.Name())
}

// apply performs one instruction on the stage.
func (r *run) apply(ctx context.Context, st *stage, c instructions.Command) error {
	cfg := &st.cfg.Config
	switch c := c.(type) {
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			cfg.Env = setEnv(cfg.Env, kv.Key, kv.Value)
		}
	case *instructions.ArgCommand:
		for _, kv := range c.Args {
			if v, ok := r.buildArgs[kv.Key]; ok {
				st.args[kv.Key] = v
				r.used[kv.Key] = true
			} else if kv.Value != nil {
				st.args[kv.Key] = *kv.Value
			} else if v, ok := r.meta[kv.Key]; ok {
				st.args[kv.Key] = v
			}
		}
	case *instructions.LabelCommand:
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range c.Labels {
			cfg.Labels[kv.Key] = kv.Value
		}
	case *instructions.MaintainerCommand:
		st.cfg.Author = c.Maintainer
	case *instructions.ExposeCommand:
		if err := expose(r, st, c.Ports); err != nil {
			return err
		}
	case *instructions.WorkdirCommand:
		return r.workdir(st, c)
	case *instructions.UserCommand:
		cfg.User = c.User
	case *instructions.CmdCommand:
		cfg.Cmd = shellForm(cfg.Shell, c.ShellDependantCmdLine)
		st.cmdSet = true
	case *instructions.EntrypointCommand:
		cfg.Entrypoint = shellForm(cfg.Shell, c.ShellDependantCmdLine)
		if !st.cmdSet {
			cfg.Cmd = nil // Docker drops a CMD inherited from the base when ENTRYPOINT changes
		}
	case *instructions.VolumeCommand:
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			if v = strings.TrimSpace(v); v == "" {
				return fmt.Errorf("empty volume path")
			}
			cfg.Volumes[v] = struct{}{}
		}
	case *instructions.StopSignalCommand:
		cfg.StopSignal = c.Signal
	case *instructions.HealthCheckCommand:
		h := c.Health
		cfg.Healthcheck = &v1.HealthConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout,
			StartPeriod: h.StartPeriod, Retries: h.Retries}
	case *instructions.ShellCommand:
		cfg.Shell = c.Shell
	case *instructions.OnbuildCommand:
		cfg.OnBuild = append(cfg.OnBuild, c.Expression)
	case *instructions.CopyCommand:
		return r.copy(ctx, st, c, c.SourcesAndDest, c.From, c.Chown, c.Chmod, false, nil)
	case *instructions.AddCommand:
		return r.copy(ctx, st, c, c.SourcesAndDest, "", c.Chown, c.Chmod, true, c.Unpack)
	default:
		return fmt.Errorf("not supported by the native builder; %s", useBuildKit)
	}
	st.hist = append(st.hist, history(c, true))
	return nil
}

func history(c instructions.Command, empty bool) v1.History {
	return v1.History{Created: v1.Time{Time: epoch()}, CreatedBy: commandText(c), Comment: "slipway native builder", EmptyLayer: empty}
}

func setEnv(env []string, k, v string) []string {
	for i, e := range env {
		if name, _, _ := strings.Cut(e, "="); name == k {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}

// shellForm turns a CMD or ENTRYPOINT into its exec form: the shell form runs under the
// stage's SHELL (default /bin/sh -c).
func shellForm(sh []string, c instructions.ShellDependantCmdLine) []string {
	if !c.PrependShell {
		return append([]string{}, c.CmdLine...)
	}
	if len(sh) == 0 {
		sh = []string{"/bin/sh", "-c"}
	}
	return append(append([]string{}, sh...), strings.Join(c.CmdLine, " "))
}

// expose records ports as "port/proto"; ranges become each port, as Docker does.
func expose(r *run, st *stage, ports []string) error {
	cfg := &st.cfg.Config
	if cfg.ExposedPorts == nil {
		cfg.ExposedPorts = map[string]struct{}{}
	}
	for _, p := range ports {
		word, _, err := r.lex.ProcessWord(p, envGetter(st.args, cfg.Env))
		if err != nil {
			return err
		}
		port, proto, _ := strings.Cut(word, "/")
		if proto == "" {
			proto = "tcp"
		}
		proto = strings.ToLower(proto)
		if proto != "tcp" && proto != "udp" && proto != "sctp" {
			return fmt.Errorf("port %q: protocol must be tcp, udp or sctp", word)
		}
		lo, hi, isRange := strings.Cut(port, "-")
		if !isRange {
			hi = lo
		}
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || a < 1 || b > 65535 || a > b {
			return fmt.Errorf("port %q: want a number or range within 1-65535", word)
		}
		for n := a; n <= b; n++ {
			cfg.ExposedPorts[strconv.Itoa(n)+"/"+proto] = struct{}{}
		}
	}
	return nil
}

// workdir sets the working folder and, like BuildKit, creates it when it is missing.
func (r *run) workdir(st *stage, c *instructions.WorkdirCommand) error {
	dir := c.Path
	if !path.IsAbs(dir) {
		dir = path.Join("/", st.cfg.Config.WorkingDir, dir)
	}
	st.cfg.Config.WorkingDir = path.Clean(dir)
	ix, err := r.index(st)
	if err != nil {
		return err
	}
	files := layerFiles{}
	copyPlan{}.mkdirs(files, ix, ix.resolve(dir))
	if len(files) == 0 {
		st.hist = append(st.hist, history(c, true))
		return nil
	}
	return r.addLayer(st, c, files)
}

// addLayer writes files as the stage's next layer.
func (r *run) addLayer(st *stage, c instructions.Command, files layerFiles) error {
	l, err := files.write(r.tmp, st.mt)
	if err != nil {
		return err
	}
	st.adds = append(st.adds, mutate.Addendum{Layer: l})
	st.hist = append(st.hist, history(c, false))
	st.ix.add(files)
	return nil
}

// copy performs COPY and ADD: match the sources, place them, write one layer.
func (r *run) copy(ctx context.Context, st *stage, c instructions.Command, sd instructions.SourcesAndDest, from, chown, chmod string, add bool, unpack *bool) error {
	ix, err := r.index(st)
	if err != nil {
		return err
	}
	plan := copyPlan{dest: sd.DestPath, workdir: st.cfg.Config.WorkingDir}
	if chmod != "" {
		m, err := strconv.ParseUint(chmod, 8, 32)
		if err != nil || m > 0o7777 {
			return fmt.Errorf("--chmod=%s: want an octal mode such as 0755", chmod)
		}
		mode := int64(m)
		plan.chmod = &mode
	}
	if chown != "" {
		o, err := r.owner(st, chown)
		if err != nil {
			return err
		}
		plan.chown = &o
	}
	var trees []tree
	if from != "" {
		srcImg, err := r.fromSource(ctx, from)
		if err != nil {
			return err
		}
		for _, p := range sd.SourcePaths {
			t, err := imageSource{img: srcImg}.match(p)
			if err != nil {
				return fmt.Errorf("--from=%s: %w", from, err)
			}
			trees = append(trees, t...)
		}
	} else {
		for _, p := range sd.SourcePaths {
			t, err := r.context.match(p)
			if err != nil {
				return err
			}
			if add && (unpack == nil || *unpack) {
				for i := range t {
					u, ok, err := unpackTree(t[i])
					if err != nil {
						return err
					}
					if ok {
						t[i] = u
					}
				}
			}
			trees = append(trees, t...)
		}
	}
	for _, sc := range sd.SourceContents {
		data := []byte(sc.Data)
		trees = append(trees, tree{name: sc.Path, items: []item{{hdr: tar.Header{Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))},
			open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}}})
	}
	files, err := plan.place(trees, ix)
	if err != nil {
		return err
	}
	return r.addLayer(st, c, files)
}

// fromSource is the image a COPY --from reads: an earlier stage (by name or index) or an
// image reference.
func (r *run) fromSource(ctx context.Context, from string) (v1.Image, error) {
	if i, ok := instructions.HasStage(r.df.stages[:len(r.built)], from); ok {
		return r.built[i].final, nil
	}
	if i, err := strconv.Atoi(from); err == nil {
		if i < 0 || i >= len(r.built) {
			return nil, fmt.Errorf("--from=%d: no earlier stage with that index", i)
		}
		return r.built[i].final, nil
	}
	return r.pull(ctx, from, instructions.Stage{})
}
