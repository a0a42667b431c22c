package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/test/testenv"
)

// scriptConfig is a project whose slipway.yaml runs scripts on the environment's buildkitd
// (the default) and, when asked, on this host (executor local).
func scriptConfig(t *testing.T, env *testenv.Env) (*workRepo, string, string) {
	t.Helper()
	repo, repoName, cfg := newProject(t, env)
	appendConfig(t, cfg, fmt.Sprintf("executor:\n  buildkit: {address: %q}\n  local: {enabled: true}\n", env.BuildkitHost))
	return repo, repoName, cfg
}

// imageLine is the image a script task runs in: the environment's busybox, except with
// executor local, which runs on the host and refuses an image.
func imageLine(env *testenv.Env, executor string) string {
	if executor == "local" {
		return "        executor: local\n"
	}
	return "        image: " + env.BaseImage + "\n"
}

// seed13 is examples/scripts' shape (seed 1.3) for the script tests: a first task edits
// the workspace, a later one checks the edit and echoes env and the secret (plainly and
// base64-encoded; secret is its declaration), a third exits 3, a last stage never runs.
// img holds each task's image (and executor) lines; checkExtra more lines of the check task.
func seed13(secret, img, checkExtra string) map[string][]byte {
	return map[string][]byte{
		"config/product.conf": []byte("name=PLACEHOLDER\n"),
		"gone.txt":            []byte("removed by the first task\n"),
		".pipeline.yaml": []byte(`name: scripts
variables:
  PRODUCT_VERSION: 6.0.1-alpha.${BUILD_ID}
secrets:
  - ` + secret + `
stages:
  - name: initial
    tasks:
      - name: set-product-name
        type: script
` + img + `        workingDir: config
        script: |
          sed -i "s/PLACEHOLDER/$COMPONENTS_TO_BUILD/" product.conf
          rm ../gone.txt
        env: {COMPONENTS_TO_BUILD: DevOps}
  - name: build
    tasks:
      - name: check
        type: script
` + img + checkExtra + `        script: |
          cat config/product.conf
          test "$(cat config/product.conf)" = "name=DevOps"
          test ! -e gone.txt
          echo "version=$OTA_VERSION build=$BUILD_ID"
          echo "password=$dockerHubPassword"
          echo "encoded=$(printf %s "$dockerHubPassword" | base64)"
          echo "to stderr" >&2
        env: {OTA_VERSION: "${PRODUCT_VERSION}"}
        secretEnv: {dockerHubPassword: HUB_PASSWORD}
      - name: fail
        type: script
` + img + `        script: |
          echo "about to fail"
          exit 3
  - name: deploy
    tasks:
      - name: never
        type: script
` + img + `        script: "true"
`),
	}
}

// checkSeed13 runs seed13's pipeline once and checks that it failed at task fail with code
// 3, that `slipway logs` shows what each task did (and the lines in want), and that the
// secret shows nowhere, plainly or base64-encoded.
func checkSeed13(t *testing.T, cfg, repoName, secret string, want ...string) {
	t.Helper()
	out, code := slipway(t, "run", "--config", cfg, "--repo", repoName)
	if code == 0 {
		t.Fatalf("the run succeeded; task fail exits 3:\n%s", out)
	}
	h := history(t, cfg, "scripts")
	if len(h) != 1 || h[0].Status != "failed" {
		t.Fatalf("history %+v\n%s", h, out)
	}
	logs, _ := slipway(t, "logs", "--config", cfg, "scripts", "1")
	for _, want := range append(want,
		"name=DevOps",
		"version=6.0.1-alpha.1 build=1",
		"password=***",
		"encoded=***",
		"== initial/set-product-name [script] succeeded",
		"== build/check [script] succeeded",
		"== build/fail [script] failed",
		"script exited with code 3; last lines:",
		"about to fail",
		"== deploy/never [script] skipped",
	) {
		if !strings.Contains(logs, want) {
			t.Errorf("slipway logs lacks %q:\n%s", want, logs)
		}
	}
	for _, leak := range []string{secret, base64.StdEncoding.EncodeToString([]byte(secret))} {
		for what, text := range map[string]string{"logs": logs, "run output": out} {
			if strings.Contains(text, leak) {
				t.Errorf("%s shows the secret (%q):\n%s", what, leak, text)
			}
		}
	}
}

