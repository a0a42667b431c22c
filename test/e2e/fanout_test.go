package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/test/testenv"
)

// listedRun is a run as `slipway get runs -o json` lists it.
type listedRun struct {
	Repository string `json:"repository"`
	Pipeline   string `json:"pipeline"`
	BuildID    int64  `json:"buildId"`
	Commit     string `json:"commit"`
	Status     string `json:"status"`
	Reason     string `json:"reason"`
}

// allRuns lists every run the store holds (up to one page of 500).
func allRuns(t *testing.T, cfg string) []listedRun {
	t.Helper()
	out, code := slipway(t, "get", "runs", "--config", cfg, "--limit", "500", "-o", "json")
	if code != 0 {
		t.Fatalf("slipway get runs exited %d:\n%s", code, out)
	}
	var list struct {
		Runs []listedRun `json:"runs"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("get runs JSON: %v\n%s", err, out)
	}
	return list.Runs
}

// waitAllRuns polls the runs until cond holds.
func waitAllRuns(t *testing.T, cfg string, timeout time.Duration, what string, cond func([]listedRun) bool) []listedRun {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		runs := allRuns(t, cfg)
		if cond(runs) {
			return runs
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s; runs:\n%+v", what, runs)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// finalRuns reports whether every run has ended, and how many succeeded.
func finalRuns(runs []listedRun) (ended bool, succeeded int) {
	for _, r := range runs {
		switch r.Status {
		case "succeeded":
			succeeded++
		case "failed", "cancelled", "superseded", "interrupted":
		default:
			return false, succeeded
		}
	}
	return true, succeeded
}

// appPipelines is one .pipeline.yaml of n pipelines app-00 … app-NN, each deploying the
// ConfigMaps of its own folder apps/app-NN and triggered only by changes there.
func appPipelines(n int, ns string) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString("---\n")
		}
		fmt.Fprintf(&b, `name: app-%02d
triggers:
  push:
    paths: ["apps/app-%02d/**"]
stages:
  - name: deploy
    tasks:
      - {name: objects, type: deploy-yaml, path: apps/app-%02d, cluster: e2e, namespace: %s, wait: 60s}
`, i, i, i, ns)
	}
	return b.String()
}

// appObjects is app i's folder: objects ConfigMaps holding rev.
func appObjects(files map[string][]byte, i, objects int, rev string) {
	for j := range objects {
		files[fmt.Sprintf("apps/app-%02d/cm-%d.yaml", i, j)] = []byte(fmt.Sprintf(
			"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-%02d-%d\ndata:\n  REV: %q\n", i, j, rev))
	}
}

// TestTriggerFiftyPipelinesOneCommitRunsFive: one .pipeline.yaml of 50 pipelines with path
// filters; after the first commit ran them all, a commit touching 5 apps' folders starts
// exactly those 5 runs: the daemon's log says the other 45 were not triggered by it.
func TestTriggerFiftyPipelinesOneCommitRunsFive(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	repo, _, cfg := newProject(t, env)
	// The first commit runs all 50: ten at a time keeps the test short.
	appendConfig(t, cfg, "runs:\n  maxInFlight: 10\n")
	const apps = 50
	files := map[string][]byte{".pipeline.yaml": []byte(appPipelines(apps, ns))}
	for i := range apps {
		appObjects(files, i, 1, "1")
	}
	repo.commit("fifty apps", files)
	d := startServe(t, cfg, "--log-format", "json")
	waitAllRuns(t, cfg, 80*time.Second, "the first commit's 50 runs to succeed", func(runs []listedRun) bool {
		ended, ok := finalRuns(runs)
		return ended && ok == apps
	})

	touched := []int{3, 11, 22, 37, 49}
	change := map[string][]byte{}
	for _, i := range touched {
		appObjects(change, i, 1, "2")
	}
	second := repo.commit("five apps change", change)
	// The look that handles the commit decides for every pipeline at once: 5 triggered, 45
	// not, each said on the log with the commit.
	short := second[:7]
	deadline := time.Now().Add(30 * time.Second)
	var triggered, not []string
	for {
		triggered, not = decisions(t, d.output(), short)
		if len(triggered)+len(not) >= apps || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	want := make([]string, len(touched))
	for k, i := range touched {
		want[k] = fmt.Sprintf("app-%02d", i)
	}
	if strings.Join(triggered, ",") != strings.Join(want, ",") || len(not) != apps-len(touched) {
		t.Fatalf("commit %s: triggered %v and not %d pipelines; want exactly %v triggered and %d not", short, triggered, len(not), want, apps-len(touched))
	}
	runs := waitAllRuns(t, cfg, 60*time.Second, "the second commit's runs to end", func(runs []listedRun) bool {
		ended, _ := finalRuns(runs)
		return ended && len(runs) >= apps+len(touched)
	})
	var ran []string
	for _, r := range runs {
		if r.Commit == second {
			if r.Status != "succeeded" {
				t.Errorf("%s #%d of the second commit %s: %s", r.Pipeline, r.BuildID, r.Status, r.Reason)
			}
			ran = append(ran, r.Pipeline)
		}
	}
	sort.Strings(ran)
	if len(runs) != apps+len(touched) || strings.Join(ran, ",") != strings.Join(want, ",") {
		t.Fatalf("%d runs in all, of the second commit %v; want %d, of the second commit exactly %v", len(runs), ran, apps+len(touched), want)
	}
	for _, i := range []int{3, 4} { // a touched app has the new revision, an untouched one the old
		cm, err := env.Clientset(t).CoreV1().ConfigMaps(ns).Get(t.Context(), fmt.Sprintf("app-%02d-0", i), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if want := map[int]string{3: "2", 4: "1"}[i]; cm.Data["REV"] != want {
			t.Errorf("ConfigMap app-%02d-0 has REV %q, want %q", i, cm.Data["REV"], want)
		}
	}
}

// decisions reads the daemon's JSON log for what the look at commit (short hash) decided
// for each pipeline: triggered or not, sorted by name.
func decisions(t *testing.T, log, commit string) (triggered, not []string) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec struct {
			Msg      string `json:"msg"`
			Commit   string `json:"commit"`
			Pipeline string `json:"pipeline"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) != nil || rec.Commit != commit {
			continue
		}
		switch rec.Msg {
		case "triggered":
			triggered = append(triggered, rec.Pipeline)
		case "not triggered":
			not = append(not, rec.Pipeline)
		}
	}
	sort.Strings(triggered)
	sort.Strings(not)
	return triggered, not
}

