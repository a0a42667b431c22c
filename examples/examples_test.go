// Package examples holds runnable pipelines. This test keeps every one of them valid.
package examples

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/internal/repofs"
	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/render"
)

var examples = []string{"2048-yaml", "cron-nightly", "nginx-chart", "pr-gated-prod"}

// planned are pipelines of the seeds that validate but no e2e test runs as written yet
// (docs/planned/README.md says why); they must stay valid against examples/slipway.yaml.
var planned = []string{"../docs/planned/scripts"}

func TestPlannedPipelinesAreValid(t *testing.T) {
	cfg, err := config.Load("slipway.yaml")
	if err != nil {
		t.Fatalf("examples/slipway.yaml: %v", err)
	}
	for _, dir := range planned {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			repo, err := repofs.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer repo.Close()
			if _, err := pipeline.LoadFile(repo, pipeline.DefaultFile, filepath.Join(dir, pipeline.DefaultFile), pipeline.Options{Env: cfg, Repo: repo}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestEveryExampleIsListedAndValid(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	if strings.Join(dirs, ",") != strings.Join(slices.Sorted(slices.Values(examples)), ",") {
		t.Errorf("example folders %v, tested %v: keep the list in step", dirs, examples)
	}

	cfg, err := config.Load("slipway.yaml")
	if err != nil {
		t.Fatalf("examples/slipway.yaml: %v", err)
	}
	for _, dir := range examples {
		t.Run(dir, func(t *testing.T) {
			repo, err := repofs.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer repo.Close()
			ps, err := pipeline.LoadFile(repo, pipeline.DefaultFile, filepath.Join(dir, pipeline.DefaultFile), pipeline.Options{Env: cfg, Repo: repo})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range ps {
				checkRenderedManifests(t, dir, p)
			}
		})
	}
}

// checkRenderedManifests substitutes sample values into each deploy-yaml task's manifests and
// checks that every document is still YAML with apiVersion, kind and metadata.name.
func checkRenderedManifests(t *testing.T, dir string, p *pipeline.Pipeline) {
	vars := render.Map{"BUILD_ID": "7", "GIT_SHORT_COMMIT": "abc1234", "GIT_COMMIT": strings.Repeat("a", 40)}
	for k, v := range p.Variables {
		vars[k] = v
	}
	for _, s := range p.Stages {
		for _, task := range s.Tasks {
			if task.BuildImage != nil {
				vars["tasks."+task.Name+".image"] = "hub.example.com/x/" + task.BuildImage.Image + ":7"
			}
			d := task.DeployYAML
			if d == nil {
				continue
			}
			files, err := filepath.Glob(filepath.Join(dir, d.Path, "*.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(filepath.Join(dir, d.Path)); err == nil && !fi.IsDir() {
				files = []string{filepath.Join(dir, d.Path)}
			}
			if len(files) == 0 {
				t.Errorf("%s: no manifests at %s", task.Name, d.Path)
			}
			for _, f := range files {
				checkManifest(t, f, vars)
			}
		}
	}
}

func checkManifest(t *testing.T, file string, vars render.Vars) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	text, err := render.Substitute(string(data), vars)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader([]byte(text)))
	for n := 0; ; n++ {
		var obj struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
			Metadata   struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
		}
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("%s document %d: %v", file, n, err)
		}
		if obj.APIVersion == "" || obj.Kind == "" || obj.Metadata.Name == "" {
			t.Errorf("%s document %d lacks apiVersion, kind or metadata.name", file, n)
		}
		if obj.Kind == "Ingress" && obj.APIVersion != "networking.k8s.io/v1" {
			t.Errorf("%s: Ingress %s is %s; current clusters serve networking.k8s.io/v1", file, obj.Metadata.Name, obj.APIVersion)
		}
	}
}

func TestSeedValuesKept(t *testing.T) {
	values, err := os.ReadFile(filepath.Join("nginx-chart", "nginx", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"tag: 6.0.1-alpha.${BUILD_ID}", "repository: hub.ecns.io/devops/nginx", "- host: nginx.example.cn"} {
		if !strings.Contains(string(values), want) {
			t.Errorf("nginx-chart values.yaml lost the seed's %q", want)
		}
	}
	out, err := render.Substitute(string(values), render.Map{"BUILD_ID": "3"})
	if err != nil || !strings.Contains(out, "tag: 6.0.1-alpha.3") {
		t.Errorf("values.yaml does not render: %v", err)
	}
}