// TestScriptTasks is examples/scripts' shape (seed 1.3) on each executor: a first task edits
// the workspace and a later one sees the edit; env and secretEnv reach the script; the
// secret, echoed plainly and base64-encoded, is *** in `slipway logs`; exit 3 fails the task
// with code 3 and the next stage is skipped.
func TestScriptTasks(t *testing.T) {
	env := testenv.Get(t)
	for _, executor := range []string{"buildkit", "local"} {
		t.Run(executor, func(t *testing.T) {
			repo, repoName, cfg := scriptConfig(t, env)
			const secret = "e2e-Scr1pt-secret-value"
			secretFile := filepath.Join(filepath.Dir(cfg), "token")
			if err := os.WriteFile(secretFile, []byte(secret), 0o600); err != nil {
				t.Fatal(err)
			}
			img := imageLine(env, executor)
			repo.commit("scripts", seed13(`{name: HUB_PASSWORD, file: `+secretFile+`}`, img, ""))
			checkSeed13(t, cfg, repoName, secret, "to stderr")
		})
	}
}

// TestScriptOutputsReachADeploy: a script writes VERSION=1.2.${BUILD_ID} to $SLIPWAY_OUTPUT
// and edits a manifest in the workspace; the deploy-yaml after it applies the edited
// manifest with the output in it, and history and logs show the output.
func TestScriptOutputsReachADeploy(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	repo, repoName, cfg := scriptConfig(t, env)
	repo.commit("outputs", map[string][]byte{
		"cm.yaml": []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: versioned}\ndata:\n  version: ${tasks.version.VERSION}\n  edited: \"no\"\n"),
		".pipeline.yaml": []byte(`name: outputs
stages:
  - name: version
    tasks:
      - name: version
        type: script
        image: ` + env.BaseImage + `
        script: |
          echo "VERSION=1.2.${BUILD_ID}" >> "$SLIPWAY_OUTPUT"
          sed -i 's/edited: "no"/edited: "yes"/' cm.yaml
        outputs: [VERSION]
  - name: deploy
    tasks:
      - name: config
        type: deploy-yaml
        path: cm.yaml
        cluster: e2e
        namespace: ` + ns + `
        wait: 0s
`),
	})
	if out, code := slipway(t, "run", "--config", cfg, "--repo", repoName); code != 0 {
		t.Fatalf("run failed:\n%s", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cm, err := env.Clientset(t).CoreV1().ConfigMaps(ns).Get(ctx, "versioned", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["version"] != "1.2.1" || cm.Data["edited"] != "yes" {
		t.Errorf("ConfigMap data %v, want version 1.2.1 and the script's edit", cm.Data)
	}
	out, code := slipway(t, "history", "--config", cfg, "outputs", "-o", "json")
	if code != 0 || !strings.Contains(out, `"tasks.version.VERSION": "1.2.1"`) {
		t.Errorf("history lacks the output:\n%s", out)
	}
	if logs, _ := slipway(t, "logs", "--config", cfg, "outputs", "1"); !strings.Contains(logs, "outputs: VERSION=1.2.1") {
		t.Errorf("logs lack the output:\n%s", logs)
	}

	// A key the task does not declare fails it, naming the key.
	repo.commit("undeclared", map[string][]byte{".pipeline.yaml": []byte(`name: outputs
stages:
  - name: version
    tasks:
      - name: version
        type: script
        image: ` + env.BaseImage + `
        script: echo "VERSION=1" >> "$SLIPWAY_OUTPUT"; echo "OTHER=2" >> "$SLIPWAY_OUTPUT"
        outputs: [VERSION]
`)})
	if out, code := slipway(t, "run", "--config", cfg, "--repo", repoName); code == 0 {
		t.Fatalf("undeclared output accepted:\n%s", out)
	}
	if h := history(t, cfg, "outputs"); h[0].Status != "failed" || !strings.Contains(h[0].Reason, `sets "OTHER", which the task does not declare in outputs`) {
		t.Errorf("run 2: %+v", h[0])
	}
}

// sleepers lists the processes on this host running `sleep 60` (the scripts' and their
// BuildKit containers' processes are host processes here).
func sleepers(t *testing.T) []string {
	t.Helper()
	var out []string
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err == nil && string(b) == "sleep\x0060\x00" {
			out = append(out, filepath.Base(filepath.Dir(f)))
		}
	}
	return out
}

// TestScriptTimeoutAndCancel: timeout: 3s on sleep 60 ends timed_out, and `slipway cancel`
// mid-script ends the run cancelled within 2s; neither leaves the sleep running.
func TestScriptTimeoutAndCancel(t *testing.T) {
	env := testenv.Get(t)
	if s := sleepers(t); len(s) > 0 {
		t.Fatalf("processes %v already run sleep 60 on this host; this test counts them", s)
	}
	for _, executor := range []string{"buildkit", "local"} {
		t.Run(executor, func(t *testing.T) {
			repo, repoName, cfg := scriptConfig(t, env)
			pipeline := func(timeout string) []byte {
				return []byte(`name: jack-2048
stages:
  - name: wait
    tasks:
      - name: sleep
        type: script
` + imageLine(env, executor) + timeout + `        script: echo sleeping; sleep 60
`)
			}
			repo.commit("timeout", map[string][]byte{".pipeline.yaml": pipeline("        timeout: 3s\n")})
			start := time.Now()
			out, code := slipway(t, "run", "--config", cfg, "--repo", repoName)
			took := time.Since(start)
			h := history(t, cfg, "jack-2048")
			if code == 0 || h[0].Status != "timed_out" || !strings.Contains(h[0].Reason, "task timeout of 3s exceeded") {
				t.Fatalf("exit %d after %s, %+v\n%s", code, took, h[0], out)
			}
			if h[0].Duration > 3+5 {
				t.Errorf("the run lasted %.1fs with a 3s task timeout", h[0].Duration)
			}
			if s := sleepers(t); len(s) > 0 {
				t.Errorf("after the timeout, sleep 60 still runs: pids %v", s)
			}

			server, tokenFile := withAPI(t, cfg)
			repo.commit("cancel", map[string][]byte{".pipeline.yaml": pipeline("")})
			d := startAPIServe(t, cfg, server, tokenFile)
			defer d.stop(t)
			waitHistory(t, cfg, 60*time.Second, "run 2 running", func(h []historyEntry) bool { return len(h) == 2 && h[0].Status == "running" })
			for deadline := time.Now().Add(60 * time.Second); len(sleepers(t)) == 0; time.Sleep(100 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the script never started sleeping:\n%s", d.output())
				}
			}
			asked := time.Now()
			out, code = d.ctl(t, "cancel", "jack-2048", "2")
			tookCancel := time.Since(asked)
			if code != 0 || !strings.Contains(out, "#2 cancelled") {
				t.Fatalf("slipway cancel 2: exit %d\n%s\n%s", code, out, d.output())
			}
			t.Logf("%s: cancel ended the run in %s", executor, tookCancel.Round(10*time.Millisecond))
			if tookCancel > 2*time.Second {
				t.Errorf("cancel took %s; the script must be gone within 2s", tookCancel)
			}
			if s := sleepers(t); len(s) > 0 {
				t.Errorf("after the cancel, sleep 60 still runs: pids %v", s)
			}
		})
	}
}

