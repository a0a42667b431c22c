package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/test/testenv"
)

// Fault tests stop a real part of the environment at once (SIGKILL, testenv.Env.Kill) while
// the daemon works, then start it again. Each checks the same promises: the daemon stays
// up, what failed says why, the next run succeeds, no BUILD_ID is reused or lost, and the
// cluster ends at the last successful revision.

// TestFaultGitServerDownWhilePolling: with the Git server gone, each look fails and says so,
// backing off instead of hammering it every second; once it is back, the commit pushed then
// runs, as BUILD_ID 2.
func TestFaultGitServerDownWhilePolling(t *testing.T) {
	env := testenv.Get(t)
	p := servedDeployOnly(t, env)
	repo, repoName, cfg, manifests, d := p.repo, p.repoName, p.cfg, p.manifests, p.d

	restart := env.Kill(t, "gitserver")
	down := time.Now()
	time.Sleep(8 * time.Second)
	failures := strings.Count(d.output(), "look at the repository")
	restart()
	if failures == 0 || !strings.Contains(d.output(), repoName) {
		t.Fatalf("no failed look was reported in 8 s without the Git server:\n%s", d.output())
	}
	// Polling every second, 8 s down: backing off (1, 2, 4 s ...) makes at most 4 looks.
	if failures > 5 {
		t.Errorf("%d failed looks in %s: the watcher did not back off", failures, time.Since(down).Round(time.Second))
	}

	second := repo.commit("second", map[string][]byte{"2048_env.yaml": []byte(strings.Replace(string(manifests), "spec:\n  selector:", "spec:\n  replicas: 2\n  selector:", 1))})
	h := waitHistory(t, cfg, 90*time.Second, "run 2 of the commit pushed after the outage", func(h []historyEntry) bool {
		return len(h) == 2 && h[0].Status == "succeeded"
	})
	if h[0].BuildID != 2 || h[0].Commit != second {
		t.Errorf("after the outage: %+v, want BUILD_ID 2 of %s", h[0], second)
	}
	logFaultOutcomes(t, fmt.Sprintf("the Git server killed for 8 s while polling every second (%d failed looks, each logged)", failures), d, h, "")
	d.stop(t)
}

