package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/pipeline"
)

func grantsPolicy(t *testing.T, grants string) Policy {
	t.Helper()
	cfg, err := config.Parse("slipway.yaml", []byte(`dataDir: /data
registry: {default: hub.example.com}
charts: {repository: 'oci://hub.example.com/charts'}
clusters: [{name: prod, inCluster: true}, {name: staging, inCluster: true}]
repositories:
  - name: shop
    url: https://git.example.com/shop.git
    branch: main
    policy:
`+grants))
	if err != nil {
		t.Fatal(err)
	}
	return For(cfg, "shop")
}

func TestCheckPipelineSecretsAndPushes(t *testing.T) {
	ps, err := pipeline.Parse("p.yaml", []byte(`name: app
variables: {REG: hub.example.com/elsewhere}
secrets:
  - {name: TOKEN, file: /etc/slipway/api-token}
  - {name: DB, file: /srv/secrets/shop/../shop/db}
  - {name: OTHER, secret: payments-db, key: password, namespace: payments, cluster: prod}
  - {name: OWN, secret: shop-db, key: password, namespace: shop, cluster: prod}
stages:
  - name: build
    tasks:
      - {name: web, type: build-image, image: web, tag: "1", workspace: shop}
      - {name: miner, type: build-image, image: miner, tag: "1", registry: quay.io}
      - {name: later, type: build-image, image: x, tag: "1", registry: "${REG}"}
      - {name: known, type: build-image, image: x, tag: "1", registry: "${GIT_BRANCH}.example.com"}
      - {name: chart, type: publish-chart, chartDir: chart, chart: shop, version: "1.0.0"}
      - {name: chart2, type: publish-chart, chartDir: chart, chart: shop, version: "1.0.0", repository: 'oci://hub.example.com/other'}
`))
	if err != nil {
		t.Fatal(err)
	}
	p := grantsPolicy(t, `      push: [hub.example.com/shop, hub.example.com/charts/shop]
      secrets:
        kubernetes: [{cluster: prod, namespace: shop, name: 'shop-*'}]
        files: [/srv/secrets/shop]
`)
	got := p.CheckPipeline(ps[0])
	want := []struct{ field, rule, reason string }{
		{"secrets[0].file", RuleSecrets, "secret TOKEN reads file /etc/slipway/api-token, which is not granted to repository shop (its policy.secrets.files in slipway.yaml grants /srv/secrets/shop)"},
		{"secrets[2].secret", RuleSecrets, `secret OTHER reads Kubernetes Secret payments/payments-db on cluster "prod", which is not granted to repository shop (its policy.secrets.kubernetes in slipway.yaml grants prod/shop/shop-*)`},
		{"stages[0].tasks[1].registry", RulePush, "task miner pushes to quay.io/miner, which is not granted to repository shop (its policy.push in slipway.yaml grants hub.example.com/shop, hub.example.com/charts/shop)"},
		{"stages[0].tasks[2].registry", RulePush, "task later pushes to hub.example.com/elsewhere/x, which is not granted"},
		{"stages[0].tasks[5].repository", RulePush, "task chart2 pushes to hub.example.com/other/shop, which is not granted"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d denials, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].Field != w.field || got[i].Rule != w.rule || !strings.Contains(got[i].Reason, w.reason) {
			t.Errorf("denial %d: %+v, want %+v", i, got[i], w)
		}
	}
	if got[0].At != "p.yaml:4:25" {
		t.Errorf("denial placed at %q", got[0].At)
	}
	// No grants at all: every secret and push is denied.
	if got := grantsPolicy(t, "      clusters: [prod]\n").CheckPipeline(ps[0]); len(got) != 9 {
		t.Errorf("default deny: %d denials, want 9 (4 secrets, the 5 pushes known before the run): %v", len(got), got)
	}
}

func TestSecretFileResolvesSymlinks(t *testing.T) {
	base := t.TempDir()
	granted := filepath.Join(base, "granted")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{granted, outside} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(granted, "db"), "ok")
	write(filepath.Join(outside, "token"), "s3cr3t")
	if err := os.Symlink(filepath.Join(outside, "token"), filepath.Join(granted, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(granted, "db"), filepath.Join(outside, "inward")); err != nil {
		t.Fatal(err)
	}
	p := grantsPolicy(t, "      secrets: {files: ["+granted+"]}\n")

	root, rel, err := p.SecretFile("DB", filepath.Join(granted, "db"))
	if err != nil || rel != "db" {
		t.Fatalf("granted file: %q %q %v", root, rel, err)
	}
	_, _, err = p.SecretFile("X", filepath.Join(granted, "link"))
	if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "resolves to "+filepath.Join(outside, "token")) {
		t.Errorf("a link out of the granted folder: %v", err)
	}
	// The path as written must be granted too, so a link from elsewhere into the folder
	// is not a way around reading the pipeline's field.
	if _, _, err := p.SecretFile("Y", filepath.Join(outside, "inward")); !errors.Is(err, ErrDenied) {
		t.Errorf("a path outside the grant: %v", err)
	}
	if _, _, err := p.SecretFile("Z", filepath.Join(granted, "..", "outside", "token")); !errors.Is(err, ErrDenied) {
		t.Errorf("dot-dot out of the grant: %v", err)
	}
	if _, _, err := grantsPolicy(t, "      clusters: [prod]\n").SecretFile("DB", filepath.Join(granted, "db")); !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "grants none") {
		t.Errorf("files are off by default: %v", err)
	}
}

func TestPushDenied(t *testing.T) {
	p := grantsPolicy(t, "      push: [hub.example.com/shop, docker.io/acme]\n")
	for repo, ok := range map[string]bool{
		"hub.example.com/shop/web": true, "hub.example.com/shop": true, "hub.example.com/shopping/x": false,
		"docker.io/acme/app": true, "index.docker.io/acme/app": true, "hub.example.com/other": false,
	} {
		if got := p.PushDenied("t", repo) == ""; got != ok {
			t.Errorf("%s: granted %v, want %v", repo, got, ok)
		}
	}
}
