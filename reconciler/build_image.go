package reconciler

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/slipwayhq/slipway/builder"
	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/render"
	"github.com/slipwayhq/slipway/store"
)

// ImageBuilder builds and pushes an image (native or BuildKit, chosen in slipway.yaml).
type ImageBuilder interface {
	Build(ctx context.Context, req builder.Request) (builder.Result, error)
}

// TagPruner deletes old tags of an image repository.
type TagPruner interface {
	RetainTags(ctx context.Context, repo, tagTemplate string, keep int, protected map[string]bool) (builder.RetentionResult, error)
}

// buildImage builds the task's Dockerfile, pushes it, records the image and digest as the
// task's outputs, and applies the tag retention.
func (r *Runner) buildImage(ctx context.Context, rc *runContext, task string, t *pipeline.BuildImageTask, tl *taskLog) (map[string]string, error) {
	if r.builder == nil {
		return nil, errors.New("no image builder is configured")
	}
	req, err := r.imageRequest(rc, t, tl)
	if err != nil {
		return nil, err
	}
	res, err := r.builder.Build(ctx, req)
	if err != nil {
		return nil, err
	}
	outputs := map[string]string{"image": res.Image, "digest": res.Digest}
	if t.Keep > 0 {
		// The tag this run replaces is deployed until the run's deploys are done, so
		// retention waits for the end of a successful run.
		rc.afterSuccess(func(ctx context.Context) {
			if err := r.retainTags(ctx, rc, res, t, tl); err != nil {
				tl.Printf("retention failed: %v", err)
			}
			tl.flush(ctx)
		})
	}
	return outputs, nil
}

// retainTags keeps the newest `keep` tags matching the task's tag template, never deleting
// a tag that a stored revision of this pipeline still deploys.
func (r *Runner) retainTags(ctx context.Context, rc *runContext, res builder.Result, t *pipeline.BuildImageTask, tl *taskLog) error {
	if r.tags == nil {
		return errors.New("keep is set but no registry access is configured")
	}
	repo := res.Image[:strings.LastIndex(res.Image, ":")]
	protected, err := r.deployedTags(ctx, rc, repo)
	if err != nil {
		return err
	}
	for _, tag := range res.Tags {
		protected[tag] = true
	}
	pr, err := r.tags.RetainTags(ctx, repo, t.Tag, t.Keep, protected)
	if err != nil {
		return fmt.Errorf("tag retention for %s: %w", repo, err)
	}
	for _, tag := range pr.Deleted {
		tl.Printf("retention: deleted %s:%s (keep %d)", repo, tag, t.Keep)
	}
	skipped := make([]string, 0, len(pr.Skipped))
	for tag := range pr.Skipped {
		skipped = append(skipped, tag)
	}
	sort.Strings(skipped)
	for _, tag := range skipped {
		tl.Printf("retention: kept %s:%s: %s", repo, tag, pr.Skipped[tag])
	}
	return nil
}

// deployedTags are the tags of repo that the newest revision of each deploy task of the
// pipeline references: those are running somewhere and must survive retention.
func (r *Runner) deployedTags(ctx context.Context, rc *runContext, repo string) (map[string]bool, error) {
	tags := map[string]bool{}
	re := regexp.MustCompile(regexp.QuoteMeta(repo) + `:([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})`)
	for _, st := range rc.pipeline.Stages {
		for _, task := range st.Tasks {
			if task.Type != pipeline.TypeDeployYAML && task.Type != pipeline.TypeDeployChart {
				continue
			}
			rev, err := r.newestRevision(ctx, rc.run.Pipeline, task.Name)
			if err != nil {
				return nil, err
			}
			if rev == nil {
				continue
			}
			for _, m := range re.FindAllSubmatch(rev.Objects, -1) {
				tags[string(m[1])] = true
			}
		}
	}
	return tags, nil
}

// newestRevision is the task's newest stored revision that is still on the cluster, or nil.
// A rolled-back revision is not: the rollback put the objects of an older one back.
func (r *Runner) newestRevision(ctx context.Context, ref store.PipelineRef, task string) (*store.Revision, error) {
	var newest *store.Revision
	for _, st := range []store.RevisionStatus{store.RevisionApplied, store.RevisionHealthy, store.RevisionFailed} {
		rev, err := r.store.LatestRevision(ctx, ref, task, st)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if newest == nil || rev.BuildID > newest.BuildID {
			newest = &rev
		}
	}
	return newest, nil
}

// imageRequest is the build a build-image task asks for, every field substituted. Builds
// and previews (which report req.Reference() and push nothing) both come here.
func (r *Runner) imageRequest(rc *runContext, t *pipeline.BuildImageTask, tl *taskLog) (builder.Request, error) {
	vars := rc.varsSnapshot()
	subst := func(field, s string) (string, error) {
		v, err := render.Substitute(s, vars)
		if err != nil {
			return "", fmt.Errorf("%s: %w", field, err)
		}
		return v, nil
	}
	req := builder.Request{
		Root: rc.workspace, Dockerfile: t.Dockerfile, Context: t.Context, Workspace: t.Workspace, Image: t.Image,
		Target: t.Target, Platform: t.Platform, Secrets: rc.secrets, BuildArgs: map[string]string{},
		Log: func(line string) { tl.Printf("%s", line) },
	}
	var err error
	if req.Tag, err = subst("tag", t.Tag); err != nil {
		return builder.Request{}, err
	}
	req.Registry = r.config.Registry.Default
	if t.Registry != "" {
		if req.Registry, err = subst("registry", t.Registry); err != nil {
			return builder.Request{}, err
		}
	}
	if req.Registry == "" {
		return builder.Request{}, errors.New("no registry: set the task's registry or registry.default in slipway.yaml")
	}
	for _, et := range t.ExtraTags {
		v, err := subst("extraTags", et)
		if err != nil {
			return builder.Request{}, err
		}
		req.ExtraTags = append(req.ExtraTags, v)
	}
	for k, v := range t.BuildArgs {
		if req.BuildArgs[k], err = subst("buildArgs."+k, v); err != nil {
			return builder.Request{}, err
		}
	}
	return req, nil
}
