package builder

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Native builds Dockerfiles without RUN in process: base images come from the registry,
// COPY and ADD become reproducible layers, the rest becomes image config.
type Native struct {
	reg     *Registry
	indexes layerIndexes // base layers' file lists, reused across builds
}

// NewNative returns the embedded builder.
func NewNative(reg *Registry) *Native { return &Native{reg: reg} }

// Build implements Builder.
func (n *Native) Build(ctx context.Context, req Request) (Result, error) {
	log := newLogger(req)
	res, err := n.build(ctx, req, log)
	return res, log.maskErr(err)
}

func (n *Native) build(ctx context.Context, req Request, log *logger) (Result, error) {
	tags, err := req.tags(n.reg)
	if err != nil {
		return Result{}, err
	}
	img, cleanup, err := n.image(ctx, req, log)
	if err != nil {
		return Result{}, err
	}
	defer cleanup()
	return n.reg.push(ctx, img, tags, log)
}

// image builds the target stage. Its new layers live in a temporary folder until cleanup.
func (n *Native) image(ctx context.Context, req Request, log *logger) (img v1.Image, cleanup func(), err error) {
	src, err := resolveSources(req)
	if err != nil {
		return nil, nil, err
	}
	df, err := parseDockerfile(src.dockerfile, src.dfRel, req.Target)
	if err != nil {
		return nil, nil, err
	}
	if err := df.checkNative(); err != nil {
		return nil, nil, err
	}
	platform, err := v1.ParsePlatform(req.platform())
	if err != nil {
		return nil, nil, fmt.Errorf("platform %q: %w", req.platform(), err)
	}
	ignore, err := loadIgnore(req.Root, src.dockerfile, src.context)
	if err != nil {
		return nil, nil, err
	}
	tmp, err := os.MkdirTemp("", "slipway-build-")
	if err != nil {
		return nil, nil, fmt.Errorf("temporary folder for layers: %w", err)
	}
	cleanup = func() { _ = os.RemoveAll(tmp) }
	r := &run{
		n: n, df: df, log: log, platform: platform, tmp: tmp,
		context:   contextSource{dir: src.context, ignore: ignore},
		buildArgs: req.BuildArgs, used: map[string]bool{},
		lex: shell.NewLex(df.escape),
	}
	r.meta = r.metaArgs()
	for i := range df.stages {
		if img, err = r.stage(ctx, i); err != nil {
			cleanup()
			return nil, nil, err
		}
	}
	r.warnUnused()
	return img, cleanup, nil
}

// run is the state of one native build.
type run struct {
	n         *Native
	df        *dockerfile
	log       *logger
	platform  *v1.Platform
	tmp       string
	context   contextSource
	buildArgs map[string]string
	used      map[string]bool // build args some ARG consumed
	lex       *shell.Lex
	meta      map[string]string // ARGs before the first FROM, plus the platform ARGs
	built     []*stage          // finished stages, by index
}

// metaArgs are the values FROM lines may use: BuildKit's automatic platform ARGs and the
// ARGs declared before the first FROM (a build arg overrides the default).
func (r *run) metaArgs() map[string]string {
	p := r.platform
	m := map[string]string{
		"TARGETPLATFORM": p.OS + "/" + p.Architecture, "TARGETOS": p.OS, "TARGETARCH": p.Architecture,
		"TARGETVARIANT": p.Variant, "BUILDPLATFORM": p.OS + "/" + p.Architecture, "BUILDOS": p.OS,
		"BUILDARCH": p.Architecture, "BUILDVARIANT": p.Variant,
	}
	if p.Variant != "" {
		m["TARGETPLATFORM"] += "/" + p.Variant
		m["BUILDPLATFORM"] += "/" + p.Variant
	}
	for _, a := range r.df.metaArgs {
		for _, kv := range a.Args {
			if v, ok := r.buildArgs[kv.Key]; ok {
				m[kv.Key] = v
				r.used[kv.Key] = true
			} else if kv.Value != nil {
				v, _, err := r.lex.ProcessWord(*kv.Value, envGetter(m, nil))
				if err == nil {
					m[kv.Key] = v
				}
			}
		}
	}
	return m
}

func (r *run) warnUnused() {
	var unused []string
	for k := range r.buildArgs {
		if !r.used[k] {
			unused = append(unused, k)
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		r.log.printf("warning: build args not consumed by any ARG: %s", strings.Join(unused, ", "))
	}
}

// stage is one FROM … section being built.
type stage struct {
	name   string
	base   v1.Image
	cfg    *v1.ConfigFile
	adds   []mutate.Addendum
	hist   []v1.History // the base's history followed by ours
	args   map[string]string
	ix     fsIndex
	mt     types.MediaType // media type for new layers, matching the base's manifest
	final  v1.Image
	cmdSet bool // CMD was given in this stage
}

func (r *run) stage(ctx context.Context, i int) (v1.Image, error) {
	s := r.df.stages[i]
	st, err := r.from(ctx, s, i)
	if err != nil {
		return nil, err
	}
	total := len(s.Commands)
	for j, c := range s.Commands {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		r.log.printf("[stage %d/%d] step %d/%d: %s", i+1, len(r.df.stages), j+1, total, commandText(c))
		if err := r.expand(st, c); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", r.df.name, line(c), err)
		}
		if err := r.apply(ctx, st, c); err != nil {
			return nil, fmt.Errorf("%s:%d: %s: %w", r.df.name, line(c), strings.ToUpper(c.Name()), err)
		}
	}
	img, err := st.finish()
	if err != nil {
		return nil, fmt.Errorf("stage %d: %w", i+1, err)
	}
	r.built = append(r.built, st)
	return img, nil
}

