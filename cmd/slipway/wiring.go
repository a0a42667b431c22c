package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/daemon"
	"github.com/slipwayhq/slipway/reconciler/kube"
	"github.com/slipwayhq/slipway/store"
)

// newDaemon wires the parts the verbs share.
func newDaemon(ctx context.Context, path string, log *logrus.Entry) (*daemon.Parts, error) {
	return daemon.Open(ctx, path, log)
}

func openConfigAndStore(ctx context.Context, path string) (*config.Config, store.Store, error) {
	return daemon.OpenConfigAndStore(ctx, path, loggerFrom(ctx))
}

func clusterSpecs(cfg *config.Config) []kube.Spec { return daemon.ClusterSpecs(cfg) }

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
