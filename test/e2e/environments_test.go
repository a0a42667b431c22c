package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/test/testenv"
)

// environmentsPipeline builds the 2048 image once and deploys it to dev; staging and prod
// (behind alice's approval) get it by promotion. Each environment has its own domain.
func environmentsPipeline(registry, dev, staging, prod string) []byte {
	return []byte(`name: jack-2048
variables:
  REGISTRY: ` + registry + `
  DOMAIN: dev.2048.example.cn
environments:
  - name: dev
    cluster: e2e
    namespace: ` + dev + `
  - name: staging
    cluster: e2e
    namespace: ` + staging + `
    variables: {DOMAIN: "${ENVIRONMENT}.2048.example.cn"}
  - name: prod
    cluster: e2e
    namespace: ` + prod + `
    variables: {DOMAIN: 2048.example.cn}
    approval:
      manual: {approvers: [alice]}
stages:
  - name: build
    tasks:
      - name: build-2048-image
        type: build-image
        dockerfile: Dockerfile
        registry: ${REGISTRY}
        workspace: devops
        image: jack-2048
        tag: alpha-${BUILD_ID}
  - name: deploy
    tasks:
      - name: deploy-2048
        type: deploy-yaml
        path: 2048_env.yaml
        environment: dev
        wait: 60s
        pinImages: true
`)
}

type deploymentEntry struct {
	Environment string   `json:"environment"`
	Task        string   `json:"task"`
	BuildID     int64    `json:"buildId"`
	DeployedBy  int64    `json:"deployedByBuild"`
	Namespace   string   `json:"namespace"`
	Images      []string `json:"images"`
	By          string   `json:"by"`
}

