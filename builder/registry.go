package builder

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	dockerconfig "github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Registry is how Slipway talks to registries: credentials from one Docker config file,
// plain HTTP for the hosts marked insecure, retries for transient failures.
type Registry struct {
	config    *configfile.ConfigFile
	insecure  map[string]bool
	mirrors   map[string]string // registry (as name.Registry.RegistryStr) → endpoint host
	transport http.RoundTripper
}

// NewRegistry reads the Docker config named in opts (or the default one) once.
func NewRegistry(opts Options) (*Registry, error) {
	cf, err := loadDockerConfig(opts.DockerConfig)
	if err != nil {
		return nil, err
	}
	r := &Registry{config: cf, insecure: map[string]bool{}, mirrors: map[string]string{}, transport: opts.Transport}
	for _, h := range opts.Insecure {
		r.insecure[h] = true
	}
	for reg, ep := range opts.Mirrors {
		// docker.io and index.docker.io are one registry: key by the library's spelling.
		n, err := name.NewRegistry(reg)
		if err != nil {
			return nil, fmt.Errorf("registry mirror of %q: %w", reg, err)
		}
		r.mirrors[n.RegistryStr()] = ep
	}
	if r.transport == nil {
		r.transport = http.DefaultTransport
	}
	return r, nil
}

func loadDockerConfig(path string) (*configfile.ConfigFile, error) {
	if path == "" {
		// The daemon's own Docker config, as docker and crane would use it.
		cf, err := dockerconfig.Load(dockerconfig.Dir())
		if err != nil {
			return nil, fmt.Errorf("read Docker config in %s: %w", dockerconfig.Dir(), err)
		}
		return cf, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read registry credentials: %w", err)
	}
	defer f.Close()
	cf, err := dockerconfig.LoadFromReader(f)
	if err != nil {
		return nil, fmt.Errorf("read registry credentials %s: %w", path, err)
	}
	cf.Filename = path
	return cf, nil
}

// Resolve implements authn.Keychain over the Docker config file.
func (r *Registry) Resolve(res authn.Resource) (authn.Authenticator, error) {
	ac, err := r.config.GetAuthConfig(res.RegistryStr())
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", res.RegistryStr(), err)
	}
	cfg := authn.AuthConfig{
		Username:      ac.Username,
		Password:      ac.Password,
		Auth:          ac.Auth,
		IdentityToken: ac.IdentityToken,
		RegistryToken: ac.RegistryToken,
	}
	if cfg == (authn.AuthConfig{}) {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(cfg), nil
}

// hasCredentials says whether the config holds anything for host, for error messages.
func (r *Registry) hasCredentials(host string) bool {
	a, err := r.Resolve(registryResource(host))
	return err == nil && a != authn.Anonymous
}

type registryResource string

func (h registryResource) String() string      { return string(h) }
func (h registryResource) RegistryStr() string { return string(h) }

// nameOptions makes references to insecure hosts use plain HTTP.
func (r *Registry) nameOptions(host string) []name.Option {
	if r.insecure[host] {
		return []name.Option{name.Insecure}
	}
	return nil
}

// via is where requests for repo go: the same repository path at the registry's mirror
// endpoint, or repo itself when its registry has no mirror. Names shown to people and
// written into manifests stay repo's.
func (r *Registry) via(repo name.Repository) (name.Repository, error) {
	ep, ok := r.mirrors[repo.RegistryStr()]
	if !ok {
		return repo, nil
	}
	out, err := name.NewRepository(ep+"/"+repo.RepositoryStr(), r.nameOptions(ep)...)
	if err != nil {
		return repo, fmt.Errorf("mirror %s of %s: %w", ep, repo.RegistryStr(), err)
	}
	return out, nil
}

// viaTag is via for a tag.
func (r *Registry) viaTag(t name.Tag) (name.Tag, error) {
	repo, err := r.via(t.Context())
	if err != nil {
		return t, err
	}
	return repo.Tag(t.TagStr()), nil
}

// viaRef is via for a tag or digest reference.
func (r *Registry) viaRef(ref name.Reference) (name.Reference, error) {
	repo, err := r.via(ref.Context())
	if err != nil {
		return ref, err
	}
	if d, ok := ref.(name.Digest); ok {
		return repo.Digest(d.DigestStr()), nil
	}
	return repo.Tag(ref.Identifier()), nil
}

// isInsecure reports whether host is spoken to over plain HTTP.
func (r *Registry) isInsecure(host string) bool { return r.insecure[host] }

// retryCodes are answers worth asking again: the registry or a proxy in front is busy.
var retryCodes = []int{
	http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
	http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout,
}

// remoteOptions are the options of every registry call.
func (r *Registry) remoteOptions(ctx context.Context) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(r),
		remote.WithTransport(r.transport),
		remote.WithUserAgent("slipway"),
		remote.WithRetryBackoff(remote.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 4}),
		remote.WithRetryStatusCodes(retryCodes...),
	}
}

// explain turns a registry failure into a sentence that says what was refused and why;
// authentication failures name the status so nobody has to guess.
func (r *Registry) explain(err error, doing string, ref name.Reference) error {
	if err == nil {
		return nil
	}
	host := ref.Context().RegistryStr()
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			who := "refused the credentials"
			if !r.hasCredentials(host) {
				who = "requires credentials (none in the Docker config)"
			}
			if te.StatusCode == http.StatusForbidden {
				who = "denied access"
			}
			return fmt.Errorf("%s: registry %s %s for %s: %d %s", doing, host, who, ref.Context().Name(),
				te.StatusCode, http.StatusText(te.StatusCode))
		}
	}
	return fmt.Errorf("%s %s: %w", doing, ref, err)
}
