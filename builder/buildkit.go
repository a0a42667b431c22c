package builder

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
	"github.com/moby/buildkit/util/progress/progressui"
	"github.com/tonistiigi/fsutil"
	"golang.org/x/sync/errgroup"
)

// BuildKit builds with a buildkitd: full Dockerfiles, RUN included. The checkout's context
// and Dockerfile folder are sent as local mounts; buildkitd pulls and pushes itself, asking
// this process for credentials from the Docker config.
type BuildKit struct {
	address string
	reg     *Registry
}

// NewBuildKit returns a builder for the buildkitd at address (unix://, tcp://).
func NewBuildKit(address string, reg *Registry) (*BuildKit, error) {
	if address == "" {
		return nil, fmt.Errorf("builder type buildkit needs builder.address (e.g. tcp://buildkitd:1234)")
	}
	return &BuildKit{address: address, reg: reg}, nil
}

// Build implements Builder.
func (b *BuildKit) Build(ctx context.Context, req Request) (Result, error) {
	log := newLogger(req)
	res, err := b.build(ctx, req, log)
	log.flush()
	return res, log.maskErr(err)
}

func (b *BuildKit) build(ctx context.Context, req Request, log *logger) (Result, error) {
	src, err := resolveSources(req)
	if err != nil {
		return Result{}, err
	}
	tags, err := req.tags(b.reg)
	if err != nil {
		return Result{}, err
	}
	ctxFS, err := fsutil.NewFS(src.context)
	if err != nil {
		return Result{}, fmt.Errorf("context: %w", err)
	}
	dfFS, err := fsutil.NewFS(filepath.Dir(src.dockerfile))
	if err != nil {
		return Result{}, fmt.Errorf("dockerfile folder: %w", err)
	}
	c, err := client.New(ctx, b.address)
	if err != nil {
		return Result{}, fmt.Errorf("connect to buildkitd %s: %w", b.address, err)
	}
	defer c.Close()

	attrs := map[string]string{"filename": filepath.Base(src.dockerfile), "platform": req.platform()}
	if req.Target != "" {
		attrs["target"] = req.Target
	}
	for k, v := range req.BuildArgs {
		attrs["build-arg:"+k] = v
	}
	// buildkitd pushes to the mirror's names; the result names the registry as written.
	names := make([]string, len(tags))
	insecure := false
	for i, t := range tags {
		dst, err := b.reg.viaTag(t)
		if err != nil {
			return Result{}, err
		}
		names[i] = dst.String()
		insecure = insecure || b.reg.isInsecure(dst.RegistryStr())
	}
	export := map[string]string{"name": strings.Join(names, ","), "push": "true"}
	if insecure {
		export["registry.insecure"] = "true"
	}
	opt := client.SolveOpt{
		Frontend:      "dockerfile.v0",
		FrontendAttrs: attrs,
		LocalMounts:   map[string]fsutil.FS{"context": ctxFS, "dockerfile": dfFS},
		Exports:       []client.ExportEntry{{Type: client.ExporterImage, Attrs: export}},
		Session:       []session.Attachable{b.reg.BuildKitAuth()},
	}
	display, err := progressui.NewDisplay(log, progressui.PlainMode)
	if err != nil {
		return Result{}, err
	}
	status := make(chan *client.SolveStatus)
	var resp *client.SolveResponse
	eg, egctx := errgroup.WithContext(ctx)
	eg.Go(func() error {
		var err error
		resp, err = c.Solve(egctx, nil, opt, status)
		return err
	})
	eg.Go(func() error {
		_, err := display.UpdateFrom(context.WithoutCancel(egctx), status)
		return err
	})
	if err := eg.Wait(); err != nil {
		return Result{}, explainBuildKit(err, src.dfRel)
	}
	digest := resp.ExporterResponse[exptypes.ExporterImageDigestKey]
	if digest == "" {
		return Result{}, fmt.Errorf("buildkitd pushed %s but reported no digest", names[0])
	}
	res := Result{Image: tags[0].String(), Digest: digest}
	for _, t := range tags {
		res.Tags = append(res.Tags, t.TagStr())
	}
	log.printf("pushed %s@%s (tags: %v)", res.Image, res.Digest, res.Tags)
	return res, nil
}

// buildkitdAuth finds the registry and status in buildkitd's words for a refused request.
var buildkitdAuth = regexp.MustCompile(`request to https?://([^/]+)/v2/(.+?)/(?:manifests|blobs)/\S*: (401 Unauthorized|403 Forbidden)`)

// explainBuildKit puts an authentication failure in the same words the native builder
// uses, ahead of buildkitd's own message.
func explainBuildKit(err error, dockerfile string) error {
	if m := buildkitdAuth.FindStringSubmatch(err.Error()); m != nil {
		who := "refused the credentials"
		if strings.HasPrefix(m[3], "403") {
			who = "denied access"
		}
		return fmt.Errorf("buildkit build of %s: registry %s %s for %s/%s: %s (%w)", dockerfile, m[1], who, m[1], m[2], m[3], err)
	}
	return fmt.Errorf("buildkit build of %s: %w", dockerfile, err)
}

// BuildKitAuth answers buildkitd's credential requests from the Docker config Slipway
// uses for every registry, for other BuildKit solves than image builds (script steps).
func (r *Registry) BuildKitAuth() session.Attachable {
	return authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
		AuthConfigProvider: authprovider.LoadAuthConfig(r.config),
	})
}

// PullName is where buildkitd pulls image ref from: the same repository at its registry's
// mirror when slipway.yaml maps one, or ref itself.
func (r *Registry) PullName(ref string) (string, error) {
	parsed, err := name.ParseReference(ref, name.WeakValidation)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", ref, err)
	}
	via, err := r.viaRef(parsed)
	if err != nil {
		return "", err
	}
	return via.Name(), nil
}
