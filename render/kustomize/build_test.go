package kustomize

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/internal/repofs"
)

// checkout writes files (content) and symlinks ("-> target") into a fresh repository folder
// whose parent also holds secret.yaml, a file a hostile kustomization would want to read.
func checkout(t *testing.T, files map[string]string) *repofs.Repo {
	t.Helper()
	parent := t.TempDir()
	secret := "apiVersion: v1\nkind: Secret\nmetadata: {name: stolen}\n"
	if err := os.WriteFile(filepath.Join(parent, "secret.yaml"), []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "repo")
	for name, body := range files {
		p := filepath.Join(dir, name)
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
	r, err := repofs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

var limits = repofs.TextLimits{File: repofs.Limit{Max: 1 << 20, Setting: "manifestFileSize"}, Line: repofs.Limit{Max: 1 << 16, Setting: "manifestLineSize"}}

const base = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: nginx:1.27
          envFrom: [{configMapRef: {name: settings}}]
`

func TestBuildOverlayOfABase(t *testing.T) {
	r := checkout(t, map[string]string{
		"deploy/base/kustomization.yaml": "resources: [deployment.yaml]\n",
		"deploy/base/deployment.yaml":    base,
		"deploy/overlays/prod/Kustomization": "resources: [../../base]\nnamePrefix: prod-\nreplicas: [{name: web, count: 3}]\n" +
			"configMapGenerator: [{name: settings, envs: [settings.env]}]\nimages: [{name: nginx, newTag: \"${TAG}\"}]\n",
		"deploy/overlays/prod/settings.env": "COLOR=blue\n",
	})
	if f, err := File(r, "deploy/overlays/prod"); err != nil || f != "deploy/overlays/prod/Kustomization" {
		t.Fatalf("File = %q, %v", f, err)
	}
	if f, err := File(r, "deploy/base/deployment.yaml"); err != nil || f != "" {
		t.Fatalf("File(a file) = %q, %v", f, err)
	}
	if _, err := File(r, "deploy/base/kustomization.yaml"); err == nil || !strings.Contains(err.Error(), `name its folder "deploy/base"`) {
		t.Errorf("File(a kustomization file) = %v", err)
	}
	out, err := Build(r, "deploy/overlays/prod", limits)
	if err != nil {
		t.Fatal(err)
	}
	y := string(out.YAML)
	for _, want := range []string{"name: prod-web", "replicas: 3", "image: nginx:${TAG}", "name: prod-settings-", "COLOR: blue"} {
		if !strings.Contains(y, want) {
			t.Errorf("build lacks %q:\n%s", want, y)
		}
	}
	want := "deploy/base/deployment.yaml,deploy/base/kustomization.yaml,deploy/overlays/prod/Kustomization,deploy/overlays/prod/settings.env"
	if got := strings.Join(out.Files, ","); got != want {
		t.Errorf("files read = %s, want %s", got, want)
	}
}

func TestBuildRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
		is    error
	}{
		{"remote base", map[string]string{"k/kustomization.yaml": "resources:\n  - deployment.yaml\n  - github.com/org/repo//deploy?ref=v1\n", "k/deployment.yaml": base},
			`k/kustomization.yaml:3: resources[1]: "github.com/org/repo//deploy?ref=v1": remote bases and files are not fetched`, ErrRemote},
		{"https resource", map[string]string{"k/kustomization.yaml": "resources: [https://example.com/app.yaml]\n"},
			`k/kustomization.yaml:1: resources[0]: "https://example.com/app.yaml"`, ErrRemote},
		{"scp address in a nested base", map[string]string{"k/kustomization.yaml": "resources: [../b]\n", "b/kustomization.yaml": "components:\n- git@example.com:org/repo.git\n"},
			`b/kustomization.yaml:2: components[0]: "git@example.com:org/repo.git"`, ErrRemote},
		{"remote patch", map[string]string{"k/kustomization.yaml": "patches:\n- path: http://example.com/p.yaml\n"},
			`k/kustomization.yaml:2: patches[0].path`, ErrRemote},
		{"remote generator file", map[string]string{"k/kustomization.yaml": "configMapGenerator:\n- name: x\n  files: [key=https://example.com/f]\n"},
			`k/kustomization.yaml:3: configMapGenerator[0].files[0]`, ErrRemote},
		{"remote transformer config", map[string]string{"k/kustomization.yaml": "transformers: [t.yaml]\n",
			"k/t.yaml": "apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\npath: https://example.com/p.yaml\n"},
			`k/t.yaml:4: path: "https://example.com/p.yaml"`, ErrRemote},
		{"helm", map[string]string{"k/kustomization.yaml": "resources: []\nhelmCharts:\n- name: nginx\n"},
			`k/kustomization.yaml:2: helmCharts: the helmCharts generator is not supported`, ErrHelm},
		{"escape", map[string]string{"k/kustomization.yaml": "resources: [../../secret.yaml]\n"},
			`path "../secret.yaml" leaves the repository`, repofs.ErrOutside},
		{"symlink out", map[string]string{"k/kustomization.yaml": "resources: [s.yaml]\n", "k/s.yaml": "-> ../../secret.yaml"},
			`symlink "k/s.yaml" points outside the repository`, repofs.ErrOutside},
		{"symlinked kustomization out", map[string]string{"k/kustomization.yaml": "-> ../../secret.yaml"},
			`symlink "k/kustomization.yaml" points outside the repository`, repofs.ErrOutside},
		{"file above its kustomization", map[string]string{"k/kustomization.yaml": "resources: [../d.yaml]\n", "d.yaml": base},
			`security; file 'd.yaml' is not in or below 'k'`, nil},
		{"too large", map[string]string{"k/kustomization.yaml": "resources: [big.yaml]\n", "k/big.yaml": strings.Repeat("# x\n", 300000)},
			`k/big.yaml: file is larger than the limit of 1 MiB (the repository's limits.manifestFileSize`, repofs.ErrTooLarge},
		{"refused kustomization beside another name", map[string]string{"k/kustomization.yaml": "resources: [b]\n", "k/b/kustomization.yaml": "resources: [https://example.com/x.yaml]\n",
			"k/b/Kustomization": "resources: []\n"}, `k/b/kustomization.yaml:1: resources[0]`, ErrRemote},
		{"exec function", map[string]string{"k/kustomization.yaml": "generators: [fn.yaml]\n",
			"k/fn.yaml": "apiVersion: example.com/v1\nkind: Gen\nmetadata:\n  name: g\n  annotations:\n    config.kubernetes.io/function: |\n      exec: {path: /bin/sh}\n"},
			`k/fn.yaml:6: metadata.annotations.config.kubernetes.io/function: KRM functions (exec or container) are not run`, ErrFunction},
		{"container function", map[string]string{"k/kustomization.yaml": "transformers:\n- |-\n  apiVersion: example.com/v1\n  kind: T\n  metadata:\n    name: t\n    annotations:\n      config.kubernetes.io/function: 'container: {image: evil}'\n"},
			`k/kustomization.yaml:8: transformers[0].metadata.annotations.config.kubernetes.io/function: KRM functions`, ErrFunction},
		{"inline transformer with a remote patch", map[string]string{"k/kustomization.yaml": "transformers:\n- |\n  apiVersion: builtin\n  kind: PatchTransformer\n  metadata: {name: p}\n  path: https://example.com/p.yaml\n"},
			`k/kustomization.yaml:6: transformers[0].path: "https://example.com/p.yaml"`, ErrRemote},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := checkout(t, tc.files)
			_, err := Build(r, "k", limits)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build = %v; want an error saying %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("Build = %v; want errors.Is %v", err, tc.is)
			}
			if strings.Contains(err.Error(), root) {
				t.Errorf("error names the mount point: %v", err)
			}
		})
	}
}
