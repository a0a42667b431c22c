package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run executes the root command in-process and returns its output and error.
func run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRootCommand()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err = root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const threeMistakes = `name: Jack-2048
stages:
  - name: build
    tasks:
      - name: build-image
        type: build-image
        dockerfil: Dockerfile
        image: jack-2048
        tag: alpha-${BUILD_NUMBER}
`

func TestValidateThreeMistakes(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "Dockerfile", "FROM scratch\n")
	file := writeFile(t, dir, ".pipeline.yaml", threeMistakes)

	stdout, stderr, err := run(t, "validate", file)
	var exit exitError
	if !errors.As(err, &exit) || exit.code != 1 {
		t.Fatalf("want exit 1, got %v", err)
	}
	want := []string{
		file + `:1:7: pipeline name "Jack-2048" is not a DNS-1123 label: use lowercase letters, digits and '-', start and end with a letter or digit, at most 63 characters`,
		file + `:7:9: unknown field "dockerfil" for type build-image (did you mean "dockerfile"?)`,
		file + `:9:14: undefined variable ${BUILD_NUMBER}: not a built-in variable, a declared variable or a secret`,
	}
	if got := strings.TrimRight(stderr, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("stderr:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if stdout != "" {
		t.Errorf("stdout: %q", stdout)
	}

	// The same through -o json, and a directory argument meaning its .pipeline.yaml.
	stdout, _, err = run(t, "validate", "-o", "json", dir)
	if !errors.As(err, &exit) || exit.code != 1 {
		t.Fatalf("json: want exit 1, got %v", err)
	}
	var got []struct {
		File, Field, Message string
		Line, Column         int
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("json output %q: %v", stdout, err)
	}
	if len(got) != 3 || got[1].Field != "stages[0].tasks[0].dockerfil" || got[2].Line != 9 || got[2].Column != 14 {
		t.Errorf("json errors: %+v", got)
	}
}

