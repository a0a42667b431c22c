package reconciler

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/slipwayhq/slipway/builder"
	"github.com/slipwayhq/slipway/internal/repofs"
	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/policy"
	"github.com/slipwayhq/slipway/render"
)

// publishChart packages the chart in the checkout with this run's variables substituted into
// its values and pushes it to the chart repository; outputs are the version and the digest.
func (r *Runner) publishChart(ctx context.Context, rc *runContext, task string, t *pipeline.PublishChartTask, tl *taskLog) (map[string]string, error) {
	vars := rc.varsSnapshot()
	version, err := render.Substitute(t.Version, vars)
	if err != nil {
		return nil, fmt.Errorf("version: %w", err)
	}
	if err := checkTagVersion(t.Version, version, rc.run.Tag); err != nil {
		return nil, err
	}
	appVersion, err := render.Substitute(t.AppVersion, vars)
	if err != nil {
		return nil, fmt.Errorf("appVersion: %w", err)
	}
	repo, err := r.chartRepository(t.Repository)
	if err != nil {
		return nil, err
	}
	grants := policy.For(r.config, rc.run.Pipeline.Repository)
	if err := policy.DeniedFor(task, policy.RulePush, grants.PushDenied(task, builder.ChartRepositoryPath(repo, t.Chart))); err != nil {
		tl.Printf("%s", rc.mask(err.Error()))
		return nil, err
	}
	substitute, explicit := t.Substitute, true
	if len(substitute) == 0 {
		substitute, explicit = []string{"values.yaml"}, false
	}
	// The chart is rendered in a copy, so the checkout stays as Git gave it.
	dir, cleanup, err := copyChart(rc.files(), t.ChartDir, rc.limits.Text(), substitute)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	if !t.PackageSecrets {
		if err := refuseSecretValues(dir, t.ChartDir, substitute, rc.pipeline.Secrets); err != nil {
			return nil, err
		}
	}
	for _, f := range substitute {
		err := substituteFile(dir, f, vars)
		if errors.Is(err, errNoSuchFile) && !explicit {
			continue // a chart without values.yaml has nothing to substitute
		}
		if err != nil {
			return nil, fmt.Errorf("substitute: %w", render.InFile(t.ChartDir+"/"+f, err))
		}
	}
	pkg, err := builder.PackageChart(dir, builder.ChartOptions{Name: t.Chart, Rename: t.Rename, Version: version, AppVersion: appVersion})
	if err != nil {
		return nil, err
	}
	tl.Printf("packaged chart %s %s from %s (%d bytes)", t.Chart, version, t.ChartDir, len(pkg.Data))
	reg, err := r.chartRegistry()
	if err != nil {
		return nil, err
	}
	ref := builder.ChartRef{Repository: repo, Name: t.Chart, Version: version}
	digest, err := reg.PushChart(ctx, ref, pkg, t.Overwrite)
	if err != nil {
		return nil, err
	}
	tl.Printf("pushed chart %s (%s)", ref, digest)
	return map[string]string{"version": version, "digest": digest}, nil
}

// chartRepository is the task's repository or slipway.yaml's charts.repository.
func (r *Runner) chartRepository(task string) (string, error) {
	if task != "" {
		return task, nil
	}
	if r.config.Charts.Repository == "" {
		return "", errors.New("no chart repository: set the task's repository or charts.repository in slipway.yaml")
	}
	return r.config.Charts.Repository, nil
}

// chartRegistry talks to chart repositories with the same credentials and insecure hosts
// as image pushes.
func (r *Runner) chartRegistry() (*builder.Registry, error) {
	reg, err := builder.NewRegistry(builder.Options{DockerConfig: r.config.Registry.DockerConfig, Insecure: r.config.Registry.Insecure,
		Mirrors: r.config.Registry.MirrorEndpoints()})
	if err != nil {
		return nil, fmt.Errorf("chart registry: %w", err)
	}
	return reg, nil
}

var errNoSuchFile = errors.New("no such file")

