package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/build"
	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/reconciler/kube"
	"github.com/slipwayhq/slipway/sources"
	"github.com/slipwayhq/slipway/store"
)

// daemon is the wired set of parts the run, serve, history and logs verbs share.
type daemon struct {
	cfg     *config.Config
	store   store.Store
	mirrors *sources.Mirrors
	runner  *reconciler.Runner
}

func openConfigAndStore(ctx context.Context, path string) (*config.Config, store.Store, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, err
	}
	st, err := store.Open(ctx, cfg.Store)
	if err != nil {
		return nil, nil, fmt.Errorf("open store: %w", err)
	}
	return cfg, st, nil
}

func newDaemon(ctx context.Context, path string, log *logrus.Entry) (*daemon, error) {
	cfg, st, err := openConfigAndStore(ctx, path)
	if err != nil {
		return nil, err
	}
	mirrors, err := sources.New(sources.Options{DataDir: cfg.DataDir, Log: log})
	if err != nil {
		st.Close()
		return nil, err
	}
	buildOpts := build.Options{Type: cfg.Builder.Type, Address: cfg.Builder.Address,
		DockerConfig: cfg.Registry.DockerConfig, Insecure: cfg.Registry.Insecure}
	builder, err := build.New(buildOpts)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("image builder: %w", err)
	}
	registry, err := build.NewRegistry(buildOpts)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("registry: %w", err)
	}
	return &daemon{cfg: cfg, store: st, mirrors: mirrors, runner: &reconciler.Runner{
		Store: st, Sources: mirrors, Clusters: kube.NewClusters(clusterSpecs(cfg)), Config: cfg, Log: log,
		Builder: builder, Tags: registry,
	}}, nil
}

// clusterSpecs says how to reach the configured clusters.
func clusterSpecs(cfg *config.Config) []kube.Spec {
	specs := make([]kube.Spec, 0, len(cfg.Clusters))
	for _, c := range cfg.Clusters {
		specs = append(specs, kube.Spec{Name: c.Name, Kubeconfig: c.Kubeconfig, Context: c.Context, InCluster: c.InCluster})
	}
	return specs
}

func (d *daemon) Close() error { return d.store.Close() }

// repository finds a configured repository by name or URL and loads its credentials.
func (d *daemon) repository(nameOrURL string) (config.Repository, sources.Repo, error) {
	for _, r := range d.cfg.Repositories {
		if r.Name == nameOrURL || strings.TrimSuffix(r.URL, "/") == strings.TrimSuffix(nameOrURL, "/") {
			src, err := sourceRepo(r)
			return r, src, err
		}
	}
	return config.Repository{}, sources.Repo{}, fmt.Errorf("repository %q is not in %s (repositories need a name, url, branch and credentials there)", nameOrURL, d.cfg.File)
}

func sourceRepo(r config.Repository) (sources.Repo, error) {
	src := sources.Repo{Name: r.Name, URL: r.URL}
	if r.Auth != nil {
		auth, err := sources.LoadAuth(sources.AuthFiles{
			UsernameFile: r.Auth.UsernameFile, PasswordFile: r.Auth.PasswordFile, TokenFile: r.Auth.TokenFile,
			SSHKeyFile: r.Auth.SSHKeyFile, KnownHostsFile: r.Auth.KnownHostsFile,
		})
		if err != nil {
			return src, fmt.Errorf("repository %s credentials: %w", r.Name, err)
		}
		src.Auth = auth
	}
	return src, nil
}

// openPipeline opens the store named by the configuration and resolves a pipeline in it.
func openPipeline(ctx context.Context, cfgPath, arg string) (store.Store, store.PipelineRef, error) {
	_, st, err := openConfigAndStore(ctx, cfgPath)
	if err != nil {
		return nil, store.PipelineRef{}, err
	}
	ref, err := pipelineRef(ctx, st, arg)
	if err != nil {
		st.Close()
		return nil, store.PipelineRef{}, err
	}
	return st, ref, nil
}

// pipelineRef resolves PIPELINE or REPOSITORY/PIPELINE to the stored pipeline.
func pipelineRef(ctx context.Context, st store.Store, arg string) (store.PipelineRef, error) {
	if repo, name, ok := strings.Cut(arg, "/"); ok {
		return store.PipelineRef{Repository: repo, Name: name}, nil
	}
	all, err := st.ListPipelines(ctx)
	if err != nil {
		return store.PipelineRef{}, err
	}
	var found []store.PipelineRef
	for _, p := range all {
		if p.Ref.Name == arg {
			found = append(found, p.Ref)
		}
	}
	switch len(found) {
	case 0:
		return store.PipelineRef{}, fmt.Errorf("no runs of pipeline %q recorded", arg)
	case 1:
		return found[0], nil
	default:
		return store.PipelineRef{}, fmt.Errorf("pipeline %q exists in several repositories: name it as REPOSITORY/%s", arg, arg)
	}
}