// One build, deployed to dev by its run, is promoted to staging and then, once alice
// approves, to prod: the same digest runs in all three namespaces, nothing is built again,
// each environment renders its own variables, promotions out of order are refused, and
// `slipway get deployments` says what runs where and who put it there.
func TestEnvironmentsPromoteTheSameArtifact(t *testing.T) {
	env := testenv.Get(t)
	dev, staging, prod := env.Namespace(t), env.Namespace(t), env.Namespace(t)
	cs := env.Clientset(t)
	ctx := context.Background()
	repo, _, cfg := newProject(t, env)
	server, tokenFile := withAPI(t, cfg)
	dir := filepath.Dir(cfg)
	alice, aliceEntry := newIdentity(t, dir, "alice", "approver")
	ops, opsEntry := newIdentity(t, dir, "ops", "operator")
	if err := os.WriteFile(filepath.Join(dir, "api-users.yaml"), []byte("users:\n"+aliceEntry+opsEntry), 0o600); err != nil {
		t.Fatal(err)
	}
	appendConfig(t, cfg, "apiTokensFile: api-users.yaml\n")
	files := seed11Repo(t, env)
	files[".pipeline.yaml"] = environmentsPipeline(env.Registry, dev, staging, prod)
	repo.commit("environments", files)
	d := startAPIServe(t, cfg, server, tokenFile)
	as := func(tokenFile string, args ...string) (string, int) {
		return slipway(t, append(args, "--server", server, "--token-file", tokenFile)...)
	}
	waitPipelineHistory(t, cfg, "jack-2048", 120*time.Second, "run 1 succeeded", func(h []historyEntry) bool {
		return len(h) == 1 && h[0].Status == "succeeded"
	})
	image := env.Registry + "/devops/jack-2048"
	digest, err := crane.Digest(image+":alpha-1", crane.Insecure)
	if err != nil {
		t.Fatalf("alpha-1 is not in the registry: %v", err)
	}
	want := image + ":alpha-1@" + digest
	deployed := func(ns string) (string, string) {
		t.Helper()
		dep, err := cs.AppsV1().Deployments(ns).Get(ctx, "jack-2048", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("deployment in %s: %v", ns, err)
		}
		ing, err := cs.NetworkingV1().Ingresses(ns).Get(ctx, "ing-2048", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("ingress in %s: %v", ns, err)
		}
		return dep.Spec.Template.Spec.Containers[0].Image, ing.Spec.Rules[0].Host
	}
	if img, host := deployed(dev); img != want || host != "dev.2048.example.cn" {
		t.Fatalf("dev runs %s for %s, want %s for dev.2048.example.cn", img, host, want)
	}

	// Out of order: prod's predecessor (staging) does not run #1 yet, and dev is where runs
	// deploy, not a promotion target.
	if out, code := as(ops, "promote", "jack-2048", "1", "--to", "prod"); code == 0 || !strings.Contains(out, "422") || !strings.Contains(out, "nothing is deployed healthy in staging yet") {
		t.Fatalf("promote to prod before staging: exit %d\n%s", code, out)
	}
	if out, code := as(ops, "promote", "jack-2048", "1", "--to", "dev"); code == 0 || !strings.Contains(out, "first environment") {
		t.Fatalf("promote to dev: exit %d\n%s", code, out)
	}
	if out, code := as(ops, "promote", "jack-2048", "1", "--to", "qa"); code == 0 || !strings.Contains(out, `no such environment (its environments: "dev", "staging", "prod")`) {
		t.Fatalf("promote to qa: exit %d\n%s", code, out)
	}

	out, code := as(ops, "promote", "jack-2048", "1", "--to", "staging", "--wait")
	if code != 0 || !strings.Contains(out, "#2 succeeded (trigger promote") || !strings.Contains(out, "parent #1") {
		t.Fatalf("promote to staging: exit %d\n%s", code, out)
	}
	if img, host := deployed(staging); img != want || host != "staging.2048.example.cn" {
		t.Fatalf("staging runs %s for %s, want %s for staging.2048.example.cn", img, host, want)
	}

	// prod waits at its gate with nothing applied until alice approves.
	if out, code := as(ops, "promote", "jack-2048", "1", "--to", "prod"); code != 0 {
		t.Fatalf("promote to prod: exit %d\n%s", code, out)
	}
	h := waitPipelineHistory(t, cfg, "jack-2048", 60*time.Second, "run 3 awaiting approval", func(h []historyEntry) bool {
		return len(h) == 3 && h[0].Status == "awaiting_approval"
	})
	if !strings.Contains(h[0].Reason, "stage promote-to-prod waits for a manual approval from alice") {
		t.Errorf("run 3 reason %q", h[0].Reason)
	}
	if _, err := cs.AppsV1().Deployments(prod).Get(ctx, "jack-2048", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("prod was deployed before its approval: %v", err)
	}
	if out, code := as(alice, "approve", "jack-2048", "3", "--wait"); code != 0 || !strings.Contains(out, "#3 succeeded") {
		t.Fatalf("alice's approval: exit %d\n%s", code, out)
	}
	if img, host := deployed(prod); img != want || host != "2048.example.cn" {
		t.Fatalf("prod runs %s for %s, want %s for 2048.example.cn", img, host, want)
	}
	tags, err := crane.ListTags(image, crane.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tags, []string{"alpha-1"}) {
		t.Errorf("the registry holds %v: a promotion built something", tags)
	}
	// The dev deploy was not touched by the promotions (its own revisions, prune set).
	if img, _ := deployed(dev); img != want {
		t.Errorf("dev runs %s after the promotions", img)
	}

	out, code = slipway(t, "get", "deployments", "--config", cfg, "jack-2048", "-o", "json")
	if code != 0 {
		t.Fatalf("get deployments: exit %d\n%s", code, out)
	}
	var rows []deploymentEntry
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s %s #%d by #%d %s %v %s", r.Environment, r.Task, r.BuildID, r.DeployedBy, r.Namespace, r.Images, r.By))
	}
	wantRows := []string{
		fmt.Sprintf("dev deploy-2048 #1 by #1 %s [%s] push", dev, want),
		fmt.Sprintf("staging deploy-2048 #1 by #2 %s [%s] ops", staging, want),
		fmt.Sprintf("prod deploy-2048 #1 by #3 %s [%s] ops", prod, want),
	}
	if !slices.Equal(got, wantRows) {
		t.Errorf("deployments:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantRows, "\n"))
	}
	var actions []string
	for _, e := range auditLogOf(t, cfg, "jack-2048") {
		actions = append(actions, e.Actor+":"+e.Action)
	}
	if got := strings.Join(actions, " "); !strings.Contains(got, "ops:promote") || !strings.Contains(got, "alice:approve") {
		t.Errorf("audit log %q lacks the promotions or the approval", got)
	}
	d.stop(t)
}

