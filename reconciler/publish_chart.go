package reconciler

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/slipwayhq/slipway/builder"
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
	dir, cleanup, err := copyChart(rc.workspace, t.ChartDir)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	for _, f := range substitute {
		err := substituteFile(dir, f, vars)
		if errors.Is(err, errNoSuchFile) && !explicit {
			continue // a chart without values.yaml has nothing to substitute
		}
		if err != nil {
			return nil, fmt.Errorf("substitute %s/%s: %w", t.ChartDir, f, err)
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
	reg, err := builder.NewRegistry(builder.Options{DockerConfig: r.config.Registry.DockerConfig, Insecure: r.config.Registry.Insecure})
	if err != nil {
		return nil, fmt.Errorf("chart registry: %w", err)
	}
	return reg, nil
}

var errNoSuchFile = errors.New("no such file")

// copyChart copies the chart folder rel of the checkout into a temporary folder. Symlinks are
// followed only while they stay inside the checkout.
func copyChart(root, rel string) (string, func(), error) {
	src, err := render.InsideRoot(root, rel)
	if err != nil {
		return "", nil, fmt.Errorf("chartDir: %w", err)
	}
	tmp, err := os.MkdirTemp("", "slipway-chart-src-")
	if err != nil {
		return "", nil, fmt.Errorf("copy chart: %w", err)
	}
	cleanup := func() { _ = os.RemoveAll(tmp) }
	dst := filepath.Join(tmp, filepath.Base(src))
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, r)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		real := p
		if d.Type()&fs.ModeSymlink != 0 {
			chartRel, _ := filepath.Rel(root, p)
			if real, err = render.InsideRoot(root, chartRel); err != nil {
				return err
			}
		}
		b, err := os.ReadFile(real)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("copy chart %s: %w", rel, err)
	}
	return dst, cleanup, nil
}

// substituteFile substitutes ${...} in the file rel of dir in place, line by line so an
// error names its line.
func substituteFile(dir, rel string, vars render.Vars) error {
	if !filepath.IsLocal(rel) {
		return fmt.Errorf("path %q: leaves the chart", rel)
	}
	p := filepath.Join(dir, rel)
	raw, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return errNoSuchFile
	}
	if err != nil {
		return err
	}
	out, err := substituteText(raw, vars)
	if err != nil {
		return err
	}
	return os.WriteFile(p, out, 0o644)
}

func substituteText(raw []byte, vars render.Vars) ([]byte, error) {
	var buf bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for line := 1; sc.Scan(); line++ {
		s, err := render.Substitute(sc.Text(), vars)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		buf.WriteString(s)
		buf.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
