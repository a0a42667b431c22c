package reconciler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/internal/mask"
	"github.com/slipwayhq/slipway/internal/repofs"
	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/policy"
	"github.com/slipwayhq/slipway/reconciler/apply"
	"github.com/slipwayhq/slipway/render"
	"github.com/slipwayhq/slipway/sources"
	"github.com/slipwayhq/slipway/store"
)

// PreviewRequest asks what merging a pull request would deploy.
type PreviewRequest struct {
	Repo sources.Repo
	// SourceBranch is fetched to get the head; Head is the commit the event named. The
	// newest head of the branch is what is previewed (an older one is superseded).
	SourceBranch string
	Head         string
	// TargetBranch is where the pull request merges: its .pipeline.yaml is what the
	// comment compares with, and GIT_BRANCH is set to it.
	TargetBranch string
	// TrackedBranch is the repository's configured branch, for the trigger's branch filter.
	TrackedBranch string
}

// ErrNotPreviewed says no pipeline of the pull request asks for a preview
// (triggers.pullRequest absent, or its filters do not match).
var ErrNotPreviewed = errors.New("no pipeline previews this pull request")

// Preview is what merging a pull request would deploy, found without applying or pushing.
type Preview struct {
	Commit     sources.Commit // the head previewed
	BaseCommit string         // the target branch's head it was compared with
	// PipelineFileBase and PipelineFileHead are .pipeline.yaml on the target branch and at
	// the head ("" where there is none).
	PipelineFileBase, PipelineFileHead string
	// Invalid is why the head's pipeline file is refused (naming file:line); nothing else
	// is previewed then.
	Invalid   error
	Pipelines []PipelinePreview
	// Secrets are the pipelines' secret values: Mask hides them in every text shown.
	Secrets []string
}

// PipelinePreview is one pipeline's tasks, previewed in stage order.
type PipelinePreview struct {
	Name string
	// BuildID is the BUILD_ID the preview rendered with: the one the pipeline's next run
	// would get if nothing else runs first.
	BuildID int64
	Tasks   []TaskPreview
}

// TaskPreview is what one task would do.
type TaskPreview struct {
	Stage, Name        string
	Type               pipeline.TaskType
	Cluster, Namespace string
	// Image is, for a build-image task, the reference it would push (nothing is built).
	Image string
	// Note says what a preview does not show of this task.
	Note    string
	Objects []apply.ObjectPreview
	// Pruned is what the task's previous revision applied and this one no longer renders:
	// a deploy would delete it (prune: true; a chart's upgrade always does).
	Pruned []store.InventoryEntry
	// Err is why the task would fail: render, policy or dry-run (unmasked: show it through
	// Preview.Mask).
	Err error
}

// Failed says whether the pipeline file or any task would fail.
func (p *Preview) Failed() bool {
	if p.Invalid != nil {
		return true
	}
	for _, pp := range p.Pipelines {
		for _, t := range pp.Tasks {
			if t.Err != nil {
				return true
			}
		}
	}
	return false
}

// Mask hides the values of the pipelines' secrets in s, in every form a run's logs hide
// them (internal/mask: as written, base64, ...).
func (p *Preview) Mask(s string) string {
	if len(p.Secrets) == 0 {
		return s
	}
	return mask.New(p.Secrets...).String(s)
}