func TestValidateAgainstConfig(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "app.yaml", "kind: ConfigMap\ndata: {build: \"${BUILD_ID}\", who: \"${WHO}\"}\n")
	file := writeFile(t, dir, ".pipeline.yaml", `name: app
stages:
  - name: deploy
    tasks:
      - {name: deploy, type: deploy-yaml, path: app.yaml, cluster: prodd, namespace: web}
`)
	cfg := writeFile(t, dir, "slipway.yaml", "dataDir: /var/lib/slipway\nclusters:\n  - {name: prod, inCluster: true}\n")

	_, stderr, err := run(t, "validate", "--config", cfg, file)
	if err == nil {
		t.Fatal("want failure")
	}
	want := []string{
		file + `:5:68: unknown cluster "prodd": slipway.yaml defines "prod" (did you mean "prod"?)`,
		filepath.Join(dir, "app.yaml") + `:2:36: undefined variable ${WHO}: not a built-in variable, a declared variable or a secret`,
	}
	if got := strings.TrimRight(stderr, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("stderr:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}

	// A broken slipway.yaml is reported the same way, positioned in that file.
	writeFile(t, dir, "slipway.yaml", "dataDir: /d\nrepositories:\n  - {name: r, url: 'https://g/r.git', branch: main, auth: {password: x}}\n")
	_, stderr, _ = run(t, "validate", "--config", cfg, file)
	if !strings.Contains(stderr, cfg+`:3:60: unknown field "password": secrets are never written in slipway.yaml`) {
		t.Errorf("config errors not reported: %s", stderr)
	}
}

func TestValidateRefusesTargetsNotGranted(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "app.yaml", "kind: ConfigMap\napiVersion: v1\nmetadata: {name: app}\n")
	file := writeFile(t, dir, ".pipeline.yaml", `name: app
stages:
  - name: staging
    tasks:
      - {name: stage, type: deploy-yaml, path: app.yaml, cluster: staging, namespace: shop}
  - name: production
    tasks:
      - {name: prod, type: deploy-yaml, path: app.yaml, cluster: prod, namespace: kube-system}
`)
	cfg := writeFile(t, dir, "slipway.yaml", `dataDir: /d
clusters: [{name: staging, inCluster: true}, {name: prod, inCluster: true}]
repositories:
  - {name: shop, url: 'https://g/shop.git', branch: main, policy: {clusters: [staging], namespaces: [shop]}}
  - {name: ops, url: 'https://g/ops.git', branch: main, policy: {clusters: ['*'], namespaces: [monitoring]}}
`)
	_, stderr, err := run(t, "validate", "--config", cfg, "--repository", "shop", file)
	var exit exitError
	if !errors.As(err, &exit) || exit.code != 1 {
		t.Fatalf("want exit 1, got %v", err)
	}
	want := []string{
		file + `:8:66: policy (rule allowed-clusters): task prod deploys to cluster "prod", which is not granted to repository shop (its policy.clusters in slipway.yaml grants staging)`,
		file + `:8:83: policy (rule allowed-namespaces): task prod deploys to namespace "kube-system", which is not granted to repository shop (its policy.namespaces in slipway.yaml grants shop)`,
	}
	if got := strings.TrimRight(stderr, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("stderr:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}

	// Without --repository, a target is refused when no repository is granted it: ops
	// grants every cluster, nobody grants kube-system.
	_, stderr, _ = run(t, "validate", "--config", cfg, file)
	want = []string{file + `:8:83: policy (rule allowed-namespaces): task prod deploys to namespace "kube-system", which is granted to no repository in slipway.yaml (repositories[].policy.namespaces); give --repository to check against one repository's grants`}
	if got := strings.TrimRight(stderr, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("stderr:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}

	if _, _, err := run(t, "validate", "--config", cfg, "--repository", "nope", file); err == nil || !strings.Contains(err.Error(), `"nope" is not a repository in`) {
		t.Errorf("unknown repository: %v", err)
	}
	if _, _, err := run(t, "validate", "--repository", "shop", file); err == nil || !strings.Contains(err.Error(), "--repository needs --config") {
		t.Errorf("--repository without --config: %v", err)
	}
	writeFile(t, dir, ".pipeline.yaml", "name: app\nstages:\n  - name: s\n    tasks:\n      - {name: stage, type: deploy-yaml, path: app.yaml, cluster: staging, namespace: shop}\n")
	if stdout, stderr, err := run(t, "validate", "--config", cfg, "--repository", "shop", file); err != nil || stdout != "1 file(s) valid\n" {
		t.Errorf("granted pipeline: %q %q %v", stdout, stderr, err)
	}
}

func TestValidateValid(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, ".pipeline.yaml", "name: ok\nstages:\n  - name: s\n    tasks: [{name: t, type: build-image, image: app, tag: v1}]\n")
	writeFile(t, dir, "Dockerfile", "FROM scratch\n")
	stdout, stderr, err := run(t, "validate", dir)
	if err != nil || stderr != "" || stdout != "1 file(s) valid\n" {
		t.Errorf("valid file: %q %q %v", stdout, stderr, err)
	}
	stdout, _, err = run(t, "validate", "-o", "json", dir)
	if err != nil || strings.TrimSpace(stdout) != "[]" {
		t.Errorf("valid file, json: %q %v", stdout, err)
	}
	if _, _, err := run(t, "validate", filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
}

// TestValidateSubstitutionRules: validation reads ${...} in repository files as the run
// substitutes them (in values only, comments ignored) and refuses a publish-chart that would
// package a secret unless packageSecrets is set.
func TestValidateSubstitutionRules(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "app.yaml", "# ${IGNORED} in a comment\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata:\n  ${BUILD_ID}: x\n")
	writeFile(t, dir, "chart/Chart.yaml", "apiVersion: v2\nname: c\nversion: 0.1.0\n")
	writeFile(t, dir, "chart/values.yaml", "image: {tag: \"${BUILD_ID}\"}\ndb:\n  password: ${DB_PASSWORD}\n")
	writeFile(t, dir, "chart/NOTES.txt", "${BUILD_ID}\n")
	pipelineFile := func(extra string) string {
		return writeFile(t, dir, ".pipeline.yaml", `name: app
secrets:
  - {name: DB_PASSWORD, file: /etc/slipway/db}
stages:
  - name: s
    tasks:
      - {name: deploy, type: deploy-yaml, path: app.yaml, cluster: prod, namespace: web}
      - {name: chart, type: publish-chart, chartDir: chart, chart: c, version: "0.1.${BUILD_ID}", repository: "oci://r.example/c"`+extra+`}
`)
	}
	file := pipelineFile("")
	_, stderr, _ := run(t, "validate", file)
	for _, want := range []string{
		filepath.Join(dir, "app.yaml") + `:6:3: data: a ${...} reference may only be in a value, not in a mapping key`,
		file + `:8:54: chart/values.yaml:3:13 uses secret ${DB_PASSWORD}: a published chart is readable by anyone who can pull it; set packageSecrets: true to publish the value anyway`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("missing %q in:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "IGNORED") {
		t.Errorf("a reference in a comment was checked:\n%s", stderr)
	}

	writeFile(t, dir, "app.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {a: ${BUILD_ID}}\n")
	file = pipelineFile(", packageSecrets: true")
	if _, stderr, err := run(t, "validate", file); err != nil {
		t.Errorf("packageSecrets: true still refused: %v\n%s", err, stderr)
	}
	file = pipelineFile(", packageSecrets: true, substitute: [NOTES.txt]")
	if _, stderr, _ := run(t, "validate", file); !strings.Contains(stderr, `substitute "NOTES.txt": only YAML files`) {
		t.Errorf("a non-YAML substitute file passed:\n%s", stderr)
	}
}
