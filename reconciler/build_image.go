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
	"github.com/slipwayhq/slipway/policy"
	"github.com/slipwayhq/slipway/render"
)

// ImageBuilder builds and pushes an image (native or BuildKit, chosen in slipway.yaml).
type ImageBuilder interface {
	Build(ctx context.Context, req builder.Request) (builder.Result, error)
}

// TagPruner deletes old tags of an image repository: only owned ones, never protected ones.
type TagPruner interface {
	RetainTags(ctx context.Context, repo, tagTemplate string, keep int, owned map[string]bool, protected map[string]string) (builder.RetentionResult, error)
}

// buildImage builds the task's Dockerfile, pushes it, records the image and digest as the
// task's outputs, and applies the tag retention.
func (r *Runner) buildImage(ctx context.Context, rc *runContext, task string, t *pipeline.BuildImageTask, tl *taskLog) (map[string]string, error) {
	if r.builder == nil {
		return nil, errors.New("no image builder is configured")
	}
	req, err := r.imageRequest(rc, task, t, tl)
	if err != nil {
		return nil, err
	}
	res, err := underBuildSlot(ctx, rc, r.builds, tl, func() (builder.Result, error) { return r.builder.Build(ctx, req) })
	if err != nil {
		return nil, err
	}
	repo := imageRepository(res.Image)
	// Retention deletes only tags its pipeline is recorded to have pushed; a tag pushed but
	// not recorded is only ever kept.
	if err := r.store.RecordPushedTags(ctx, rc.run.Pipeline, rc.run.BuildID, repo, res.Tags); err != nil {
		tl.Printf("the pushed tags were not recorded, so keep will never delete them: %v", err)
	}
	outputs := map[string]string{"image": res.Image, "digest": res.Digest}
	if t.Keep > 0 {
		// The tag this run replaces is deployed until the run's deploys are done, so
		// retention waits for the end of a successful run.
		rc.afterSuccess(func(ctx context.Context) {
			if err := r.retainTags(ctx, rc, res, task, t, tl); err != nil {
				tl.Printf("retention failed: %v", err)
			}
			tl.flush(ctx)
		})
	}
	return outputs, nil
}

// imageRepository is image (repo:tag) without its tag.
func imageRepository(image string) string { return image[:strings.LastIndex(image, ":")] }

