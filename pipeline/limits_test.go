package pipeline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/slipwayhq/slipway/internal/repofs"
	"github.com/slipwayhq/slipway/pipeline/diag"
)

// repoWith writes files (content, or "-> target" for a symlink) into a fresh repository.
func repoWith(t *testing.T, files map[string]string) *repofs.Repo {
	t.Helper()
	root := t.TempDir()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if target, ok := strings.CutPrefix(body, "-> "); ok {
			err = os.Symlink(target, p)
		} else {
			err = os.WriteFile(p, []byte(body), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	r, err := repofs.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func loadErrors(t *testing.T, repo *repofs.Repo, opts Options) string {
	t.Helper()
	opts.Repo = repo
	_, err := LoadFile(repo, DefaultFile, DefaultFile, opts)
	var list diag.List
	if err != nil && !errors.As(err, &list) {
		t.Fatalf("LoadFile: %v", err)
	}
	return list.Error()
}

const deployK8s = `name: app
stages:
  - name: deploy
    tasks:
      - {name: app, type: deploy-yaml, path: k8s, cluster: c, namespace: n}
`

// What validation refuses in a manifest folder is what a run refuses (both list and read
// manifests through repofs): nothing passes validation to fail after a BUILD_ID is spent.
func TestValidationReadsManifestsAsRunsDo(t *testing.T) {
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"
	for name, tc := range map[string]struct {
		files map[string]string
		want  string
	}{
		"README in a manifest folder": {map[string]string{"k8s/a.yaml": cm, "k8s/README.md": "# docs"},
			`.pipeline.yaml:5:46: path "k8s": k8s/README.md: not a manifest (want .yaml, .yml or .json)`},
		"undefined variable in a subfolder": {map[string]string{"k8s/a.yaml": cm, "k8s/sub/b.yaml": cm + "data: {x: '${NOPE}'}\n"},
			`k8s/sub/b.yaml:4:12: undefined variable ${NOPE}`},
		"a line over the limit": {map[string]string{"k8s/a.yaml": cm + "data: {x: '" + strings.Repeat("x", 2<<20) + "'}\n"},
			`k8s/a.yaml:4:1: line is longer than the limit of 1 MiB (the repository's limits.manifestLineSize in slipway.yaml raises it)`},
		"a file over the limit": {map[string]string{"k8s/a.yaml": cm + strings.Repeat("# padding\n", 900_000)},
			`k8s/a.yaml:1:1: file is larger than the limit of 8 MiB (the repository's limits.manifestFileSize in slipway.yaml raises it)`},
		"dangling symlink": {map[string]string{"k8s/a.yaml": cm, "k8s/b.yaml": "-> ../later.yaml"},
			`path "k8s": symlink "k8s/b.yaml" is dangling: "../later.yaml" does not exist in the repository`},
		"chained symlinks out": {map[string]string{"k8s/a.yaml": cm, "k8s/b.yaml": "-> ../hop/x.yaml", "hop": "-> self/..", "self": "-> ."},
			`path "k8s": "k8s/b.yaml": symlink "hop" points outside the repository ("self/..")`},
		"absolute symlink": {map[string]string{"k8s/a.yaml": cm, "k8s/passwd.yaml": "-> /etc/passwd"},
			`symlink "k8s/passwd.yaml" points to the absolute path "/etc/passwd"`},
		"symlinked manifest folder out": {map[string]string{"k8s": "-> ../elsewhere"},
			`path "k8s": symlink "k8s" points outside the repository ("../elsewhere")`},
	} {
		t.Run(name, func(t *testing.T) {
			tc.files[DefaultFile] = deployK8s
			got := loadErrors(t, repoWith(t, tc.files), Options{})
			if !strings.Contains(got, tc.want) {
				t.Errorf("errors:\n%s\nwant %q", got, tc.want)
			}
		})
	}
}

func TestPipelineFileSizeIsCheckedBeforeReading(t *testing.T) {
	repo := repoWith(t, nil)
	// A sparse file of 1 TiB: read in full it could not be refused at once.
	f, err := os.Create(filepath.Join(repo.Dir(), DefaultFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 40); err != nil {
		t.Fatalf("this test needs a file system with sparse files (ext4, xfs, tmpfs; set TMPDIR to one): %v", err)
	}
	f.Close()
	want := ".pipeline.yaml:1:1: file is larger than the limit of 1 MiB (the repository's limits.pipelineFileSize in slipway.yaml raises it)"
	if got := loadErrors(t, repo, Options{}); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	small := repoWith(t, map[string]string{DefaultFile: manyPipelines(1)})
	if got := loadErrors(t, small, Options{Limits: Limits{PipelineFileSize: 50}}); !strings.Contains(got, "larger than the limit of 50 bytes") {
		t.Errorf("a lowered limit: %q", got)
	}
}

func manyPipelines(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "---\nname: p%d\nstages: [{name: s, tasks: [{name: t, type: build-image, image: app, tag: v1}]}]\n", i)
	}
	return b.String()
}

func TestPipelinesPerFile(t *testing.T) {
	repo := repoWith(t, map[string]string{DefaultFile: manyPipelines(200), "Dockerfile": "FROM scratch\n"})
	want := ".pipeline.yaml:302:1: more than 100 pipelines in one file, the limit (the repository's limits.pipelinesPerFile in slipway.yaml raises it)"
	if got := loadErrors(t, repo, Options{}); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := loadErrors(t, repo, Options{Limits: Limits{PipelinesPerFile: 200}}); got != "" {
		t.Errorf("granted 200: %s", got)
	}
}

func TestMinCronInterval(t *testing.T) {
	sched := func(spec string) string {
		return "name: p\ntriggers: {schedules: [{cron: '" + spec + "'}]}\nstages: [{name: s, tasks: [{name: t, type: build-image, image: app, tag: v1}]}]\n"
	}
	for _, tc := range []struct {
		spec string
		min  time.Duration
		want string
	}{
		{"@every 1s", 0, `cron "@every 1s" ticks every 1s, more often than the limit of once per 1m0s (the repository's limits.minCronInterval in slipway.yaml lowers it)`},
		{"@every 1ns", 0, `cron "@every 1ns" ticks every 1s`},
		{"@every 59s", 0, "ticks every 59s"},
		{"@every 1m", 0, ""},
		{"* * * * *", 0, ""},
		{"*/5 * * * *", 10 * time.Minute, "ticks every 5m0s"},
		{"*/10 * * * *", 10 * time.Minute, ""},
		{"@hourly", time.Hour, ""},
		{"0 3 * * *", 24 * time.Hour, ""},
		// 23:59 on the 31st, then 00:00 on the 1st: a minute apart across months.
		{"0,59 0,23 1,31 * *", 2 * time.Minute, "ticks every 1m0s"},
		// The 1st and the 15th are never consecutive days: 59 minutes is the closest.
		{"0,59 0,23 1,15 * *", time.Hour, "ticks every 59m0s"},
		{"0,59 0,23 1,15 * *", 59 * time.Minute, ""},
	} {
		repo := repoWith(t, map[string]string{DefaultFile: sched(tc.spec), "Dockerfile": "FROM scratch\n"})
		got := loadErrors(t, repo, Options{Limits: Limits{MinCronInterval: tc.min}})
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%q with minimum %v: %q, want %q", tc.spec, tc.min, got, tc.want)
		}
	}
}

func TestMinGapMatchesTheScheduler(t *testing.T) {
	// The computed gap is the smallest the scheduler really produces over four years (up to
	// a day: minGap answers 24h for any schedule whose ticks are all a day or more apart).
	for _, spec := range []string{"*/7 3-5 * * 1-5", "15,45 */6 * * *", "0 0 29 2 *", "5 4 * * sun", "0,59 0,23 1,31 * *"} {
		s, err := cronParser.Parse(spec)
		if err != nil {
			t.Fatal(err)
		}
		want := time.Duration(1<<63 - 1)
		tick := s.Next(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
		for end := tick.AddDate(4, 0, 0); tick.Before(end); {
			next := s.Next(tick)
			want = min(want, next.Sub(tick))
			tick = next
		}
		if got := minGap(s); got != min(want, 24*time.Hour) {
			t.Errorf("minGap(%q) = %v, the scheduler's shortest gap is %v", spec, got, want)
		}
	}
	if got := minGap(cron.ConstantDelaySchedule{Delay: time.Hour}); got != time.Hour {
		t.Errorf("constant delay: %v", got)
	}
}

// A chart folder is checked as the run copies it: a symlink out of the repository anywhere
// in it is refused at validation, not when the run packages the chart.
func TestValidationWalksChartFolders(t *testing.T) {
	repo := repoWith(t, map[string]string{
		DefaultFile:                  "name: app\nstages:\n  - name: deploy\n    tasks:\n      - {name: app, type: deploy-chart, chartDir: chart, release: app, cluster: c, namespace: n}\n",
		"chart/Chart.yaml":           "apiVersion: v2\nname: app\nversion: 1.0.0\n",
		"chart/values.yaml":          "tag: ${NOPE}\n",
		"chart/templates/secret.txt": "-> ../../../outside",
	})
	got := loadErrors(t, repo, Options{})
	for _, want := range []string{
		`chartDir "chart": symlink "chart/templates/secret.txt" points outside the repository`,
		`chart/values.yaml:1:6: undefined variable ${NOPE}`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("errors:\n%s\nwant %q", got, want)
		}
	}
}

// BenchmarkPipelineFileTooLarge measures refusing a 2 MiB pipeline file (the 50 MB
// file took 28.7 s and 1.7 GB before limits): B/op shows the file is not read.
func BenchmarkPipelineFileTooLarge(b *testing.B) {
	root := b.TempDir()
	if err := os.WriteFile(filepath.Join(root, DefaultFile), []byte(strings.Repeat("# padding\n", (2<<20)/10)), 0o644); err != nil {
		b.Fatal(err)
	}
	repo, err := repofs.Open(root)
	if err != nil {
		b.Fatal(err)
	}
	defer repo.Close()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := LoadFile(repo, DefaultFile, DefaultFile, Options{Repo: repo}); err == nil {
			b.Fatal("a 2 MiB pipeline file was accepted")
		}
	}
}

// Only a pipeline file that is not there is ErrNoFile: one that points to nothing, or one
// whose tasks name a path that is not there, is an invalid file.
func TestLoadFileMissingIsNotInvalid(t *testing.T) {
	for name, c := range map[string]struct {
		files  map[string]string
		noFile bool
	}{
		"no file":          {map[string]string{"README.md": "hello"}, true},
		"dangling symlink": {map[string]string{DefaultFile: "-> gone.yaml"}, false},
		"missing path":     {map[string]string{DefaultFile: deployK8s}, false},
		"a folder":         {map[string]string{DefaultFile + "/x": "y"}, false},
	} {
		repo := repoWith(t, c.files)
		_, err := LoadFile(repo, DefaultFile, DefaultFile, Options{Repo: repo})
		if err == nil || errors.Is(err, ErrNoFile) != c.noFile {
			t.Errorf("%s: %v; want ErrNoFile %v", name, err, c.noFile)
		}
	}
}
