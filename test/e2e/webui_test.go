package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/test/testenv"
)

// uiPipeline is the seed's 2048 pipeline (build the image, deploy it pinned by digest) with
// a smoke script between the two that prints a line a second, so the run page has log
// lines arriving while it runs; gated adds a production stage behind alice's approval.
func uiPipeline(registry, ns string, gated bool) []byte {
	p := `name: jack-2048
variables:
  REGISTRY: ` + registry + `
  DOMAIN: 2048.example.cn
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
  - name: test
    tasks:
      - name: smoke
        type: script
        executor: local
        script: |
          for i in 1 2 3 4 5 6 7 8 9 10; do echo "tick $i"; sleep 1; done
  - name: deploy
    tasks:
      - name: deploy-2048
        type: deploy-yaml
        path: 2048_env.yaml
        cluster: e2e
        namespace: ` + ns + `
        wait: 60s
        pinImages: true
`
	if gated {
		p += `  - name: production
    approval:
      manual: {approvers: [alice]}
    tasks:
      - {name: deploy-production, type: deploy-yaml, path: production, cluster: e2e, namespace: ` + ns + `}
`
	}
	return []byte(p)
}

// browser starts headless Chromium (Debian's chromium package) with a fresh profile and the
// flags that keep it from reaching for the network, and returns a tab's context.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: the web UI's browser test drives Debian's chromium " +
			"(hack/prereqs.sh installs it; by hand: apt-get install -y chromium)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancel()
		cancelAlloc() // stops the browser process it started
	})
	// The first action starts the browser, on a context without a timeout (a timeout there
	// would stop the browser with it).
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// step runs browser actions with a timeout, failing the test with what was being done.
func step(t *testing.T, ctx context.Context, what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := chromedp.Do(c, actions...); err != nil {
		failPage(t, ctx, what, err)
	}
}

// get runs one browser action that gives a value.
func get[T any](t *testing.T, ctx context.Context, what string, timeout time.Duration, a chromedp.Action[T]) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, err := chromedp.Run(c, a)
	if err != nil {
		failPage(t, ctx, what, err)
	}
	return v
}

func failPage(t *testing.T, ctx context.Context, what string, err error) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	html, _ := chromedp.Run(c, chromedp.OuterHTML(chromedp.CSS("body")))
	t.Fatalf("%s: %v\npage body:\n%s", what, err, html)
}

