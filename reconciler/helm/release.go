// Package helm installs, upgrades, rolls back and unlocks Helm releases with the Helm v3
// SDK. Release history lives in Secrets (Helm's default "secret" driver), so `helm list`
// and `helm history` show Slipway's releases exactly as they show the CLI's own.
package helm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"

	"github.com/slipwayhq/slipway/reconciler/apply"
	"github.com/slipwayhq/slipway/reconciler/kube"
)

// Release is one named release in one namespace of one cluster.
type Release struct {
	Name       string
	Namespace  string
	MaxHistory int
	// Owner's label and annotation are put on every object the release's installs and
	// upgrades render (by a post-renderer, so they are in the stored manifest too): the
	// drift watcher selects on the label like it does for YAML deploys.
	Owner apply.Owner
	cfg   *action.Configuration
}

// Open prepares the Helm actions for release name in namespace; logf receives Helm's own
// debug lines.
func Open(cl *kube.Cluster, namespace, name string, maxHistory int, logf func(string, ...any)) (*Release, error) {
	cfg := new(action.Configuration)
	getter := &restGetter{config: cl.Config, namespace: namespace}
	if err := cfg.Init(getter, namespace, "secret", logf); err != nil {
		return nil, fmt.Errorf("helm on cluster %s: %w", cl.Name, err)
	}
	return &Release{Name: name, Namespace: namespace, MaxHistory: maxHistory, cfg: cfg}, nil
}

// State is what Helm storage says about the release before Slipway acts.
type State struct {
	Last     *release.Release // newest revision, nil when the release does not exist
	Deployed *release.Release // the revision currently deployed, nil when none is
	Unlocked int              // revision found pending-* and marked failed, 0 when none was
}

// Prepare reads the release's state. A revision left pending-* (the process that ran it
// died) would make every later action fail with "another operation is in progress", so it
// is marked failed here: Slipway serialises the runs of a pipeline, so nobody else is
// working on it.
func (r *Release) Prepare(ctx context.Context) (State, error) {
	st, err := r.State(ctx)
	if err != nil || st.Last == nil || !st.Last.Info.Status.IsPending() {
		return st, err
	}
	last := st.Last
	was := last.Info.Status
	last.SetStatus(release.StatusFailed, fmt.Sprintf("Slipway found this revision %s with no operation running and marked it failed", was))
	if err := r.cfg.Releases.Update(last); err != nil {
		return st, fmt.Errorf("unlock release %s/%s revision %d (%s): %w", r.Namespace, r.Name, last.Version, was, err)
	}
	st.Unlocked = last.Version
	return st, nil
}

// State reads the release's state and changes nothing (previews use it; a pending
// revision is left to the next deploy's Prepare).
func (r *Release) State(ctx context.Context) (State, error) {
	if err := ctx.Err(); err != nil {
		return State{}, err
	}
	var st State
	last, err := r.cfg.Releases.Last(r.Name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read release %s/%s: %w", r.Namespace, r.Name, err)
	}
	st.Last = last
	deployed, err := r.cfg.Releases.Deployed(r.Name)
	if err != nil && !errors.Is(err, driver.ErrNoDeployedReleases) {
		return st, fmt.Errorf("read release %s/%s: %w", r.Namespace, r.Name, err)
	}
	st.Deployed = deployed
	return st, nil
}

// Install installs the release without Helm's own wait: health is judged by the caller.
func (r *Release) Install(ctx context.Context, ch *chart.Chart, values map[string]any, timeout time.Duration) (*release.Release, error) {
	in := action.NewInstall(r.cfg)
	in.ReleaseName, in.Namespace, in.Timeout = r.Name, r.Namespace, timeout
	in.PostRenderer = newOwnerRenderer(r.Owner, r.Name, r.Namespace)
	rel, err := in.RunWithContext(ctx, ch, values)
	if err != nil {
		return rel, fmt.Errorf("helm install %s/%s: %w", r.Namespace, r.Name, err)
	}
	return rel, nil
}

// Upgrade upgrades the release, keeping at most MaxHistory revisions.
func (r *Release) Upgrade(ctx context.Context, ch *chart.Chart, values map[string]any, timeout time.Duration) (*release.Release, error) {
	up := action.NewUpgrade(r.cfg)
	up.Namespace, up.MaxHistory, up.Timeout = r.Namespace, r.MaxHistory, timeout
	up.PostRenderer = newOwnerRenderer(r.Owner, r.Name, r.Namespace)
	rel, err := up.RunWithContext(ctx, r.Name, ch, values)
	if err != nil {
		return rel, fmt.Errorf("helm upgrade %s/%s: %w", r.Namespace, r.Name, err)
	}
	return rel, nil
}

// MarkFailed records that a revision Helm deployed did not become healthy, so `helm
// history` tells the truth about it.
func (r *Release) MarkFailed(rel *release.Release, reason string) error {
	rel.SetStatus(release.StatusFailed, reason)
	if err := r.cfg.Releases.Update(rel); err != nil {
		return fmt.Errorf("mark release %s/%s revision %d failed: %w", r.Namespace, r.Name, rel.Version, err)
	}
	return nil
}

// Rollback rolls the release back to revision to and returns the new revision. Helm's
// rollback takes no context, so cancellation is checked before it starts.
func (r *Release) Rollback(ctx context.Context, to int, timeout time.Duration) (*release.Release, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if _, err := r.cfg.Releases.Get(r.Name, to); err != nil {
		return nil, fmt.Errorf("roll back %s/%s: revision %d is not in Helm storage: %w", r.Namespace, r.Name, to, err)
	}
	rb := action.NewRollback(r.cfg)
	rb.Version, rb.MaxHistory, rb.Timeout = to, r.MaxHistory, timeout
	if err := rb.Run(r.Name); err != nil {
		return nil, fmt.Errorf("helm rollback %s/%s to revision %d: %w", r.Namespace, r.Name, to, err)
	}
	rel, err := r.cfg.Releases.Last(r.Name)
	if err != nil {
		return nil, fmt.Errorf("read release %s/%s after rollback: %w", r.Namespace, r.Name, err)
	}
	return rel, nil
}

// Uninstall removes the release and its history. Helm's uninstall takes no context, so
// it runs even when the run's context is done: it is the clean-up of a failed install.
func (r *Release) Uninstall(timeout time.Duration) error {
	un := action.NewUninstall(r.cfg)
	un.Timeout = timeout
	if _, err := un.Run(r.Name); err != nil {
		return fmt.Errorf("helm uninstall %s/%s: %w", r.Namespace, r.Name, err)
	}
	return nil
}
