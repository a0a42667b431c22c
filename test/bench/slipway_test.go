package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"

	"github.com/slipwayhq/slipway/reconciler/apply"
	"github.com/slipwayhq/slipway/reconciler/kube"
	"github.com/slipwayhq/slipway/render"
	"github.com/slipwayhq/slipway/store"
)

var benchPipeline = store.PipelineRef{Repository: "bench", Name: "bench"}

const benchTask = "deploy"

// runSlipway drives the deploy-yaml task's cluster path as deployYAML does (render, set
// namespaces, encode, plan, dry-run, apply, prune, save the revision), without the health
// wait. The cluster connection, the store and the watches of the owned objects' kinds are
// opened first, as the daemon keeps them: its drift watching and health waits watch every
// kind a revision applied, and its plans read those caches instead of listing.
func runSlipway(ctx context.Context, in childInput) (childResult, error) {
	counter := newRequestCounter()
	cl, err := kube.Connect(ctx, kube.Spec{Name: "bench", Kubeconfig: in.kubeconfig, WrapTransport: counter.wrap})
	if err != nil {
		return childResult{}, err
	}
	// A daemon's cached cluster has discovered these kinds long before a deploy, and watches
	// the owned objects of every kind but the namespaces.
	var synced []cache.InformerSynced
	for _, gk := range []schema.GroupKind{{Kind: "ConfigMap"}, {Kind: "Service"}, {Group: "apps", Kind: "Deployment"}, {Kind: "Namespace"}} {
		m, err := cl.Mapper.RESTMapping(gk)
		if err != nil {
			return childResult{}, fmt.Errorf("discover %s: %w", gk, err)
		}
		if gk.Kind != "Namespace" {
			synced = append(synced, cl.Informers.For(m.Resource, kube.OwnedSelector).HasSynced)
		}
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return childResult{}, fmt.Errorf("watch the owned objects: %w", ctx.Err())
	}
	st, err := store.Open(ctx, "sqlite://"+in.store)
	if err != nil {
		return childResult{}, err
	}
	defer st.Close()
	run, err := st.CreateRun(ctx, store.NewRun{Pipeline: benchPipeline, Commit: "bench", Branch: "main", Trigger: store.TriggerManual})
	if err != nil {
		return childResult{}, err
	}
	log := logrus.New()
	log.SetOutput(os.Stderr)
	ap := &apply.Applier{Cluster: cl, Log: logrus.NewEntry(log), Cache: cl}
	owner := apply.OwnerOf(store.TaskRef{Pipeline: benchPipeline, Task: benchTask})
	counter.reset()

	start := time.Now()
	phases := map[string]float64{}
	lap := start
	phase := func(name string) {
		now := time.Now()
		phases[name] += now.Sub(lap).Seconds()
		lap = now
	}
	ms, err := loadManifests(in.dir)
	if err != nil {
		return childResult{}, fmt.Errorf("render: %w", err)
	}
	if err := render.SetNamespaces(ms, cl, render.NamespaceOptions{Namespace: in.namespaces[0], AllowNamespaces: in.namespaces}); err != nil {
		return childResult{}, fmt.Errorf("render: %w", err)
	}
	// The revision stores the objects as deployYAML encodes them.
	objects, err := render.EncodeManifests(ms)
	if err != nil {
		return childResult{}, fmt.Errorf("render: %w", err)
	}
	phase("render")
	previous, err := lastInventory(ctx, st)
	if err != nil {
		return childResult{}, err
	}
	phase("store")
	plan, err := ap.Plan(ctx, ms, owner, previous)
	if err != nil {
		return childResult{}, err
	}
	phase("plan")
	if err := ap.DryRun(ctx, plan); err != nil {
		return childResult{}, err
	}
	phase("dry-run")
	res, err := ap.Apply(ctx, plan)
	if err != nil {
		return childResult{}, err
	}
	phase("apply")
	deleted, kept, err := ap.Prune(ctx, previous, res.Inventory, owner)
	if err != nil || len(deleted)+len(kept) > 0 {
		return childResult{}, fmt.Errorf("prune: %d deleted, %d kept, %v; want nothing to prune", len(deleted), len(kept), err)
	}
	if _, err := st.SaveRevision(ctx, store.NewRevision{
		Pipeline: benchPipeline, BuildID: run.BuildID, Task: benchTask, Cluster: "bench", Namespace: in.namespaces[0],
		Kind: store.DeployYAML, Objects: objects, Inventory: res.Inventory, Status: store.RevisionApplied,
	}); err != nil {
		return childResult{}, err
	}
	phase("store")
	wall := time.Since(start)

	actions := map[string]int{}
	for _, c := range res.Changes {
		actions[c.Action]++
	}
	return childResult{WallSeconds: wall.Seconds(), Requests: counter.snapshot(), Actions: actions, Phases: phases}, nil
}

func lastInventory(ctx context.Context, st store.Store) ([]store.InventoryEntry, error) {
	rev, err := st.LatestRevision(ctx, benchPipeline, benchTask, store.RevisionApplied)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return rev.Inventory, nil
}