// TestFaultAPIServerDownDuringApply: the API server dies while a run applies 300 objects. The
// run fails naming the cluster it could not reach; the daemon stays up; once the API server
// is back, the next commit's run succeeds as BUILD_ID 3 and every object holds its values.
func TestFaultAPIServerDownDuringApply(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	repo, _, cfg := newProject(t, env)
	objects := func(value string) []byte {
		var b strings.Builder
		for i := range 300 {
			fmt.Fprintf(&b, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fault-%03d\ndata:\n  value: %q\n  filler: %q\n", i, value, strings.Repeat("x", 2000))
		}
		return []byte(b.String())
	}
	pipelineFile := []byte(`name: jack-2048
stages:
  - name: deploy
    tasks:
      - name: objects
        type: deploy-yaml
        path: objects.yaml
        cluster: e2e
        namespace: ` + ns + `
        wait: 30s
`)
	repo.commit("first", map[string][]byte{".pipeline.yaml": pipelineFile, "objects.yaml": objects("one")})
	d := startServe(t, cfg)
	waitHistory(t, cfg, 90*time.Second, "run 1", func(h []historyEntry) bool { return len(h) == 1 && h[0].Status == "succeeded" })

	repo.commit("second", map[string][]byte{"objects.yaml": objects("two")})
	waitHistory(t, cfg, 30*time.Second, "run 2 running", func(h []historyEntry) bool { return len(h) == 2 && h[0].Status == "running" })
	restart := env.Kill(t, "kube-apiserver")
	h := waitHistory(t, cfg, 3*time.Minute, "run 2 ended", func(h []historyEntry) bool { return len(h) == 2 && h[0].Status != "running" })
	restart()
	if h[0].Status != "failed" && h[0].Status != "timed_out" {
		t.Fatalf("run 2 ended %s (%s) with the API server gone mid-run", h[0].Status, h[0].Reason)
	}
	// Killed in the dry-run the reason says so in one line; killed mid-apply it names the
	// objects' apply; either way it names the connection that failed.
	if !strings.Contains(h[0].Reason, "connect") || strings.Count(h[0].Reason, "\n") > 8 {
		t.Errorf("run 2's reason does not say what failed in a few lines: %q", h[0].Reason)
	}
	t.Logf("run 2: %s: %s", h[0].Status, h[0].Reason)

	third := repo.commit("third", map[string][]byte{"objects.yaml": objects("three")})
	h = waitHistory(t, cfg, 3*time.Minute, "run 3 after the API server is back", func(h []historyEntry) bool {
		return len(h) == 3 && h[0].Status != "running" && h[0].Status != "queued"
	})
	if h[0].Status != "succeeded" || h[0].BuildID != 3 || h[0].Commit != third {
		t.Fatalf("after the outage: %+v, want BUILD_ID 3 of %s succeeded", h[0], third)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cms, err := env.Clientset(t).CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, wrong := 0, 0
	for _, cm := range cms.Items {
		if strings.HasPrefix(cm.Name, "fault-") {
			n++
			if cm.Data["value"] != "three" {
				wrong++
				t.Errorf("%s holds %q, want the last successful run's value", cm.Name, cm.Data["value"])
			}
		}
	}
	if n != 300 {
		t.Errorf("%d objects in the cluster, want 300", n)
	}
	logFaultOutcomes(t, "the API server killed while run 2 applied 300 objects", d, h, fmt.Sprintf("%d of 300 objects at run 3's value", n-wrong))
	d.stop(t)
}

// TestFaultRegistryDownDuringABuild: the registry is gone when a run builds and pushes its
// image (killed the moment the commit lands: a build of this size is over in a fraction of
// a second, too soon to aim at its push). The run fails naming the registry; once it is
// back, the next run pushes its image under its own BUILD_ID (3): the failed run's number
// is not reused and its tag never appears.
func TestFaultRegistryDownDuringABuild(t *testing.T) {
	env := testenv.Get(t)
	repo, _, cfg := newProject(t, env)
	pipelineFile := []byte(`name: jack-2048
stages:
  - name: build
    tasks:
      - name: image
        type: build-image
        workspace: faults
        image: app
        tag: "${BUILD_ID}"
`)
	dockerfile := func(n int) []byte {
		return []byte(fmt.Sprintf("FROM %s\nCOPY payload /payload\nENV N=%d\n", env.BaseImage, n))
	}
	repo.commit("first", map[string][]byte{".pipeline.yaml": pipelineFile, "Dockerfile": dockerfile(1), "payload": []byte("payload\n")})
	d := startServe(t, cfg)
	waitHistory(t, cfg, 90*time.Second, "run 1", func(h []historyEntry) bool { return len(h) == 1 && h[0].Status == "succeeded" })

	restart := env.Kill(t, "registry")
	repo.commit("second", map[string][]byte{"Dockerfile": dockerfile(2)})
	h := waitHistory(t, cfg, 3*time.Minute, "run 2 ended", func(h []historyEntry) bool {
		return len(h) == 2 && h[0].Status != "running" && h[0].Status != "queued"
	})
	restart()
	if h[0].Status != "failed" || !strings.Contains(h[0].Reason, env.Registry) {
		t.Fatalf("run 2 ended %s (%q); want failed, naming the registry %s", h[0].Status, h[0].Reason, env.Registry)
	}
	t.Logf("run 2: %s", h[0].Reason)

	repo.commit("third", map[string][]byte{"Dockerfile": dockerfile(3)})
	h = waitHistory(t, cfg, 3*time.Minute, "run 3 after the registry is back", func(h []historyEntry) bool {
		return len(h) == 3 && h[0].Status != "running" && h[0].Status != "queued"
	})
	if h[0].Status != "succeeded" || h[0].BuildID != 3 {
		t.Fatalf("after the outage: %+v, want BUILD_ID 3 succeeded", h[0])
	}
	tags, err := crane.ListTags(env.Registry+"/faults/app", crane.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(tags)
	if strings.Join(tags, ",") != "1,3" {
		t.Errorf("tags %v: want 1 and 3, and no 2 (the failed run's push never completed)", tags)
	}
	logFaultOutcomes(t, "the registry killed as run 2 built and pushed its image", d, h, fmt.Sprintf("the registry holds tags %v (the failed run's never appears)", tags))
	d.stop(t)
}

// logFaultOutcomes writes a fault test's table of outcomes to the test output (issue 16):
// the pipeline's runs after the fault, then each promise and whether it held. cluster says
// what the test found in the cluster ("" when it does not look).
func logFaultOutcomes(t *testing.T, fault string, d *daemonProc, h []historyEntry, cluster string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "Fault: %s\n\n| BUILD_ID | trigger | status | reason |\n| --- | --- | --- | --- |\n", fault)
	ids := make([]int64, 0, len(h))
	causes := true
	for i := len(h) - 1; i >= 0; i-- {
		reason := strings.ReplaceAll(strings.TrimSpace(h[i].Reason), "\n", " / ")
		if len(reason) > 240 {
			reason = reason[:240] + "…"
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s |\n", h[i].BuildID, h[i].Trigger, h[i].Status, reason)
		ids = append(ids, h[i].BuildID)
		if h[i].Status != "succeeded" && h[i].Reason == "" {
			causes = false
		}
	}
	gapFree := true
	for i, id := range ids {
		gapFree = gapFree && id == int64(i+1)
	}
	held := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "NO"
	}
	if cluster == "" {
		cluster = "not checked by this test"
	}
	fmt.Fprintf(&b, "\n| promise | held |\n| --- | --- |\n")
	fmt.Fprintf(&b, "| the daemon stayed up | %s |\n", held(d.cmd.ProcessState == nil))
	fmt.Fprintf(&b, "| each run that did not succeed names its cause | %s |\n", held(causes))
	fmt.Fprintf(&b, "| the next run succeeded | %s |\n", held(len(h) > 0 && h[0].Status == "succeeded"))
	fmt.Fprintf(&b, "| BUILD_IDs 1..%d, none reused or skipped | %s |\n", len(ids), held(gapFree))
	fmt.Fprintf(&b, "| the cluster ends at the last successful revision | %s |\n", cluster)
	t.Log("\n" + b.String())
}

// usePostgres points the project's slipway.yaml at a schema of its own on the environment's
// PostgreSQL, its password in a file beside it, and returns the schema's DSN.
func usePostgres(t *testing.T, cfg string) string {
	t.Helper()
	schema := testenv.PostgresSchema(t)
	usePostgresAt(t, cfg, schema)
	return schema
}

// usePostgresAt points slipway.yaml at the store at schemaDSN (testenv.PostgresSchema).
func usePostgresAt(t *testing.T, cfg, schemaDSN string) {
	t.Helper()
	dsn, err := url.Parse(schemaDSN)
	if err != nil {
		t.Fatal(err)
	}
	password, _ := dsn.User.Password()
	dsn.User = url.User(dsn.User.Username())
	// The environment's server trades durability for speed (synchronous_commit off): a
	// SIGKILL would lose the last commits, which no production server set up for Slipway
	// does. The daemon's sessions commit synchronously, as the default is.
	q := dsn.Query()
	q.Set("synchronous_commit", "on")
	dsn.RawQuery = q.Encode()
	pwFile := filepath.Join(filepath.Dir(cfg), "pg-password")
	if err := os.WriteFile(pwFile, []byte(password), 0o600); err != nil {
		t.Fatal(err)
	}
	appendConfig(t, cfg, fmt.Sprintf("store: %q\nstorePasswordFile: %s\n", dsn.String(), pwFile))
}

// TestFaultPostgresDownDuringARun: PostgreSQL, the daemon's store, is killed while a run
// pauses in a script and started again 5 s later. The daemon stays up; its writes wait for
// the database with backoff; the run ends on record (its outcome and cause in the table
// below); the next commit's run succeeds as BUILD_ID 3, and no BUILD_ID is reused.
func TestFaultPostgresDownDuringARun(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	repo, _, cfg := newProject(t, env)
	appendConfig(t, cfg, "executor:\n  local: {enabled: true}\n")
	usePostgres(t, cfg)
	cm := func(v string) []byte {
		return []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: interrupted\ndata:\n  value: " + v + "\n")
	}
	repo.commit("first", map[string][]byte{".pipeline.yaml": interruptPipeline(ns, ""), "cm.yaml": cm("one")})
	d := startServe(t, cfg)
	waitHistory(t, cfg, 90*time.Second, "run 1", func(h []historyEntry) bool { return len(h) == 1 && h[0].Status == "succeeded" })

	second := repo.commit("second", map[string][]byte{"cm.yaml": cm("two")})
	for deadline := time.Now().Add(60 * time.Second); strings.Count(d.output(), "running the script on local") < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("run 2 never started its script:\n%s", d.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	restart := env.Kill(t, "postgres")
	time.Sleep(5 * time.Second)
	restart()
	back := time.Now()
	h := waitHistory(t, cfg, 90*time.Second, "run 2 ended", func(h []historyEntry) bool {
		return len(h) >= 2 && h[len(h)-2].Status != "running" && h[len(h)-2].Status != "queued"
	})
	run2 := h[len(h)-2]
	if run2.Commit != second || run2.BuildID != 2 {
		t.Fatalf("run 2: %+v, want BUILD_ID 2 of %s", run2, second)
	}
	if run2.Status != "succeeded" && run2.Reason == "" {
		t.Errorf("run 2 ended %s without a cause", run2.Status)
	}
	if d.cmd.ProcessState != nil {
		t.Fatalf("the daemon exited while PostgreSQL was down:\n%s", d.output())
	}

	third := repo.commit("third", map[string][]byte{"cm.yaml": cm("three")})
	h = waitHistory(t, cfg, 90*time.Second, "run 3 after PostgreSQL is back", func(h []historyEntry) bool {
		return len(h) >= 3 && h[0].Commit == third && h[0].Status != "running" && h[0].Status != "queued"
	})
	if h[0].Status != "succeeded" || h[0].BuildID != int64(len(h)) {
		t.Errorf("after the outage: %+v, want the last run (BUILD_ID %d) succeeded", h[0], len(h))
	}
	seen := map[int64]bool{}
	for i, e := range h {
		if seen[e.BuildID] || e.BuildID != int64(len(h)-i) {
			t.Errorf("BUILD_IDs %v are not 1..%d, each once", h, len(h))
			break
		}
		seen[e.BuildID] = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cluster := "the ConfigMap holds run 3's value"
	if c, err := env.Clientset(t).CoreV1().ConfigMaps(ns).Get(ctx, "interrupted", metav1.GetOptions{}); err != nil || c.Data["value"] != "three" {
		t.Errorf("the cluster is not at the last successful run's value: %v %v", c, err)
		cluster = "NO"
	}
	logFaultOutcomes(t, fmt.Sprintf("PostgreSQL killed mid-run for 5 s; run 3 done %s after it was back", time.Since(back).Round(time.Second)), d, h, cluster)
	d.stop(t)
}
