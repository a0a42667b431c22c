package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"code.gitea.io/sdk/gitea"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/sources/forge"
	"github.com/slipwayhq/slipway/test/testenv"
)

// previewProject is a Gitea repository whose pull requests `slipway serve` previews: a
// webhook for pushes and pull requests, the forge configured for comments and statuses.
type previewProject struct {
	work     *gitWork
	cfg      string
	name     string
	owner    testenv.GiteaUser
	repo     testenv.GiteaRepo
	gitea    *testenv.Gitea
	sdk      *gitea.Client
	forge    forge.Client
	server   string
	apiToken string
}

// newPreviewProject sets the repository up; policy is the repository's policy line (""
// grants everything).
func newPreviewProject(t *testing.T, env *testenv.Env, policy string) *previewProject {
	t.Helper()
	admin := env.Gitea(t)
	owner := admin.CreateUser(t, "owner")
	as := admin.As(owner)
	repo := as.CreateRepo(t, "", testenv.UniqueName(t))
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "forge-token")
	secret := "preview-hook-" + owner.Name
	for f, content := range map[string]string{tokenFile: owner.Token, filepath.Join(dir, "hook-secret"): secret} {
		if err := os.WriteFile(f, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	name := strings.ToLower(testenv.UniqueName(t))
	extra := fmt.Sprintf("poll: 0s\nwebhook: {type: gitea, secretFile: hook-secret}\nforge: {type: gitea, url: %q, tokenFile: %s}", as.URL, tokenFile)
	if policy != "" {
		extra += "\n" + policy
	}
	cfg := writeConfigFor(t, env, dir, name, as.CloneURL(owner.Name, repo.Name), owner.Name, owner.Token, extra)
	server, apiToken := withAPI(t, cfg)
	as.CreateHook(t, owner.Name, repo.Name, testenv.GiteaHookOptions{URL: server + "/hooks/" + name, Secret: secret,
		Events: []string{"push", "pull_request", "pull_request_sync"}})
	sdk, err := gitea.NewClient(as.URL, gitea.SetToken(owner.Token))
	if err != nil {
		t.Fatal(err)
	}
	w := &gitWork{t: t, dir: t.TempDir(), pushURL: as.PushURL(owner.Name, repo.Name)}
	w.git("init", "--initial-branch=master", ".")
	return &previewProject{work: w, cfg: cfg, name: name, owner: owner, repo: repo, gitea: as, sdk: sdk,
		forge: giteaForge(t, as, as.CloneURL(owner.Name, repo.Name), owner.Token), server: server, apiToken: apiToken}
}

// previewComments are the comments on the pull request that carry the preview's marker.
func (p *previewProject) previewComments(t *testing.T, number int64) []*gitea.Comment {
	t.Helper()
	cs, _, err := p.sdk.ListIssueComments(p.owner.Name, p.repo.Name, number, gitea.ListIssueCommentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []*gitea.Comment
	for _, c := range cs {
		if strings.Contains(c.Body, "<!-- slipway:preview") {
			out = append(out, c)
		}
	}
	return out
}

// previewPipeline deploys 2048_env.yaml; triggers: pushes to master and pull requests.
func previewPipeline(registry, ns, triggers string) string {
	return string(deployPipeline(registry, ns, "triggers: "+triggers+"\n", "30s", ""))
}

func withReplicas(manifests string, n int) string {
	return strings.Replace(manifests, "spec:\n  selector:", fmt.Sprintf("spec:\n  replicas: %d\n  selector:", n), 1)
}

// TestPullRequestPreviewOnGitea: a pull request that changes the Deployment's replicas gets
// one comment with the Deployment's diff and slipway/preview success; a second push edits
// that comment instead of adding one; the live Deployment is untouched throughout and no
// run starts.
func TestPullRequestPreviewOnGitea(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	p := newPreviewProject(t, env, "")
	manifests := string(readExample(t, env, "2048-yaml/2048_env.yaml"))
	p.work.commit("first", map[string]string{
		".pipeline.yaml": previewPipeline(env.Registry, ns, "{push: {}, pullRequest: {}}"), "2048_env.yaml": manifests})
	p.work.push("master")
	d := startAPIServe(t, p.cfg, p.server, p.apiToken)
	waitPipelineHistory(t, p.cfg, "jack-2048", 90*time.Second, "run 1 succeeded", func(h []historyEntry) bool {
		return len(h) == 1 && h[0].Status == "succeeded"
	})
	ctx := t.Context()
	live, err := cs.AppsV1().Deployments(ns).Get(ctx, "jack-2048", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	untouched := func(when string) {
		t.Helper()
		now, err := cs.AppsV1().Deployments(ns).Get(ctx, "jack-2048", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if now.Generation != live.Generation || *now.Spec.Replicas != *live.Spec.Replicas ||
			now.Spec.Template.Spec.Containers[0].Image != live.Spec.Template.Spec.Containers[0].Image {
			t.Fatalf("%s: the live Deployment changed: generation %d -> %d, replicas %d -> %d", when,
				live.Generation, now.Generation, *live.Spec.Replicas, *now.Spec.Replicas)
		}
	}

	p.work.git("checkout", "-q", "-b", "more-replicas")
	head1 := p.work.commit("three replicas", map[string]string{"2048_env.yaml": withReplicas(manifests, 3)})
	p.work.push("more-replicas")
	opened := time.Now()
	pr := p.gitea.CreatePull(t, p.owner.Name, p.repo.Name, "more-replicas", "master", "Three replicas")
	s := waitStatus(t, p.forge, head1, "slipway/preview", forge.StatusSuccess, 60*time.Second)
	t.Logf("pull request #%d opened: slipway/preview success %s later: %q", pr.Number, time.Since(opened).Round(time.Millisecond), s.Description)
	if s.Description != "would create 0, change 1, delete 0 objects" {
		t.Errorf("status description %q", s.Description)
	}
	comments := p.previewComments(t, pr.Number)
	if len(comments) != 1 {
		t.Fatalf("%d preview comments, want 1", len(comments))
	}
	first := comments[0]
	for _, want := range []string{
		"Slipway preview of " + head1[:7],
		fmt.Sprintf("#### Cluster `e2e`, namespace `%s`", ns),
		fmt.Sprintf("✏️ **changed** `Deployment/%s/jack-2048` (2048_env.yaml, document 1, task `jack-2048/deploy-2048`)", ns),
		"+  replicas: 3\n",
		// The image the next run would build: BUILD_ID 2.
		"+      - image: " + env.Registry + "/devops/jack-2048:alpha-2\n",
		"- 2 objects unchanged",
		"Not changed by this pull request.",
	} {
		if !strings.Contains(first.Body, want) {
			t.Errorf("the preview comment lacks %q:\n%s", want, first.Body)
		}
	}
	untouched("after the first preview")

	// A second push: the same comment is edited.
	head2 := p.work.commit("four replicas", map[string]string{"2048_env.yaml": withReplicas(manifests, 4)})
	p.work.push("more-replicas")
	waitStatus(t, p.forge, head2, "slipway/preview", forge.StatusSuccess, 60*time.Second)
	comments = p.previewComments(t, pr.Number)
	if len(comments) != 1 || comments[0].ID != first.ID {
		t.Fatalf("after a second push: %d preview comments (first id %d), want the one comment %d edited", len(comments), comments[0].ID, first.ID)
	}
	if body := comments[0].Body; !strings.Contains(body, "Slipway preview of "+head2[:7]) || !strings.Contains(body, "+  replicas: 4\n") {
		t.Errorf("the edited comment does not show the second head:\n%s", body)
	}
	untouched("after the second preview")
	if h := history(t, p.cfg, "jack-2048"); len(h) != 1 {
		t.Errorf("previews started runs: %+v", h)
	}
	d.stop(t)
}

// TestPullRequestPreviewFailuresBlockMergeOnGitea: a pull request with an invalid manifest
// and one whose Service a CEL rule denies each get slipway/preview failure naming the
// file:line or the rule and object, and Gitea's branch protection requiring that status
// refuses to merge them.
func TestPullRequestPreviewFailuresBlockMergeOnGitea(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	p := newPreviewProject(t, env, `policy:
  clusters: ['*']
  namespaces: ['*']
  registries: ['*']
  rules:
    - name: no-loadbalancer
      expression: "object.kind != 'Service' || !has(object.spec.type) || object.spec.type != 'LoadBalancer'"
      message: LoadBalancer Services are not allowed`)
	manifests := string(readExample(t, env, "2048-yaml/2048_env.yaml"))
	p.work.commit("first", map[string]string{
		".pipeline.yaml": previewPipeline(env.Registry, ns, "{pullRequest: {}}"), "2048_env.yaml": manifests})
	p.work.push("master")
	if _, _, err := p.sdk.CreateBranchProtection(p.owner.Name, p.repo.Name, gitea.CreateBranchProtectionOption{
		BranchName: "master", EnableStatusCheck: true, StatusCheckContexts: []string{"slipway/preview"},
	}); err != nil {
		t.Fatalf("branch protection: %v", err)
	}
	d := startAPIServe(t, p.cfg, p.server, p.apiToken)

	broken := strings.Replace(manifests, "  name: jack-2048\nspec:", "  name: jack-2048\n  bad: : x\nspec:", 1)
	loadBalancer := strings.Replace(manifests, "  type: ClusterIP\n", "  type: LoadBalancer\n", 1)
	if broken == manifests || loadBalancer == manifests {
		t.Fatal("the example's manifests are not written as this test expects")
	}
	cases := []struct {
		branch, manifests, want string
	}{
		// The manifest is named by file and line (how the line is counted is render's).
		{"broken-manifest", broken, "2048_env.yaml:"},
		{"load-balancer", loadBalancer, "task deploy-2048: rule no-loadbalancer: Service/" + ns + "/svc-2048 (2048_env.yaml, document 2)"},
	}
	for _, c := range cases {
		p.work.git("checkout", "-q", "-B", c.branch, "master")
		head := p.work.commit(c.branch, map[string]string{"2048_env.yaml": c.manifests})
		p.work.push(c.branch)
		pr := p.gitea.CreatePull(t, p.owner.Name, p.repo.Name, c.branch, "master", c.branch)
		s := waitStatus(t, p.forge, head, "slipway/preview", forge.StatusFailure, 60*time.Second)
		if !strings.Contains(s.Description, c.want) || (c.branch == "broken-manifest" && !strings.Contains(s.Description, "mapping values are not allowed")) {
			t.Errorf("%s: status description %q, want it to name %q", c.branch, s.Description, c.want)
		}
		comments := p.previewComments(t, pr.Number)
		if len(comments) != 1 || !strings.Contains(comments[0].Body, "this head would fail") {
			t.Errorf("%s: preview comments %d, want 1 saying the head would fail", c.branch, len(comments))
		}
		merged, resp, err := p.sdk.MergePullRequest(p.owner.Name, p.repo.Name, pr.Number, gitea.MergePullRequestOption{Style: gitea.MergeStyleMerge})
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		if merged || code == 200 || p.gitea.GetPull(t, p.owner.Name, p.repo.Name, pr.Number).Merged {
			t.Fatalf("%s: Gitea merged a pull request whose required slipway/preview failed (HTTP %d)", c.branch, code)
		}
		t.Logf("%s: %q; merge refused with HTTP %d: %v", c.branch, s.Description, code, err)
		p.work.git("checkout", "-q", "master")
	}
	d.stop(t)
}

// TestPullRequestPreviewOfChartOnGitea: a deploy-chart task is previewed through Helm's
// template with the task's values: the pull request's new value shows as a diff of the
// release's ConfigMap, an object the chart no longer renders as deleted, and the release
// stays at its revision.
func TestPullRequestPreviewOfChartOnGitea(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	p := newPreviewProject(t, env, "")
	pipeline := func(greeting string) string {
		return `name: chart-app
triggers: {push: {}, pullRequest: {}}
stages:
  - name: deploy
    tasks:
      - name: deploy-app
        type: deploy-chart
        chartDir: app
        release: app
        cluster: e2e
        namespace: ` + ns + `
        wait: 30s
        values: {greeting: ` + greeting + `}
`
	}
	configMap := func(name, value string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\ndata:\n  greeting: " + value + "\n"
	}
	p.work.commit("chart", map[string]string{
		".pipeline.yaml":              pipeline("hello"),
		"app/Chart.yaml":              "apiVersion: v2\nname: app\nversion: 0.1.0\n",
		"app/values.yaml":             "greeting: default\n",
		"app/templates/greeting.yaml": configMap("greeting", "{{ .Values.greeting | quote }}"),
		"app/templates/extra.yaml":    configMap("extra", "x"),
	})
	p.work.push("master")
	d := startAPIServe(t, p.cfg, p.server, p.apiToken)
	waitPipelineHistory(t, p.cfg, "chart-app", 90*time.Second, "run 1 succeeded", func(h []historyEntry) bool {
		return len(h) == 1 && h[0].Status == "succeeded"
	})

	p.work.git("checkout", "-q", "-b", "greet")
	p.work.git("rm", "-q", "app/templates/extra.yaml")
	head := p.work.commit("say hi", map[string]string{".pipeline.yaml": pipeline("hi")})
	p.work.push("greet")
	pr := p.gitea.CreatePull(t, p.owner.Name, p.repo.Name, "greet", "master", "Say hi")
	s := waitStatus(t, p.forge, head, "slipway/preview", forge.StatusSuccess, 60*time.Second)
	if s.Description != "would create 0, change 1, delete 1 objects" {
		t.Errorf("status description %q", s.Description)
	}
	comments := p.previewComments(t, pr.Number)
	if len(comments) != 1 {
		t.Fatalf("%d preview comments, want 1", len(comments))
	}
	for _, want := range []string{
		fmt.Sprintf("✏️ **changed** `ConfigMap/%s/greeting`", ns),
		"-  greeting: hello\n+  greeting: hi\n",
		fmt.Sprintf("🗑️ **deleted** `ConfigMap/%s/extra`", ns),
		"-        values: {greeting: hello}\n+        values: {greeting: hi}\n", // the pipeline file's own diff
	} {
		if !strings.Contains(comments[0].Body, want) {
			t.Errorf("the preview comment lacks %q:\n%s", want, comments[0].Body)
		}
	}
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(t.Context(), "greeting", metav1.GetOptions{})
	if err != nil || cm.Data["greeting"] != "hello" {
		t.Fatalf("the live ConfigMap changed: %+v, %v", cm.Data, err)
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Get(t.Context(), "extra", metav1.GetOptions{}); err != nil {
		t.Fatalf("the preview deleted a ConfigMap: %v", err)
	}
	secrets, err := cs.CoreV1().Secrets(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "owner=helm,name=app"})
	if err != nil || len(secrets.Items) != 1 {
		t.Fatalf("release revisions after the preview: %d, %v; want 1", len(secrets.Items), err)
	}
	d.stop(t)
}