// Preview checks out a pull request's head, validates its pipeline file and, for every
// pipeline whose triggers.pullRequest matches, renders each task as a run would (same
// variables, the BUILD_ID the next run would get, secrets), evaluates policy and dry-runs
// the objects against the live clusters. Nothing is applied, built, pushed or recorded.
func (r *Runner) Preview(ctx context.Context, req PreviewRequest) (*Preview, error) {
	head, err := r.sources.Sync(ctx, req.Repo, req.SourceBranch)
	if err != nil {
		return nil, err
	}
	base, err := r.sources.Sync(ctx, req.Repo, req.TargetBranch)
	if err != nil {
		return nil, err
	}
	info, err := r.sources.Commit(ctx, req.Repo, head.Commit)
	if err != nil {
		return nil, err
	}
	pv := &Preview{Commit: info, BaseCommit: base.Commit}
	ws, err := os.MkdirTemp(r.workRoot(), "preview-")
	if err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	defer os.RemoveAll(ws)
	headDir, baseDir := filepath.Join(ws, "head"), filepath.Join(ws, "base")
	if err := r.sources.Checkout(ctx, req.Repo, info.Hash, headDir); err != nil {
		return nil, err
	}
	if err := r.sources.Checkout(ctx, req.Repo, base.Commit, baseDir); err != nil {
		return nil, err
	}
	pv.PipelineFileHead = readOptional(filepath.Join(headDir, pipelineFile))
	pv.PipelineFileBase = readOptional(filepath.Join(baseDir, pipelineFile))
	changed, err := r.sources.ChangedPaths(ctx, req.Repo, base.Commit, info.Hash)
	if err != nil {
		return nil, err
	}
	ev := pipeline.Event{Kind: pipeline.EventPullRequest, Branch: req.TargetBranch, TrackedBranch: req.TrackedBranch, ChangedPaths: changed}
	limits := r.limitsOf(req.Repo.Name)
	load := func(dir string) ([]*pipeline.Pipeline, error) {
		repo, err := repofs.Open(dir)
		if err != nil {
			return nil, err
		}
		defer repo.Close()
		return pipeline.LoadFile(repo, pipelineFile, pipelineFile, pipeline.Options{Env: r.config, Repo: repo, Limits: limits})
	}
	ps, err := load(headDir)
	if err != nil {
		// An invalid file is reported when the target branch's file asks for previews: a
		// pull request that breaks the pipeline file is exactly what a preview is for.
		if baseps, berr := load(baseDir); berr != nil || len(matching(baseps, ev)) == 0 {
			return nil, ErrNotPreviewed
		}
		pv.Invalid = err
		return pv, nil
	}
	wanted := matching(ps, ev)
	if len(wanted) == 0 {
		return nil, ErrNotPreviewed
	}
	co := &Checkout{Repo: req.Repo, Branch: req.TargetBranch, Commit: info, Pipelines: wanted}
	for _, p := range wanted {
		pp, err := r.previewPipeline(ctx, co, p, headDir, pv)
		if err != nil {
			return nil, err
		}
		pv.Pipelines = append(pv.Pipelines, pp)
	}
	return pv, nil
}

// matching is the pipelines whose pullRequest trigger matches ev.
func matching(ps []*pipeline.Pipeline, ev pipeline.Event) []*pipeline.Pipeline {
	var out []*pipeline.Pipeline
	for _, p := range ps {
		if ok, _ := pipeline.Match(p, ev); ok {
			out = append(out, p)
		}
	}
	return out
}

func readOptional(path string) string {
	b, err := os.ReadFile(filepath.Clean(path))
	if err != nil {
		return ""
	}
	return string(b)
}

// previewPipeline renders one pipeline's tasks in stage order; a task's error is its
// preview's, and later tasks are still previewed.
func (r *Runner) previewPipeline(ctx context.Context, co *Checkout, p *pipeline.Pipeline, dir string, pv *Preview) (PipelinePreview, error) {
	ref := store.PipelineRef{Repository: co.Repo.Name, Name: p.Name}
	next := int64(1)
	switch sp, err := r.store.GetPipeline(ctx, ref); {
	case err == nil:
		next = sp.LastBuildID + 1
	case !errors.Is(err, store.ErrNotFound):
		return PipelinePreview{}, err
	}
	run := store.Run{Pipeline: ref, BuildID: next, Commit: co.Commit.Hash, Branch: co.Branch, Trigger: store.TriggerPullRequest}
	log := r.log.WithFields(logrus.Fields{"pipeline": p.Name, "preview": co.Commit.ShortHash})
	rc := &runContext{run: run, pipeline: p, checkout: co, log: log, store: r.store, state: &RunState{}, preview: true,
		limits: r.limitsOf(co.Repo.Name)}
	repo, err := repofs.Open(dir)
	if err != nil {
		return PipelinePreview{}, err
	}
	defer repo.Close()
	rc.repo = repo
	if err := r.resolveVars(ctx, rc, co, p); err != nil {
		return PipelinePreview{Name: p.Name, BuildID: next, Tasks: []TaskPreview{{Name: "variables and secrets", Err: err}}}, nil
	}
	pv.Secrets = append(pv.Secrets, rc.secrets...)
	pp := PipelinePreview{Name: p.Name, BuildID: next}
	// The check a run makes before its first stage: its targets against the grants.
	if err := policy.CheckRun(r.config, ref.Repository, p); err != nil {
		pp.Tasks = append(pp.Tasks, TaskPreview{Name: "policy", Note: "the check before the first stage", Err: err})
	}
	for _, st := range p.Stages {
		for _, t := range st.Tasks {
			tp := TaskPreview{Stage: st.Name, Name: t.Name, Type: t.Type}
			if err := r.previewTask(ctx, rc, t, &tp); err != nil {
				if ctx.Err() != nil {
					return pp, ctx.Err()
				}
				tp.Err = err
			}
			pp.Tasks = append(pp.Tasks, tp)
		}
	}
	return pp, nil
}

