package builder

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/Masterminds/semver/v3"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
)

// ChartOptions say how a chart folder becomes a package.
type ChartOptions struct {
	Name       string // the name to publish under; must equal Chart.yaml's unless Rename
	Rename     bool
	Version    string // SemVer 2; replaces Chart.yaml's version
	AppVersion string // replaces Chart.yaml's appVersion when set
}

// ChartPackage is a packaged chart: the .tgz bytes Helm reads and the metadata in it.
type ChartPackage struct {
	Data     []byte
	Metadata *chart.Metadata
}

// PackageChart packages the chart in dir with the Helm SDK. Dependencies must already be in
// the chart's charts/ folder: a missing one is an error, because fetching it here would
// publish something nobody reviewed.
func PackageChart(dir string, opts ChartOptions) (*ChartPackage, error) {
	if _, err := semver.StrictNewVersion(opts.Version); err != nil {
		return nil, fmt.Errorf("chart version %q is not SemVer 2 (such as 6.0.1-alpha.7): %w", opts.Version, err)
	}
	ch, err := loader.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("load chart: %w", err)
	}
	if ch.Metadata.Name != opts.Name {
		if !opts.Rename {
			return nil, fmt.Errorf("chart is %q but Chart.yaml names it %q: set chart to %q, or rename: true to publish it as %q",
				opts.Name, ch.Metadata.Name, ch.Metadata.Name, opts.Name)
		}
		ch.Metadata.Name = opts.Name
	}
	ch.Metadata.Version = opts.Version
	if opts.AppVersion != "" {
		ch.Metadata.AppVersion = opts.AppVersion
	}
	if err := ch.Validate(); err != nil {
		return nil, fmt.Errorf("chart %s: %w", opts.Name, err)
	}
	if reqs := ch.Metadata.Dependencies; len(reqs) > 0 {
		if err := action.CheckDependencies(ch, reqs); err != nil {
			return nil, fmt.Errorf("chart %s: dependencies are not fetched when publishing, vendor them into charts/: %w", opts.Name, err)
		}
	}
	return savePackage(ch)
}

// savePackage writes the archive with Helm's own writer, so helm reads it exactly as a
// package made by `helm package`.
func savePackage(ch *chart.Chart) (*ChartPackage, error) {
	tmp, err := os.MkdirTemp("", "slipway-chart-")
	if err != nil {
		return nil, fmt.Errorf("package chart: %w", err)
	}
	defer os.RemoveAll(tmp)
	file, err := chartutil.Save(ch, tmp)
	if err != nil {
		return nil, fmt.Errorf("package chart %s: %w", ch.Metadata.Name, err)
	}
	data, err := os.ReadFile(filepath.Clean(file))
	if err != nil {
		return nil, fmt.Errorf("package chart %s: %w", ch.Metadata.Name, err)
	}
	return &ChartPackage{Data: data, Metadata: ch.Metadata}, nil
}

// LoadChartPackage reads a packaged chart.
func LoadChartPackage(data []byte) (*chart.Chart, error) {
	ch, err := loader.LoadArchive(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("read chart package: %w", err)
	}
	if ch.Metadata == nil {
		return nil, errors.New("read chart package: no Chart.yaml")
	}
	return ch, nil
}