// retainTags keeps the newest `keep` of the tags this pipeline pushed that match the task's
// tag template. It never deletes a tag another pipeline also pushed, nor one any stored
// revision of any pipeline deploys: each is running somewhere or a rollback may put it back.
func (r *Runner) retainTags(ctx context.Context, rc *runContext, res builder.Result, task string, t *pipeline.BuildImageTask, tl *taskLog) error {
	if r.tags == nil {
		return errors.New("keep is set but no registry access is configured")
	}
	repo := imageRepository(res.Image)
	// Deleting tags is pushing: the grant was checked before the build, and is again here
	// in case slipway.yaml changed since.
	if err := policy.DeniedFor(task, policy.RulePush, policy.For(r.config, rc.run.Pipeline.Repository).PushDenied(task, repo)); err != nil {
		return err
	}
	pushed, err := r.store.PushedTags(ctx, repo)
	if err != nil {
		return err
	}
	owned := map[string]bool{}
	for tag, by := range pushed {
		if len(by) == 1 && by[0] == rc.run.Pipeline {
			owned[tag] = true
		}
	}
	protected, err := r.deployedTags(ctx, repo)
	if err != nil {
		return err
	}
	for _, tag := range res.Tags {
		protected[tag] = "pushed by this run"
	}
	pr, err := r.tags.RetainTags(ctx, repo, t.Tag, t.Keep, owned, protected)
	if err != nil {
		return fmt.Errorf("tag retention for %s: %w", repo, err)
	}
	for _, tag := range pr.Deleted {
		tl.Printf("retention: deleted %s:%s (keep %d)", repo, tag, t.Keep)
		if err := r.store.ForgetPushedTag(ctx, rc.run.Pipeline, repo, tag); err != nil {
			tl.Printf("retention: %v", err)
		}
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

// deployedTags are the tags (and digests) of repo that any stored revision of any pipeline
// references, each with the first revision that does: the current ones run somewhere, and
// every stored one is what a rollback may re-apply.
func (r *Runner) deployedTags(ctx context.Context, repo string) (map[string]string, error) {
	revs, err := r.store.AllRevisions(ctx)
	if err != nil {
		return nil, err
	}
	refs := map[string]string{}
	re := imageRefPattern(repo)
	for _, rev := range revs {
		for _, k := range referencedTags(re, rev.Objects) {
			if refs[k] == "" {
				refs[k] = fmt.Sprintf("deployed by %s BUILD_ID %d (task %s)", rev.Pipeline, rev.BuildID, rev.Task)
			}
		}
	}
	return refs, nil
}

// imageRefPattern finds references to repo with a tag, a digest or both.
func imageRefPattern(repo string) *regexp.Regexp {
	return regexp.MustCompile(regexp.QuoteMeta(repo) + `(?::([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(sha256:[a-f0-9]{64}))?`)
}

// referencedTags lists the tags and digests of the references re finds in objects.
func referencedTags(re *regexp.Regexp, objects []byte) []string {
	var out []string
	for _, m := range re.FindAllSubmatch(objects, -1) {
		for _, ref := range m[1:] {
			if len(ref) > 0 {
				out = append(out, string(ref))
			}
		}
	}
	return out
}

// imageRequest is the build a build-image task asks for, every field substituted. Builds
// and previews (which report req.Reference() and push nothing) both come here, the
// repository's push grant checked.
func (r *Runner) imageRequest(rc *runContext, task string, t *pipeline.BuildImageTask, tl *taskLog) (builder.Request, error) {
	vars := rc.varsSnapshot()
	subst := func(field, s string) (string, error) {
		v, err := render.Substitute(s, vars)
		if err != nil {
			return "", fmt.Errorf("%s: %w", field, err)
		}
		return v, nil
	}
	req := builder.Request{
		Root: rc.files().Dir(), Dockerfile: t.Dockerfile, Context: t.Context, Workspace: t.Workspace, Image: t.Image,
		Target: t.Target, Platform: t.Platform, Secrets: rc.secrets, BuildArgs: map[string]string{},
		Log: func(line string) { tl.Printf("%s", line) },
	}
	var err error
	if req.Tag, err = subst("tag", t.Tag); err != nil {
		return builder.Request{}, err
	}
	req.Tag = imageTag(req.Tag, tl)
	req.Registry = r.config.Registry.Default
	if t.Registry != "" {
		if req.Registry, err = subst("registry", t.Registry); err != nil {
			return builder.Request{}, err
		}
	}
	if req.Registry == "" {
		return builder.Request{}, errors.New("no registry: set the task's registry or registry.default in slipway.yaml")
	}
	// The registry may have been substituted: check the grant on what will be pushed.
	grants := policy.For(r.config, rc.run.Pipeline.Repository)
	if err := policy.DeniedFor(task, policy.RulePush, grants.PushDenied(task, builder.ImageRepository(req.Registry, t.Workspace, t.Image))); err != nil {
		tl.Printf("%s", rc.mask(err.Error()))
		return builder.Request{}, err
	}
	for _, et := range t.ExtraTags {
		v, err := subst("extraTags", et)
		if err != nil {
			return builder.Request{}, err
		}
		req.ExtraTags = append(req.ExtraTags, imageTag(v, tl))
	}
	for k, v := range t.BuildArgs {
		if req.BuildArgs[k], err = subst("buildArgs."+k, v); err != nil {
			return builder.Request{}, err
		}
	}
	return req, nil
}

// imageTag turns a SemVer version with build metadata (VERSION of a branch's run,
// 0.0.0-BUILD_ID+COMMIT) into a tag a registry takes: a Docker tag cannot hold '+', so it
// becomes '_', as Helm does for chart versions in OCI registries.
func imageTag(tag string, tl *taskLog) string {
	if !strings.Contains(tag, "+") {
		return tag
	}
	out := strings.ReplaceAll(tag, "+", "_")
	if tl != nil {
		tl.Printf("tag %s is pushed as %s: image tags cannot hold '+'", tag, out)
	}
	return out
}