// TestScriptCache: a step with cache: true over the same workspace content is taken from
// BuildKit's cache in the next run (its stamp, and so its result, is the first run's); the
// default runs the step every time.
func TestScriptCache(t *testing.T) {
	env := testenv.Get(t)
	repo, repoName, cfg := scriptConfig(t, env)
	repo.commit("cache", map[string][]byte{".pipeline.yaml": []byte(`name: cache
stages:
  - name: stamp
    tasks:
      - name: cached
        type: script
        image: ` + env.BaseImage + `
        cache: true
        script: cat /proc/sys/kernel/random/uuid > cached.stamp
      - name: uncached
        type: script
        image: ` + env.BaseImage + `
        script: cat /proc/sys/kernel/random/uuid > uncached.stamp
  - name: show
    tasks:
      - name: show
        type: script
        image: ` + env.BaseImage + `
        script: echo "cached=$(cat cached.stamp) uncached=$(cat uncached.stamp)"
`)})
	stamps := func(id string) (string, string) {
		t.Helper()
		if out, code := slipway(t, "run", "--config", cfg, "--repo", repoName); code != 0 {
			t.Fatalf("run %s failed:\n%s", id, out)
		}
		logs, _ := slipway(t, "logs", "--config", cfg, "cache", id)
		i := strings.Index(logs, "cached=")
		if i < 0 {
			t.Fatalf("run %s shows no stamps:\n%s", id, logs)
		}
		var cached, uncached string
		if _, err := fmt.Sscanf(logs[i:], "cached=%s uncached=%s", &cached, &uncached); err != nil {
			t.Fatalf("run %s: %v\n%s", id, err, logs)
		}
		return cached, uncached
	}
	c1, u1 := stamps("1")
	c2, u2 := stamps("2")
	if c1 != c2 {
		t.Errorf("cache: true ran the step again: %s then %s", c1, c2)
	}
	if u1 == u2 {
		t.Errorf("the default reused the step: %s twice", u1)
	}
}