// metricsOf scrapes the daemon's metrics into name{labels} → value.
func metricsOf(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	return parseMetrics(scrape(t, addr))
}

// parseMetrics reads Prometheus text exposition into name{labels} → value.
func parseMetrics(text string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		var v float64
		if _, err := fmt.Sscan(line[i+1:], &v); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// limitsProject is repos repositories on the Git server, each with one .pipeline.yaml of
// pipelines pipelines deploying objects ConfigMaps each into a namespace of its own, and a
// slipway.yaml following them all (poll 1s) with the bounds limits (YAML at the top level).
func limitsProject(t *testing.T, env *testenv.Env, repos, pipelines, objects int, limits string) (cfg string, names []string) {
	t.Helper()
	dir := t.TempDir()
	cfg = writeConfigFor(t, env, dir, "placeholder", "http://placeholder.invalid/x.git", env.GitUser, env.GitPassword, "poll: 1s")
	var list strings.Builder
	for r := range repos {
		repo, url := newWorkRepo(t, env)
		name := strings.TrimSuffix(url[strings.LastIndex(url, "/")+1:], ".git")
		names = append(names, name)
		files := map[string][]byte{".pipeline.yaml": []byte(appPipelines(pipelines, env.Namespace(t)))}
		for i := range pipelines {
			appObjects(files, i, objects, fmt.Sprint(r))
		}
		repo.commit("apps", files)
		fmt.Fprintf(&list, "  - name: %s\n    url: %s\n    branch: master\n    auth: {usernameFile: git-user, passwordFile: git-password}\n    poll: 1s\n    %s\n",
			name, url, grantEverythingIn(dir))
	}
	raw, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	start, end := strings.Index(text, "repositories:\n"), strings.Index(text, "clusters:\n")
	text = text[:start] + limits + "repositories:\n" + list.String() + text[end:]
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg, names
}

// TestServeConcurrencyLimitsHoldCounted: three repositories on one Git host, twelve
// pipelines of eight objects each, all due at the daemon's start. With runs.maxInFlight 2,
// runs.maxAppliesInFlight 3 and git.maxPerHost 1, the daemon's own counts of the most held
// at once (its peak metrics) reach each bound and never pass it.
func TestServeConcurrencyLimitsHoldCounted(t *testing.T) {
	env := testenv.Get(t)
	const repos, pipelines, objects = 3, 4, 8
	cfg, _ := limitsProject(t, env, repos, pipelines, objects,
		"runs: {maxInFlight: 2, maxAppliesInFlight: 3}\ngit: {maxPerHost: 1}\n")
	metrics := testenv.FreeAddress(t)
	startServe(t, cfg, "--metrics-address", metrics)
	waitAllRuns(t, cfg, 80*time.Second, "all 12 runs to succeed", func(runs []listedRun) bool {
		ended, ok := finalRuns(runs)
		return ended && ok == repos*pipelines
	})
	m := metricsOf(t, metrics)
	for _, c := range []struct {
		bound, peak string
		want        float64
	}{
		{"slipway_runs_max_in_flight", "slipway_runs_in_flight_peak", 2},
		{"slipway_applies_max_in_flight", "slipway_applies_in_flight_peak", 3},
		{"slipway_git_max_per_host", "slipway_git_per_host_peak", 1},
	} {
		if m[c.bound] != c.want {
			t.Errorf("%s = %v, want %v (from slipway.yaml)", c.bound, m[c.bound], c.want)
		}
		// Reached (the work was enough to fill it), never passed.
		if m[c.peak] != c.want {
			t.Errorf("%s = %v, want %v: the bound reached and never passed", c.peak, m[c.peak], c.want)
		}
	}
	// Looks: four per Git place (git.maxPerHost 1) against the one host; three
	// repositories cannot fill that, but they looked.
	if m["slipway_looks_max_per_host"] != 4 {
		t.Errorf("slipway_looks_max_per_host = %v, want 4 × git.maxPerHost 1", m["slipway_looks_max_per_host"])
	}
	if p := m["slipway_looks_per_host_peak"]; p < 1 || p > 4 {
		t.Errorf("slipway_looks_per_host_peak = %v, want 1 to the bound 4", p)
	}
	if waiting, ok := m["slipway_looks_waiting"]; !ok || waiting != 0 {
		t.Errorf("slipway_looks_waiting = %v (exported: %v), want 0 once the looks are done", waiting, ok)
	}
	if m["slipway_applies_in_flight"] != 0 || m["slipway_runs_in_flight"] != 0 {
		t.Errorf("after the runs: %v objects and %v runs still in flight", m["slipway_applies_in_flight"], m["slipway_runs_in_flight"])
	}
}

// TestRunManyPipelinesConcurrentlyWithinLimits: `slipway run` of a repository of six
// pipelines runs them together within the daemon's bounds (runs.maxInFlight 2,
// runs.maxAppliesInFlight 3): piped, it prints one line per run state change and no task
// lines, then a summary saying how they ended and the most held at once.
func TestRunManyPipelinesConcurrentlyWithinLimits(t *testing.T) {
	env := testenv.Get(t)
	const pipelines, objects = 6, 8
	cfg, names := limitsProject(t, env, 1, pipelines, objects, "runs: {maxInFlight: 2, maxAppliesInFlight: 3}\n")
	out, code := slipway(t, "run", "--config", cfg, "--repo", names[0])
	t.Logf("slipway run's output:\n%s", out)
	if code != 0 {
		t.Fatalf("slipway run exited %d:\n%s", code, out)
	}
	for i := range pipelines {
		name := fmt.Sprintf("app-%02d", i)
		for _, status := range []string{"running", "succeeded"} {
			if n := countLines(out, name, " "+status); n != 1 {
				t.Errorf("%d lines say %s %s, want one:\n%s", n, name, status, out)
			}
		}
	}
	if strings.Contains(out, "deploy/objects") {
		t.Errorf("task lines in the piped output of several pipelines:\n%s", out)
	}
	if !strings.Contains(out, fmt.Sprintf("%d pipelines in ", pipelines)) || !strings.Contains(out, fmt.Sprintf(": %d succeeded\n", pipelines)) ||
		!strings.Contains(out, "at most 2 runs and 3 objects applied at once (runs.maxInFlight 2, runs.maxAppliesInFlight 3)") {
		t.Errorf("no summary of %d succeeded runs that reached both bounds:\n%s", pipelines, out)
	}
}

// countLines counts the lines of out holding every one of parts.
func countLines(out string, parts ...string) int {
	n := 0
	for _, line := range strings.Split(out, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}