// shoot saves a screenshot of the page at desktop and phone width in the test's output
// folder (go test -artifacts keeps it; see docs/ui.md).
func shoot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := t.ArtifactDir()
	for _, size := range []struct {
		suffix string
		w, h   int64
		mobile bool
	}{{"desktop", 1280, 900, false}, {"phone", 390, 844, true}} {
		emulate := chromedp.EmulateViewport(size.w, size.h)
		if size.mobile {
			emulate = chromedp.EmulateViewport(size.w, size.h, chromedp.EmulateMobile)
		}
		step(t, ctx, "viewport for "+name, 10*time.Second, emulate)
		png := get(t, ctx, "screenshot "+name, 20*time.Second, chromedp.FullScreenshot(100))
		if err := os.WriteFile(filepath.Join(dir, name+"-"+size.suffix+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	step(t, ctx, "back to desktop width", 10*time.Second, chromedp.EmulateViewport(1280, 900))
}

func signIn(t *testing.T, ctx context.Context, server, tokenFile string) {
	t.Helper()
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	step(t, ctx, "sign in", 30*time.Second,
		chromedp.Navigate(server+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), strings.TrimSpace(string(token))),
		chromedp.Click(chromedp.CSS("#sign-in")),
		chromedp.WaitVisible(chromedp.CSS("#sign-out")))
}

// runSnapshot is what the run page shows at one moment.
type runSnapshot struct {
	Marker bool   `json:"marker"` // the page was not reloaded since the test marked it
	Build  string `json:"build"`
	Smoke  string `json:"smoke"`
	Deploy string `json:"deploy"`
	Lines  int    `json:"lines"` // tick lines in the smoke task's log
	Run    string `json:"run"`
}

const snapshotJS = `(() => {
  const box = n => document.querySelector('.task[data-task="' + n + '"]');
  const st = n => { const b = box(n); const s = b && b.querySelector('[data-role=status]'); return s ? (s.getAttribute('data-status') || '') : ''; };
  const log = box('smoke') && box('smoke').querySelector('pre.log');
  const rs = document.getElementById('run-status');
  return {marker: window.__uiTest === 1, build: st('build-2048-image'), smoke: st('smoke'), deploy: st('deploy-2048'),
    lines: log ? (log.textContent.match(/tick \d+/g) || []).length : 0, run: rs ? rs.getAttribute('data-status') : ''};
})()`

// TestWebUI signs in to the web console in headless Chromium, sees the 2048 pipeline, pushes
// a commit and watches its run page: the build, then the smoke script's lines arriving while
// it runs, then the deploy, all pushed over SSE into one page load. The deployed-where matrix
// shows the digest the cluster runs. An approver approves the waiting run from the page; a
// viewer sees no approve button and a POST forged from its own session gets 403.
func TestWebUI(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	repo, repoName, cfg := newProject(t, env)
	appendConfig(t, cfg, "executor:\n  local: {enabled: true}\n")
	server, _ := withAPI(t, cfg)
	dir := filepath.Dir(cfg)
	alice, aliceEntry := newIdentity(t, dir, "alice", "approver")
	vera, veraEntry := newIdentity(t, dir, "vera", "viewer")
	if err := os.WriteFile(filepath.Join(dir, "api-users.yaml"), []byte("users:\n"+aliceEntry+veraEntry), 0o600); err != nil {
		t.Fatal(err)
	}
	appendConfig(t, cfg, "apiTokensFile: api-users.yaml\n")
	files := seed11Repo(t, env)
	files[".pipeline.yaml"] = uiPipeline(env.Registry, ns, false)
	files["production/cm.yaml"] = configMapNamed("production-config")
	repo.commit("2048", files)
	d := startAPIServe(t, cfg, server, alice)
	waitHistory(t, cfg, 3*time.Minute, "run 1 succeeded", func(h []historyEntry) bool { return len(h) == 1 && h[0].Status == "succeeded" })

	ctx := browser(t)
	signIn(t, ctx, server, alice)
	step(t, ctx, "pipelines page", 20*time.Second, chromedp.WaitVisible(chromedp.CSS(`#pipelines tr[data-pipeline="jack-2048"]`)))
	if pipelines := get(t, ctx, "pipelines table", 10*time.Second, chromedp.Text(chromedp.CSS("#pipelines"))); !strings.Contains(pipelines, "#1") || !strings.Contains(pipelines, "succeeded") {
		t.Fatalf("pipelines page: %q", pipelines)
	}
	shoot(t, ctx, "1-pipelines")

	// Push a commit (with the gated production stage) and open its run page as it starts.
	repo.commit("gated", map[string][]byte{".pipeline.yaml": uiPipeline(env.Registry, ns, true)})
	runs := server + "/ui/p/" + repoName + "/jack-2048"
	deadline := time.Now().Add(60 * time.Second)
	for {
		step(t, ctx, "runs page", 20*time.Second, chromedp.Navigate(runs))
		if get(t, ctx, "runs on the page", 10*time.Second, chromedp.Evaluate[int](`document.querySelectorAll('a[href$="/runs/2"]').length`)) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("run 2 never showed on the runs page")
		}
		time.Sleep(300 * time.Millisecond)
	}
	step(t, ctx, "open run 2", 20*time.Second, chromedp.Navigate(runs+"/runs/2"), chromedp.WaitVisible(chromedp.CSS("#timeline")))
	get(t, ctx, "mark the page", 10*time.Second, chromedp.Evaluate[int](`window.__uiTest = 1`))
	var seen []runSnapshot
	var midway bool
	deadline = time.Now().Add(3 * time.Minute)
	for {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		s, err := chromedp.Run(c, chromedp.Evaluate[runSnapshot](snapshotJS))
		cancel()
		if err != nil {
			// The page is reloading (the run reached its gate): read it again once it is back.
			if time.Now().After(deadline) {
				t.Fatalf("read the run page: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
			continue
		}
		seen = append(seen, s)
		if !s.Marker {
			break // reloaded: the run reached its gate and the page came back with the buttons
		}
		if s.Smoke == "running" && s.Lines > 0 && s.Lines < 10 {
			if !midway {
				shoot(t, ctx, "2-run-live")
			}
			midway = true
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run page did not reach the gate; last snapshots %+v", seen[max(0, len(seen)-5):])
		}
		time.Sleep(150 * time.Millisecond)
	}
	if !midway {
		t.Errorf("never saw the smoke script running with some of its lines shown: %+v", seen)
	}
	// Without a reload: the build succeeded before the deploy started, and all lines arrived.
	buildDone, deployStarted, lastLive := -1, -1, -1
	for i, s := range seen {
		if s.Marker {
			lastLive = i
		}
		if buildDone < 0 && s.Build == "succeeded" {
			buildDone = i
		}
		if deployStarted < 0 && s.Deploy != "" && s.Deploy != "pending" {
			deployStarted = i
		}
	}
	if buildDone < 0 || deployStarted < 0 || buildDone > deployStarted {
		t.Errorf("build succeeded at snapshot %d, deploy started at %d: %+v", buildDone, deployStarted, seen)
	}
	if lastLive < 0 {
		t.Fatalf("the page reloaded before the test could read it: %+v", seen)
	}
	// The page reloads as soon as the run reaches the gate, so the deploy's end may come
	// with the reload; what the live page showed last is at least the deploy under way.
	if last := seen[lastLive]; last.Lines != 10 || last.Smoke != "succeeded" || (last.Deploy != "running" && last.Deploy != "succeeded") {
		t.Errorf("before the gate the live page showed %+v", last)
	}

	// The page came back for alice with the approve button; she approves.
	step(t, ctx, "approve button", 30*time.Second, chromedp.WaitVisible(chromedp.CSS("#approve")))
	if s := get(t, ctx, "run page at the gate", 10*time.Second, chromedp.Evaluate[runSnapshot](snapshotJS)); s.Deploy != "succeeded" || s.Run != "awaiting_approval" {
		t.Errorf("at the gate the run page shows %+v", s)
	}
	shoot(t, ctx, "3-run-awaiting-approval")
	step(t, ctx, "approve", 60*time.Second, chromedp.Click(chromedp.CSS("#approve")),
		chromedp.WaitVisible(chromedp.CSS(`#run-status[data-status="succeeded"]`)))
	if _, err := cs.CoreV1().ConfigMaps(ns).Get(context.Background(), "production-config", metav1.GetOptions{}); err != nil {
		t.Fatalf("the approved stage did not deploy: %v", err)
	}
	shoot(t, ctx, "4-run-succeeded")

	// What is deployed where: the matrix shows the digest the cluster runs.
	dep, err := cs.AppsV1().Deployments(ns).Get(context.Background(), "jack-2048", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	image := dep.Spec.Template.Spec.Containers[0].Image
	if !strings.Contains(image, ":alpha-2@sha256:") {
		t.Fatalf("the cluster runs %s", image)
	}
	step(t, ctx, "deployed-where matrix", 20*time.Second, chromedp.Navigate(server+"/ui/deployments"))
	cell := get(t, ctx, "matrix cell", 10*time.Second, chromedp.Text(chromedp.CSS(fmt.Sprintf(`#matrix tr[data-pipeline="jack-2048"] td[data-target="e2e/%s"]`, ns))))
	if !strings.Contains(cell, image) || !strings.Contains(cell, "#2") {
		t.Fatalf("matrix cell for e2e/%s is %q, want the cluster's %s", ns, cell, image)
	}
	shoot(t, ctx, "5-deployed-where")
	for _, page := range []string{"drift", "audit", "approvals"} {
		step(t, ctx, page, 20*time.Second, chromedp.Navigate(server+"/ui/"+page), chromedp.WaitVisible(chromedp.CSS("main h1")))
		shoot(t, ctx, "6-"+page)
	}
	step(t, ctx, "audit", 20*time.Second, chromedp.Navigate(server+"/ui/audit"))
	if audit := get(t, ctx, "audit table", 10*time.Second, chromedp.Text(chromedp.CSS("#audit"))); !strings.Contains(audit, "alice") || !strings.Contains(audit, "approve") {
		t.Errorf("the audit page lacks alice's approval: %q", audit)
	}
	// In Chinese: the seed's labels.
	step(t, ctx, "Chinese runs page", 20*time.Second, chromedp.Navigate(server+"/ui/lang/zh?back=/ui/p/"+repoName+"/jack-2048"),
		chromedp.WaitVisible(chromedp.CSS("#runs")))
	if zh := get(t, ctx, "Chinese text", 10*time.Second, chromedp.Text(chromedp.CSS("main"))); !strings.Contains(zh, "运行记录") || !strings.Contains(zh, "运行编号") {
		t.Errorf("the Chinese runs page: %q", zh)
	}
	shoot(t, ctx, "7-runs-zh")
	step(t, ctx, "sign out", 20*time.Second, chromedp.Navigate(server+"/ui/lang/en?back=/ui/"),
		chromedp.WaitVisible(chromedp.CSS("#sign-out")), chromedp.Click(chromedp.CSS("#sign-out")), chromedp.WaitVisible(chromedp.CSS("#token")))

	// A third run waits at the gate; vera (viewer) sees it without buttons, and a POST she
	// forges with her own session and CSRF token is refused.
	repo.commit("third", map[string][]byte{"production/cm.yaml": configMapNamed("production-config-3")})
	waitHistory(t, cfg, 3*time.Minute, "run 3 awaiting approval", func(h []historyEntry) bool {
		return len(h) == 3 && h[0].Status == "awaiting_approval"
	})
	signIn(t, ctx, server, vera)
	step(t, ctx, "vera's approvals", 20*time.Second, chromedp.Navigate(server+"/ui/approvals"),
		chromedp.WaitVisible(chromedp.CSS(`#approvals tr[data-build="3"]`)))
	if n := get(t, ctx, "answer controls", 10*time.Second, chromedp.Evaluate[int](`document.querySelectorAll('button.approve, button.reject, form.answer').length`)); n != 0 {
		t.Fatalf("vera sees %d approve/reject controls", n)
	}
	shoot(t, ctx, "8-approvals-viewer")
	step(t, ctx, "vera's run page", 20*time.Second, chromedp.Navigate(runs+"/runs/3"), chromedp.WaitVisible(chromedp.CSS("#timeline")))
	if n := get(t, ctx, "answer buttons", 10*time.Second, chromedp.Evaluate[int](`document.querySelectorAll('#approve, #reject').length`)); n != 0 {
		t.Fatalf("vera's run page has %d answer buttons", n)
	}
	forge := fmt.Sprintf(`fetch('/ui/p/%s/jack-2048/runs/3/approve', {method: 'POST', redirect: 'manual',
		body: new URLSearchParams({csrf: document.querySelector('input[name=csrf]').value})}).then(r => r.status)`, repoName)
	if status := get(t, ctx, "vera's forged approve", 20*time.Second, chromedp.Evaluate[int](forge, chromedp.EvalAwaitPromise)); status != 403 {
		t.Fatalf("vera's forged approve: %d, want 403", status)
	}
	if h := history(t, cfg, "jack-2048"); h[0].Status != "awaiting_approval" {
		t.Fatalf("run 3 after vera's refused approve: %+v", h[0])
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Get(context.Background(), "production-config-3", metav1.GetOptions{}); err == nil {
		t.Fatal("vera's refused approve deployed the gated stage")
	}
	t.Logf("screenshots in %s", t.ArtifactDir())
	d.stop(t)
}
