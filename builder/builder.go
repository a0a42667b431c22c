// Package build turns Dockerfiles into images in a registry: an embedded builder for
// Dockerfiles without RUN (native, go-containerregistry) and a client for a buildkitd
// (buildkit). It also owns registry access (credentials, plain-HTTP hosts, retries, auth
// errors) and tag retention. It never deploys anything.
package builder

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Builder builds one image and pushes it. The reconciler declares its own copy of this
// one-method interface; this one exists so New has something to return.
type Builder interface {
	Build(ctx context.Context, req Request) (Result, error)
}

// Request is one build-image task, with every ${...} already substituted.
type Request struct {
	Root       string            // the checkout; no path below may leave it
	Dockerfile string            // relative to Root; default "Dockerfile"
	Context    string            // relative to Root; default: the Dockerfile's folder
	Registry   string            // host[:port]
	Workspace  string            // registry namespace ("工作空间", a Harbor project); may be empty
	Image      string            // repository name inside the workspace
	Tag        string            // e.g. alpha-7
	ExtraTags  []string          // more tags for the same image, e.g. latest
	BuildArgs  map[string]string // ARG values
	Target     string            // stage to stop at; default the last one
	Platform   string            // os/arch[/variant]; default linux/amd64
	Secrets    []string          // values never to show in logs or errors (secret build args)
	Log        func(line string) // receives progress, one line at a time; may be nil
}

// Result says what was pushed.
type Result struct {
	Image  string   // repo:tag, e.g. 127.0.0.1:5000/devops/jack-2048:alpha-7
	Digest string   // sha256:… of the pushed manifest (or index)
	Tags   []string // every tag pushed, Tag first
}

// Pinned is repo:tag@digest, the reference that cannot move.
func (r Result) Pinned() string { return r.Image + "@" + r.Digest }

// Options configures a builder from slipway.yaml (builder and registry sections).
type Options struct {
	Type         string   // "native" (default) or "buildkit"
	Address      string   // buildkitd address, for buildkit
	DockerConfig string   // Docker config.json with credentials; empty: $DOCKER_CONFIG or ~/.docker
	Insecure     []string // registry hosts spoken to over plain HTTP
	// Mirrors sends every request for a registry (key, host[:port]; docker.io for Docker
	// Hub) to an endpoint (value) with the same repository paths. Image names keep the
	// registry: results, logs and manifests show it, never the endpoint.
	Mirrors map[string]string
	// Transport carries every registry request of the native builder and of retention;
	// nil means http.DefaultTransport. Tests use it to count uploads.
	Transport http.RoundTripper
}

// New returns the builder that opts.Type names.
func New(opts Options) (Builder, error) {
	reg, err := NewRegistry(opts)
	if err != nil {
		return nil, err
	}
	switch opts.Type {
	case "", "native":
		return NewNative(reg), nil
	case "buildkit":
		return NewBuildKit(opts.Address, reg)
	default:
		return nil, fmt.Errorf("builder type %q: want native or buildkit", opts.Type)
	}
}

// DefaultPlatform is what an image is built for when the task names no platform.
const DefaultPlatform = "linux/amd64"

// repository is the target repository without a tag: registry/workspace/image.
func (r Request) repository() string { return ImageRepository(r.Registry, r.Workspace, r.Image) }

// ImageRepository is where a build-image task pushes, without a tag: registry/workspace/image.
func ImageRepository(registry, workspace, image string) string {
	parts := []string{registry}
	if w := strings.Trim(workspace, "/"); w != "" {
		parts = append(parts, w)
	}
	return strings.Join(append(parts, image), "/")
}

// ChartRepositoryPath is where publish-chart pushes chart name in repository (oci://HOST/PATH),
// as HOST/PATH/NAME.
func ChartRepositoryPath(repository, chart string) string {
	repo := strings.TrimSuffix(strings.TrimPrefix(repository, "oci://"), "/")
	return repo + "/" + chart
}

// Reference is the image reference the build pushes first: registry/workspace/image:tag,
// as Result.Image reports it after the push.
func (r Request) Reference() string { return r.repository() + ":" + r.Tag }

// tags parses every target reference, Tag first, for the registry options in reg.
func (r Request) tags(reg *Registry) ([]name.Tag, error) {
	if r.Registry == "" {
		return nil, fmt.Errorf("no registry for image %s (set registry on the task or registry.default in slipway.yaml)", r.Image)
	}
	if r.Image == "" || r.Tag == "" {
		return nil, fmt.Errorf("image and tag are required")
	}
	var out []name.Tag
	seen := map[string]bool{}
	for _, t := range append([]string{r.Tag}, r.ExtraTags...) {
		if seen[t] {
			continue
		}
		seen[t] = true
		ref, err := name.NewTag(r.repository()+":"+t, reg.nameOptions(r.Registry)...)
		if err != nil {
			return nil, fmt.Errorf("image reference %s:%s: %w", r.repository(), t, err)
		}
		out = append(out, ref)
	}
	return out, nil
}

func (r Request) platform() string {
	if r.Platform == "" {
		return DefaultPlatform
	}
	return r.Platform
}