// windowPipeline deploys a ConfigMap to an environment with the given window lines.
func windowPipeline(ns, windowLines string) []byte {
	return []byte(`name: windowed
environments:
  - name: prod
    cluster: e2e
    namespace: ` + ns + `
` + windowLines + `stages:
  - name: deploy
    tasks:
      - {name: config, type: deploy-yaml, path: cm, environment: prod}
`)
}

// A run reaching an environment outside its deploy windows waits in awaiting_window, with
// nothing applied, and deploys once the window opens; with onClosedWindow: fail it fails at
// once instead.
func TestDeployWindowHoldsTheRun(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	ctx := context.Background()

	// fail: a deny window that is open now.
	repo, repoName, cfg := newProject(t, env)
	repo.commit("denied", map[string][]byte{
		".pipeline.yaml": windowPipeline(ns, "    onClosedWindow: fail\n    windows:\n      - {kind: deny, cron: \"* * * * *\", duration: 1h}\n"),
		"cm/cm.yaml":     configMapNamed("windowed"),
	})
	out, code := slipway(t, "run", "--config", cfg, "--repo", repoName)
	if code == 0 || !strings.Contains(out, "environment prod is outside its deploy windows: deny window \"* * * * *\" (1h0m0s, UTC) is open until") {
		t.Fatalf("run in a deny window: exit %d\n%s", code, out)
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "windowed", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a run outside its window deployed: %v", err)
	}

	// wait: an allow window opening at the next whole minute (or the one after, so the
	// run surely reaches it while it is closed), for one minute.
	opens := time.Now().UTC().Truncate(time.Minute).Add(time.Minute)
	if time.Until(opens) < 20*time.Second {
		opens = opens.Add(time.Minute)
	}
	window := fmt.Sprintf("    windows:\n      - {kind: allow, cron: \"%d %d * * *\", duration: 1m}\n", opens.Minute(), opens.Hour())
	repo.commit("allowed later", map[string][]byte{".pipeline.yaml": windowPipeline(ns, window)})
	d := startServe(t, cfg)
	h := waitPipelineHistory(t, cfg, "windowed", 60*time.Second, "a run awaiting its window", func(h []historyEntry) bool {
		return len(h) == 2 && h[0].Status == "awaiting_window"
	})
	if want := "stage deploy waits for a deploy window of environment prod: no allow window is open; the next opens at " + opens.Format(time.RFC3339); h[0].Reason != want {
		t.Errorf("reason %q, want %q", h[0].Reason, want)
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "windowed", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the run deployed before its window opened: %v", err)
	}
	h = waitPipelineHistory(t, cfg, "windowed", time.Until(opens)+60*time.Second, "the run deployed in its window", func(h []historyEntry) bool {
		return len(h) == 2 && h[0].Status == "succeeded"
	})
	started, err := time.Parse(time.RFC3339Nano, h[0].Started)
	if err != nil {
		t.Fatal(err)
	}
	if cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "windowed", metav1.GetOptions{}); err != nil {
		t.Fatalf("the run did not deploy in its window: %v", err)
	} else if cm.CreationTimestamp.Time.Before(opens.Add(-time.Second)) || started.After(opens) {
		t.Errorf("the ConfigMap was created at %s, the run started at %s; the window opened at %s", cm.CreationTimestamp, started, opens)
	}
	d.stop(t)
}