// copyChart copies the chart folder rel of the checkout into a private temporary folder
// through the repository's walker, as validation reads it: symlinks are followed only while
// they stay inside the checkout, every file is read within limits.File, and the files that
// will be substituted (relative to the chart) within limits.Line too.
func copyChart(repo *repofs.Repo, rel string, limits repofs.TextLimits, substituted []string) (string, func(), error) {
	fi, err := repo.Stat(rel)
	if err != nil {
		return "", nil, fmt.Errorf("chartDir: %w", err)
	}
	if !fi.IsDir() {
		return "", nil, fmt.Errorf("chartDir %q is not a folder", rel)
	}
	files, err := repo.Files(rel, true)
	if err != nil {
		return "", nil, fmt.Errorf("chartDir: %w", err)
	}
	real, err := repo.Resolve(rel)
	if err != nil {
		return "", nil, fmt.Errorf("chartDir: %w", err)
	}
	tmp, err := os.MkdirTemp("", "slipway-chart-src-")
	if err != nil {
		return "", nil, fmt.Errorf("copy chart: %w", err)
	}
	cleanup := func() { _ = os.RemoveAll(tmp) }
	name := path.Base(real)
	if name == "." {
		name = "chart"
	}
	dst := filepath.Join(tmp, name)
	clean := path.Clean(filepath.ToSlash(rel))
	text := map[string]bool{}
	for _, f := range substituted {
		text[path.Join(clean, f)] = true
	}
	for _, f := range files {
		var data []byte
		if text[f] {
			data, err = repo.ReadText(f, limits)
		} else {
			data, err = repo.ReadFile(f, limits.File)
		}
		if err == nil {
			sub := f
			if clean != "." {
				sub = strings.TrimPrefix(f, clean+"/")
			}
			target := filepath.Join(dst, filepath.FromSlash(sub))
			if err = os.MkdirAll(filepath.Dir(target), 0o700); err == nil {
				err = os.WriteFile(target, data, 0o600)
			}
		}
		if err != nil {
			cleanup()
			return "", nil, fmt.Errorf("copy chart %s: %w", rel, err)
		}
	}
	return dst, cleanup, nil
}

// ErrSecretInChart is a publish-chart that would package a secret value without
// packageSecrets: true.
var ErrSecretInChart = errors.New("a published chart would hold a secret value")

// refuseSecretValues refuses to package files that reference a secret: anyone who can pull
// the chart could read it. packageSecrets: true opts in.
func refuseSecretValues(dir, chartDir string, files []string, secrets []pipeline.Secret) error {
	names := map[string]bool{}
	for _, s := range secrets {
		names[s.Name] = true
	}
	for _, f := range files {
		if !filepath.IsLocal(f) {
			continue // substituteFile refuses it
		}
		raw, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			continue // substituteFile reports it
		}
		refs, err := render.YAMLRefs(raw)
		if err != nil {
			return render.InFile(chartDir+"/"+f, err)
		}
		for _, r := range refs {
			if names[r.Name] {
				return fmt.Errorf("%s/%s:%d:%d: ${%s} is a secret: %w; set packageSecrets: true on the task to publish it anyway",
					chartDir, f, r.Line, r.Column, r.Name, ErrSecretInChart)
			}
		}
	}
	return nil
}

// substituteFile substitutes ${...} into the scalars of the YAML file rel of dir, in place.
func substituteFile(dir, rel string, vars render.Vars) error {
	if !filepath.IsLocal(rel) {
		return fmt.Errorf("path %q: leaves the chart", rel)
	}
	if ext := filepath.Ext(rel); ext != ".yaml" && ext != ".yml" {
		return fmt.Errorf("%s: only YAML files are substituted; other files are not supported yet", rel)
	}
	p := filepath.Join(dir, rel)
	raw, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return errNoSuchFile
	}
	if err != nil {
		return err
	}
	out, err := render.SubstituteYAML(raw, vars)
	if err != nil {
		return err
	}
	return os.WriteFile(p, out, 0o644)
}

// ErrTagNotSemVer says a chart version taken from a tag (through VERSION or GIT_TAG) is not
// SemVer 2, so the tag cannot be released as a chart.
var ErrTagNotSemVer = errors.New("the tag does not make a SemVer 2 chart version")

// checkTagVersion refuses a chart version that comes from the run's tag and is not SemVer 2,
// naming the tag: the fix is a tag such as v1.4.0, not the pipeline file.
func checkTagVersion(template, version, tag string) error {
	if tag == "" || !strings.Contains(template, "VERSION") && !strings.Contains(template, "GIT_TAG") {
		return nil
	}
	if _, err := semver.StrictNewVersion(version); err != nil {
		return fmt.Errorf("chart version %q from tag %q: %w (tag releases as vMAJOR.MINOR.PATCH, such as v1.4.0; VERSION is the tag without its leading v)",
			version, tag, ErrTagNotSemVer)
	}
	return nil
}