// previewOutput stands in for a script's outputs in a preview.
const previewOutput = "not-run-in-preview"

// previewTask fills tp with what task t would do.
func (r *Runner) previewTask(ctx context.Context, rc *runContext, t pipeline.Task, tp *TaskPreview) error {
	tl := rc.taskLog(t.Name)
	switch t.Type {
	case pipeline.TypeBuildImage:
		req, err := r.imageRequest(rc, t.Name, t.BuildImage, tl)
		if err != nil {
			return err
		}
		tp.Image = req.Reference()
		tp.Note = "not built: a preview pushes nothing"
		// Later tasks see the reference the build would report; there is no digest to pin.
		rc.setOutputs(t.Name, map[string]string{"image": tp.Image, "digest": ""})
		return nil
	case pipeline.TypeDeployYAML:
		y := t.DeployYAML
		tp.Cluster, tp.Namespace = y.Cluster, y.Namespace
		ms, err := r.renderYAML(ctx, rc, deployKey(t.Name, y.Environment), y, tl)
		if err != nil {
			return err
		}
		return r.previewObjects(ctx, rc, t.Name, y.Cluster, ms, y.Prune == nil || *y.Prune, tp)
	case pipeline.TypeDeployChart:
		c := t.DeployChart
		tp.Cluster, tp.Namespace = c.Cluster, c.Namespace
		cr, err := r.openChartRelease(ctx, rc, deployKey(t.Name, c.Environment), c, true, tl)
		if err != nil {
			return err
		}
		ms, err := r.checkChartPolicy(ctx, rc, t.Name, c, cr.cluster, cr.release, cr.chart, cr.values, cr.state.Last != nil, tl)
		if err != nil {
			return err
		}
		// Helm deletes what the release no longer renders on every upgrade.
		return r.previewObjects(ctx, rc, t.Name, c.Cluster, ms, true, tp)
	case pipeline.TypePublishChart:
		tp.Note = "not published: a preview pushes nothing"
		return nil
	case pipeline.TypeScript:
		// A pull request's scripts are untrusted code: a preview never runs them, so what
		// later tasks render is the checkout without the script's edits.
		tp.Note = "not run: a preview runs no scripts; later tasks render the checkout without its edits, its outputs as " + previewOutput
		outs := make(map[string]string, len(t.Script.Outputs))
		for _, k := range t.Script.Outputs {
			outs[k] = previewOutput
		}
		rc.setOutputs(t.Name, outs)
		return nil
	default:
		tp.Note = "not previewed: this task type does not run in this version"
		return nil
	}
}

// previewObjects plans and dry-runs rendered objects as a deploy of the task would, and
// lists what its previous revision has that they do not.
func (r *Runner) previewObjects(ctx context.Context, rc *runContext, task, cluster string, ms []render.Manifest, prune bool, tp *TaskPreview) error {
	cl, err := r.clusters.Get(ctx, cluster)
	if err != nil {
		return err
	}
	ap := &apply.Applier{Cluster: cl, Log: rc.log.WithField("task", task), Slots: r.slots, Cache: cl}
	previous, err := r.lastInventory(ctx, rc.run.Pipeline, task, cluster)
	if err != nil {
		return err
	}
	plan, err := ap.Plan(ctx, ms, ownerOf(rc.run.Pipeline, task), previous)
	if err != nil {
		return err
	}
	if tp.Objects, err = ap.Preview(ctx, plan); err != nil {
		return err
	}
	if !prune {
		return nil
	}
	keep := map[string]bool{}
	for _, o := range tp.Objects {
		keep[o.Entry.Key()] = true
	}
	for _, e := range previous {
		if !keep[e.Key()] {
			tp.Pruned = append(tp.Pruned, e)
		}
	}
	return nil
}
