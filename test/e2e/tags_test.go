package e2e

import (
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/test/testenv"
)

// releasePipeline builds an image and publishes a chart, both versioned by VERSION, on every
// push to the tracked branch and on tags v*.
func releasePipeline(image string) []byte {
	return []byte(`name: release
triggers:
  push: {}
  tags: ['v*']
stages:
  - name: publish
    tasks:
      - name: image
        type: build-image
        workspace: e2e
        image: ` + image + `
        tag: ${VERSION}
      - name: chart
        type: publish-chart
        chartDir: nginx
        chart: nginx
        version: ${VERSION}
`)
}

// withCharts adds a chart repository to a written slipway.yaml.
func withCharts(t *testing.T, cfg, chartRepo string) {
	t.Helper()
	raw, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, append(raw, "charts:\n  repository: "+chartRepo+"\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
}

// imageTags lists an image repository's tags in the environment's registry.
func imageTags(t *testing.T, env *testenv.Env, image string) []string {
	t.Helper()
	tags, err := crane.ListTags(env.Registry+"/e2e/"+image, crane.Insecure)
	if err != nil {
		t.Fatalf("list the tags of %s: %v", image, err)
	}
	return tags
}

// TestTagRunsReleaseVersions: a branch push gets the fallback VERSION, the tag v1.4.0 runs
// the pipeline file at its commit with VERSION 1.4.0 (image and chart 1.4.0 in the real
// registry), a tag matching no triggers.tags starts nothing, and a tag moved afterwards is
// recorded in the audit log and not run again.
func TestTagRunsReleaseVersions(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	chartRepo := "oci://" + env.Registry + "/e2e/" + ns
	image := ns + "-app"
	repo, _, cfg := newProject(t, env)
	withCharts(t, cfg, chartRepo)
	files := map[string][]byte{}
	for name, body := range exampleFiles(t, env, "nginx-chart") {
		if strings.HasPrefix(name, "nginx/") {
			files[name] = body
		}
	}
	files["Dockerfile"] = []byte("FROM " + env.BaseImage + "\nCOPY index.html /www/index.html\n")
	files["index.html"] = []byte("<h1>release</h1>\n")
	files[".pipeline.yaml"] = releasePipeline(image)
	first := repo.commit("first", files)

	d := startServe(t, cfg)
	h := waitPipelineHistory(t, cfg, "release", 120*time.Second, "run 1 of the branch head", func(h []historyEntry) bool {
		return len(h) == 1 && h[0].Status != "queued" && h[0].Status != "running"
	})
	if h[0].Status != "succeeded" || h[0].Branch != "master" || h[0].Tag != "" || h[0].Commit != first {
		t.Fatalf("run 1: %+v, want a succeeded run of master at %s", h[0], first)
	}
	// The branch's run has the fallback version: 0.0.0-BUILD_ID+SHORT_COMMIT (as an image
	// tag, '+' becomes '_').
	fallback := "0.0.0-1+" + first[:7]
	pullChart(t, chartRepo, "nginx", fallback)
	if tags := imageTags(t, env, image); !slices.Equal(tags, []string{"0.0.0-1_" + first[:7]}) {
		t.Fatalf("image tags after the branch run: %v", tags)
	}

	// The tag runs the pipeline at the tagged commit, with VERSION 1.4.0.
	repo.git("tag", "-a", "v1.4.0", "-m", "release 1.4.0")
	repo.push("refs/tags/v1.4.0")
	h = waitPipelineHistory(t, cfg, "release", 120*time.Second, "run 2 of the tag", func(h []historyEntry) bool {
		return len(h) == 2 && h[0].Status != "queued" && h[0].Status != "running"
	})
	if h[0].Status != "succeeded" || h[0].Tag != "v1.4.0" || h[0].Commit != first || h[0].Trigger != "push" {
		t.Fatalf("run 2: %+v, want a succeeded push run of tag v1.4.0 at %s", h[0], first)
	}
	if ch := pullChart(t, chartRepo, "nginx", "1.4.0"); ch.Metadata.Version != "1.4.0" {
		t.Fatalf("chart version %q", ch.Metadata.Version)
	}
	if tags := imageTags(t, env, image); !slices.Contains(tags, "1.4.0") {
		t.Fatalf("image tags after the tag's run: %v, want 1.4.0 among them", tags)
	}
	text, code := slipway(t, "history", "--config", cfg, "release")
	if code != 0 || !strings.Contains(text, "tag:v1.4.0") || !strings.Contains(text, "master") {
		t.Fatalf("history shows no ref column:\n%s", text)
	}

	// A tag matching no triggers.tags starts nothing.
	repo.git("tag", "nightly-5")
	repo.push("refs/tags/nightly-5")
	d.waitOutput(t, 60*time.Second, `matches none of v*`)

	// Moved: the tag now points at a new commit. Recorded against run 2, never run again.
	second := repo.commit("second", map[string][]byte{"index.html": []byte("<h1>second</h1>\n")})
	repo.git("tag", "-f", "-a", "v1.4.0", "-m", "release 1.4.0 again")
	repo.push("refs/tags/v1.4.0")
	deadline := time.Now().Add(60 * time.Second)
	var moved *auditEntry
	for moved == nil {
		for _, e := range auditLogOf(t, cfg, "release") {
			if e.Action == "tag-moved" {
				moved = &e
			}
		}
		if moved == nil && time.Now().After(deadline) {
			t.Fatalf("no tag-moved audit entry:\n%s", d.output())
		}
		time.Sleep(300 * time.Millisecond)
	}
	if moved.BuildID != 2 || moved.Actor != "slipway" || !strings.Contains(moved.Reason, first[:12]) || !strings.Contains(moved.Reason, second[:12]) {
		t.Fatalf("tag-moved entry %+v, want run 2 and both commits", *moved)
	}
	h = waitPipelineHistory(t, cfg, "release", 120*time.Second, "run 3 of the second commit", func(h []historyEntry) bool {
		return len(h) >= 3 && h[0].Commit == second && h[0].Status != "queued" && h[0].Status != "running"
	})
	for _, r := range h {
		if r.Tag != "" && r.BuildID != 2 {
			t.Fatalf("the moved tag ran again: %+v", h)
		}
	}
	if len(h) != 3 || h[0].Status != "succeeded" || h[0].Branch != "master" {
		t.Fatalf("history %+v, want the second commit's branch run as run 3 and nothing else", h)
	}
}

// branchPipeline records GIT_BRANCH in a ConfigMap: quick to deploy, and it shows which
// branch's run applied last.
func branchPipeline(ns string) []byte {
	return []byte(`name: branches
stages:
  - name: deploy
    tasks:
      - name: config
        type: deploy-yaml
        path: config.yaml
        cluster: e2e
        namespace: ` + ns + `
        wait: 0s
        stableFor: 0s
`)
}

// TestSeveralBranchesRunSeparately: a repository tracking branches [master, release/*] runs
// each tracked branch's pushes with its GIT_BRANCH, BUILD_IDs counting per pipeline across
// them, the branch in history; a push to an untracked branch starts nothing.
func TestSeveralBranchesRunSeparately(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	repo, _, cfg := newProject(t, env)
	raw, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tracked := strings.Replace(string(raw), "    branch: master\n", "    branches: [master, 'release/*']\n", 1)
	if tracked == string(raw) {
		t.Fatal("the written slipway.yaml has no branch: master line to replace")
	}
	if err := os.WriteFile(cfg, []byte(tracked), 0o600); err != nil {
		t.Fatal(err)
	}
	config := []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: built-from}\ndata: {branch: \"${GIT_BRANCH}\", build: \"${BUILD_ID}\"}\n")
	onMaster := repo.commit("master", map[string][]byte{".pipeline.yaml": branchPipeline(ns), "config.yaml": config})

	startServe(t, cfg)
	waitPipelineHistory(t, cfg, "branches", 60*time.Second, "run 1 of master", func(h []historyEntry) bool {
		return len(h) == 1 && h[0].Status == "succeeded"
	})

	repo.git("checkout", "-q", "-b", "release/1.4")
	onRelease := repo.gitWork.commit("release fix", map[string]string{"config.yaml": string(config) + "# release\n"})
	repo.push("release/1.4")
	waitPipelineHistory(t, cfg, "branches", 60*time.Second, "run 2 of release/1.4", func(h []historyEntry) bool {
		return len(h) == 2 && h[0].Status == "succeeded"
	})
	cm, err := env.Clientset(t).CoreV1().ConfigMaps(ns).Get(t.Context(), "built-from", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["branch"] != "release/1.4" || cm.Data["build"] != "2" {
		t.Fatalf("ConfigMap data %v, want GIT_BRANCH release/1.4 and BUILD_ID 2", cm.Data)
	}

	// An untracked branch starts nothing: a later push to master is the next run, and the
	// look that finds it lists feature/x too.
	repo.git("checkout", "-q", "-b", "feature/x")
	repo.gitWork.commit("feature", map[string]string{"config.yaml": string(config) + "# feature\n"})
	repo.push("feature/x")
	repo.git("checkout", "-q", "master")
	again := repo.commit("master again", map[string][]byte{"config.yaml": append(config, "# again\n"...)})
	h := waitPipelineHistory(t, cfg, "branches", 60*time.Second, "run 3 of master", func(h []historyEntry) bool {
		return len(h) >= 3 && h[0].Commit == again && h[0].Status == "succeeded"
	})
	want := []historyEntry{{BuildID: 3, Branch: "master", Commit: again}, {BuildID: 2, Branch: "release/1.4", Commit: onRelease},
		{BuildID: 1, Branch: "master", Commit: onMaster}}
	if len(h) != len(want) {
		t.Fatalf("history %+v, want three runs: master, release/1.4, master", h)
	}
	for i, w := range want {
		if h[i].BuildID != w.BuildID || h[i].Branch != w.Branch || h[i].Commit != w.Commit || h[i].Tag != "" {
			t.Errorf("run %d: %+v, want BUILD_ID %d of %s at %s", i, h[i], w.BuildID, w.Branch, w.Commit)
		}
	}
	text, code := slipway(t, "history", "--config", cfg, "branches")
	if code != 0 || !strings.Contains(text, "REF") || !strings.Contains(text, "release/1.4") {
		t.Fatalf("history text shows no branch:\n%s", text)
	}
}

// TestWebhookGiteaTagPushRunsOnce: with polling off, a tag pushed to Gitea runs the pipeline
// through the signed webhook, with VERSION and GIT_TAG from the tag; the same tag announced
// again (a second delivery of the same push) runs nothing more.
func TestWebhookGiteaTagPushRunsOnce(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	p := newGiteaProject(t, env)
	relay := newHookRelay(t, p.hookURL)
	pipelineFile := `name: jack-2048
triggers:
  tags: ['v*']
stages:
  - name: deploy
    tasks:
      - name: config
        type: deploy-yaml
        path: config.yaml
        cluster: e2e
        namespace: ` + ns + `
        wait: 0s
        stableFor: 0s
`
	config := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: release}\ndata: {version: \"${VERSION}\", tag: \"${GIT_TAG}\", branch: \"${GIT_BRANCH}\"}\n"
	tagged, _ := p.push("first", map[string]string{".pipeline.yaml": pipelineFile, "config.yaml": config})
	d := startAPIServe(t, p.cfg, p.server, p.tokenFile)
	d.waitOutput(t, 60*time.Second, "tags present when first watched are recorded, not run")
	owner, repo := giteaOwnerRepo(t, p.work.pushURL)
	createHook(t, env, p, owner, repo, relay.srv.URL)

	p.work.git("tag", "v2.0.0")
	p.work.push("refs/tags/v2.0.0")
	h := waitHistory(t, p.cfg, 60*time.Second, "the tag's run", func(h []historyEntry) bool {
		return len(h) == 1 && h[0].Status == "succeeded"
	})
	if h[0].Tag != "v2.0.0" || h[0].Commit != tagged || h[0].Branch != "" {
		t.Fatalf("run %+v, want tag v2.0.0 at %s", h[0], tagged)
	}
	var delivered *relayed
	for _, r := range relay.deliveries() {
		if strings.Contains(string(r.body), `refs/tags/v2.0.0`) {
			delivered = &r
		}
	}
	if delivered == nil || delivered.status != http.StatusAccepted {
		t.Fatalf("no accepted delivery of the tag push among %d", len(relay.deliveries()))
	}
	cm, err := env.Clientset(t).CoreV1().ConfigMaps(ns).Get(t.Context(), "release", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["version"] != "2.0.0" || cm.Data["tag"] != "v2.0.0" || cm.Data["branch"] != "" {
		t.Fatalf("ConfigMap data %v, want version 2.0.0, tag v2.0.0, no branch", cm.Data)
	}

	// The same push announced again under a new delivery id (correctly signed): the tag is
	// known at that commit, so nothing runs. The next tag's run shows the look has happened.
	again := delivered.header.Clone()
	again.Set("X-Gitea-Delivery", "again-"+again.Get("X-Gitea-Delivery"))
	again.Set("X-Gitea-Signature", hmacHex([]byte(p.secret), delivered.body))
	if status, answer := relay.send(again, delivered.body); status != http.StatusAccepted {
		t.Fatalf("the second announcement: %d %s", status, answer)
	}
	p.work.git("tag", "v2.0.1")
	p.work.push("refs/tags/v2.0.1")
	h = waitHistory(t, p.cfg, 60*time.Second, "the next tag's run", func(h []historyEntry) bool {
		return len(h) >= 2 && h[0].Tag == "v2.0.1" && h[0].Status == "succeeded"
	})
	if len(h) != 2 {
		t.Fatalf("history %+v, want one run per tag", h)
	}
}
