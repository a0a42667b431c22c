package builder

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeChart(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const webChart = "apiVersion: v2\nname: web\nversion: 0.1.0\n"

func TestPackageChartSetsVersionAndReadsBack(t *testing.T) {
	dir := writeChart(t, map[string]string{"Chart.yaml": webChart, "values.yaml": "tag: a\n",
		"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"})
	pkg, err := PackageChart(dir, ChartOptions{Name: "web", Version: "1.2.3-alpha.4", AppVersion: "9"})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := LoadChartPackage(pkg.Data)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Metadata.Version != "1.2.3-alpha.4" || ch.Metadata.AppVersion != "9" || len(ch.Templates) != 1 {
		t.Errorf("packaged %+v with %d templates", ch.Metadata, len(ch.Templates))
	}
}

func TestPackageChartRefusals(t *testing.T) {
	dir := writeChart(t, map[string]string{"Chart.yaml": webChart})
	for _, tc := range []struct {
		opts ChartOptions
		want string
	}{
		{ChartOptions{Name: "web", Version: "v1"}, "not SemVer 2"},
		{ChartOptions{Name: "web", Version: "1.0"}, "not SemVer 2"},
		{ChartOptions{Name: "site", Version: "1.0.0"}, `Chart.yaml names it "web"`},
	} {
		if _, err := PackageChart(dir, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.opts, err, tc.want)
		}
	}
	pkg, err := PackageChart(dir, ChartOptions{Name: "site", Rename: true, Version: "1.0.0"})
	if err != nil || pkg.Metadata.Name != "site" {
		t.Errorf("rename: %v %+v", err, pkg)
	}
}

func TestPackageChartMissingDependencyIsAnError(t *testing.T) {
	deps := webChart + "dependencies:\n  - name: redis\n    version: 1.0.0\n    repository: oci://example.com/charts\n"
	dir := writeChart(t, map[string]string{"Chart.yaml": deps})
	_, err := PackageChart(dir, ChartOptions{Name: "web", Version: "1.0.0"})
	if err == nil || !strings.Contains(err.Error(), "missing in charts/ directory: redis") {
		t.Fatalf("err = %v, want the missing dependency named", err)
	}
	// Vendored into charts/, it is packaged with the chart.
	sub := filepath.Join(dir, "charts", "redis")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "Chart.yaml"), []byte("apiVersion: v2\nname: redis\nversion: 1.0.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pkg, err := PackageChart(dir, ChartOptions{Name: "web", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := LoadChartPackage(pkg.Data)
	if err != nil || len(ch.Dependencies()) != 1 {
		t.Fatalf("vendored dependency not packaged: %v", err)
	}
}