// from starts a stage on scratch, on an earlier stage, or on an image from a registry.
func (r *run) from(ctx context.Context, s instructions.Stage, i int) (*stage, error) {
	baseName, _, err := r.lex.ProcessWord(s.BaseName, envGetter(r.meta, nil))
	if err != nil {
		return nil, fmt.Errorf("%s:%d: FROM: %w", r.df.name, fromLine(s), err)
	}
	st := &stage{name: s.Name, args: map[string]string{}}
	if j, ok := instructions.HasStage(r.df.stages[:i], baseName); ok {
		prev := r.built[j]
		st.base, st.cfg, st.mt = prev.final, prev.cfg.DeepCopy(), prev.mt
		st.hist = append([]v1.History(nil), prev.hist...)
		if prev.ix != nil {
			st.ix = prev.ix.clone()
		}
		return st, nil
	}
	if baseName == "scratch" {
		st.base, st.mt = empty.Image, types.DockerLayer
		st.cfg = &v1.ConfigFile{OS: r.platform.OS, Architecture: r.platform.Architecture, Variant: r.platform.Variant,
			RootFS: v1.RootFS{Type: "layers"}, Config: v1.Config{Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}}}
		return st, nil
	}
	img, err := r.pull(ctx, baseName, s)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("%s:%d: FROM %s: read config: %w", r.df.name, fromLine(s), baseName, err)
	}
	if len(cf.Config.OnBuild) > 0 {
		return nil, fmt.Errorf("%s:%d: FROM %s: the image has ONBUILD triggers, which the native builder cannot run; %s",
			r.df.name, fromLine(s), baseName, useBuildKit)
	}
	mt, err := img.MediaType()
	if err != nil {
		return nil, fmt.Errorf("%s:%d: FROM %s: %w", r.df.name, fromLine(s), baseName, err)
	}
	st.base, st.cfg, st.mt = img, cf.DeepCopy(), types.DockerLayer
	if mt == types.OCIManifestSchema1 {
		st.mt = types.OCILayer
	}
	st.hist = append([]v1.History(nil), cf.History...)
	return st, nil
}

func fromLine(s instructions.Stage) int {
	if len(s.Location) > 0 {
		return s.Location[0].Start.Line
	}
	return 0
}

// pull resolves a base image for the build's platform with the configured credentials.
func (r *run) pull(ctx context.Context, ref string, s instructions.Stage) (v1.Image, error) {
	host := ref
	if i := strings.IndexByte(ref, '/'); i > 0 {
		host = ref[:i]
	}
	parsed, err := name.ParseReference(ref, r.n.reg.nameOptions(host)...)
	if err != nil {
		return nil, fmt.Errorf("%s:%d: FROM %s: %w", r.df.name, fromLine(s), ref, err)
	}
	plat := *r.platform
	if s.Platform != "" {
		pv, _, err := r.lex.ProcessWord(s.Platform, envGetter(r.meta, nil))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: FROM --platform: %w", r.df.name, fromLine(s), err)
		}
		p, err := v1.ParsePlatform(pv)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: FROM --platform %s: %w", r.df.name, fromLine(s), pv, err)
		}
		plat = *p
	}
	src, err := r.n.reg.viaRef(parsed)
	if err != nil {
		return nil, fmt.Errorf("%s:%d: FROM %s: %w", r.df.name, fromLine(s), ref, err)
	}
	if src != parsed {
		r.log.printf("resolving %s for %s from its mirror %s", parsed, plat.String(), src)
	} else {
		r.log.printf("resolving %s for %s", parsed, plat.String())
	}
	img, err := remote.Image(src, append(r.n.reg.remoteOptions(ctx), remote.WithPlatform(plat))...)
	if err != nil {
		return nil, fmt.Errorf("%s:%d: %w", r.df.name, fromLine(s), r.n.reg.explain(err, "FROM: pull", src))
	}
	return img, nil
}

// index returns the stage's file tree, reading the base's layer lists on first use.
func (r *run) index(st *stage) (fsIndex, error) {
	if st.ix == nil {
		ix, err := r.n.indexes.index(st.base)
		if err != nil {
			return nil, fmt.Errorf("list files of the base image: %w", err)
		}
		st.ix = ix
	}
	return st.ix, nil
}

// finish assembles the stage's image: base layers, ours, and the config we built, with
// the fixed creation time that makes rebuilds identical.
func (st *stage) finish() (v1.Image, error) {
	img, err := mutate.Append(st.base, st.adds...)
	if err != nil {
		return nil, fmt.Errorf("append layers: %w", err)
	}
	appended, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cf := st.cfg.DeepCopy()
	cf.RootFS = appended.RootFS
	cf.History = st.hist
	cf.Created = v1.Time{Time: epoch()}
	cf.Container, cf.DockerVersion = "", ""
	cf.Config.Image = ""
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("set config: %w", err)
	}
	st.final = img
	return img, nil
}
