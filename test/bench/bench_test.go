package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/slipwayhq/slipway/test/testenv"
)

// measurement is one contender's figures.
type measurement struct {
	name     string
	wall     time.Duration
	requests map[string]int
	actions  map[string]int
	phases   map[string]float64
	maxRSS   int64 // KiB
}

// settle lets the controller manager finish reacting to the previous contender's objects
// (ReplicaSets, endpoints) before the next one is timed.
const settle = 5 * time.Second

// TestBench runs the contenders one after another (never in parallel: the machine is
// small and shared), each in its own child process and its own fresh namespaces, for
// several rounds (SLIPWAY_BENCH_ROUNDS, default 5), and prints a markdown table of medians
// with their spread; the raw figures go to .slipway/bench/deploy.json.
func TestBench(t *testing.T) {
	env := testenv.Get(t)
	cs := env.Clientset(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	rounds := benchRounds(t)
	tmp := t.TempDir()
	suffix := strings.TrimPrefix(testenv.UniqueName(t), "testbench-")
	kubectlCache := filepath.Join(tmp, "kubectl-cache")
	// kubectl caches discovery on disk; a user's cache is warm, so warm this one.
	if out, err := exec.CommandContext(ctx, env.Kubectl, "--kubeconfig", env.Kubeconfig, "--cache-dir", kubectlCache,
		"api-resources").CombinedOutput(); err != nil {
		t.Fatalf("warm kubectl's discovery cache: %v\n%s", err, out)
	}

	byName := map[string][]measurement{}
	var order []string
	for round := 1; round <= rounds; round++ {
		sets := map[string][]string{}
		for _, set := range []string{"floor", "kubectl", "slipway"} {
			sets[set] = makeNamespaces(t, cs, fmt.Sprintf("bench-%s-%s-%d", set, suffix, round))
			if err := writeObjects(filepath.Join(tmp, fmt.Sprint(round), set), sets[set]); err != nil {
				t.Fatal(err)
			}
		}
		input := func(set string) childInput {
			return childInput{kubeconfig: env.Kubeconfig, dir: filepath.Join(tmp, fmt.Sprint(round), set), namespaces: sets[set],
				store: filepath.Join(tmp, fmt.Sprint(round), "slipway.db")}
		}
		step := func(m measurement, err error) measurement {
			t.Helper()
			if err != nil {
				t.Fatalf("round %d, %s: %v", round, m.name, err)
			}
			t.Logf("round %d, %s: %s, %d requests (%s), %d MiB, actions %v, phases %s", round, m.name, m.wall.Round(time.Millisecond),
				total(m.requests), describe(m.requests), m.maxRSS/1024, m.actions, describePhases(m.phases))
			if _, seen := byName[m.name]; !seen {
				order = append(order, m.name)
			}
			byName[m.name] = append(byName[m.name], m)
			time.Sleep(settle)
			return m
		}
		step(runChildProcess(ctx, "floor", "floor: first apply", input("floor")))
		checkObjects(ctx, t, cs, sets["floor"])
		step(runKubectl(ctx, env.Kubectl, kubectlCache, input("kubectl")))
		checkObjects(ctx, t, cs, sets["kubectl"])
		slipway := step(runChildProcess(ctx, "slipway", "slipway: first deploy", input("slipway")))
		checkObjects(ctx, t, cs, sets["slipway"])
		if slipway.actions["created"] != objectCount {
			t.Errorf("slipway's first deploy reported %v, want %d created", slipway.actions, objectCount)
		}
		step(runChildProcess(ctx, "floor", "floor: no-op re-apply", input("floor")))
		noop := step(runChildProcess(ctx, "slipway", "slipway: no-op re-deploy", input("slipway")))
		if noop.actions["unchanged"] != objectCount {
			t.Errorf("slipway's no-op re-deploy reported %v, want %d unchanged", noop.actions, objectCount)
		}
		step(runChildProcess(ctx, "get-dry-run", "GET + dry-run per object (Flux)", input("slipway")))
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\n%d objects (ConfigMaps, Deployments with 0 replicas, Services) in %d namespaces, local control plane, median of %d rounds\n\n",
		objectCount, namespaceCount, rounds)
	b.WriteString("| contender | median wall time | spread (min–max) | API requests | peak RSS |\n|---|---:|---:|---|---:|\n")
	report := benchReport{Objects: objectCount, Namespaces: namespaceCount, Rounds: rounds}
	for _, name := range order {
		ms := byName[name]
		walls := wallSeconds(ms)
		last := ms[len(ms)-1]
		fmt.Fprintf(&b, "| %s | %.2f s | %.2f–%.2f s | %d (%s) | %d MiB |\n", name, median(walls), slices.Min(walls), slices.Max(walls),
			total(last.requests), describe(last.requests), maxOf(ms)/1024)
		report.Contenders = append(report.Contenders, benchContender{Name: name, WallSeconds: walls, MedianSeconds: median(walls),
			Requests: last.requests, PeakRSSKiB: maxOf(ms)})
	}
	b.WriteString("\n| target | figure | verdict |\n|---|---:|---|\n")
	target := func(what string, figure, limit float64, unit string) {
		verdict := "met"
		if figure > limit {
			verdict = "MISSED"
		}
		fmt.Fprintf(&b, "| %s ≤ %.1f%s | %.2f%s | %s |\n", what, limit, unit, figure, unit, verdict)
		report.Targets = append(report.Targets, benchTarget{What: what, Limit: limit, Figure: figure, Met: verdict == "met"})
	}
	med := func(name string) float64 { return median(wallSeconds(byName[name])) }
	target("slipway first deploy / floor (medians)", med("slipway: first deploy")/med("floor: first apply"), 1.5, "×")
	target("slipway no-op / GET + dry-run (medians)", med("slipway: no-op re-deploy")/med("GET + dry-run per object (Flux)"), 0.1, "×")
	target("slipway no-op, median", med("slipway: no-op re-deploy"), 0.3, " s")
	fmt.Println(b.String())
	writeReport(t, env, "deploy.json", report)
}

// benchReport is what TestBench writes as JSON: every round's figures, not only medians.
type benchReport struct {
	Objects    int              `json:"objects"`
	Namespaces int              `json:"namespaces"`
	Rounds     int              `json:"rounds"`
	Contenders []benchContender `json:"contenders"`
	Targets    []benchTarget    `json:"targets"`
}

type benchContender struct {
	Name          string         `json:"name"`
	WallSeconds   []float64      `json:"wall_seconds"`
	MedianSeconds float64        `json:"median_seconds"`
	Requests      map[string]int `json:"requests_last_round"`
	PeakRSSKiB    int64          `json:"peak_rss_kib"`
}

type benchTarget struct {
	What   string  `json:"what"`
	Limit  float64 `json:"limit"`
	Figure float64 `json:"figure"`
	Met    bool    `json:"met"`
}

// benchRounds is SLIPWAY_BENCH_ROUNDS, or 5.
func benchRounds(t *testing.T) int {
	v := os.Getenv("SLIPWAY_BENCH_ROUNDS")
	if v == "" {
		return 5
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("SLIPWAY_BENCH_ROUNDS=%q: want a positive number", v)
	}
	return n
}

func wallSeconds(ms []measurement) []float64 {
	out := make([]float64, len(ms))
	for i, m := range ms {
		out[i] = m.wall.Seconds()
	}
	return out
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func maxOf(ms []measurement) int64 {
	var m int64
	for _, x := range ms {
		m = max(m, x.maxRSS)
	}
	return m
}

// writeReport writes a benchmark's raw figures to .slipway/bench/NAME in the repository.
func writeReport(t *testing.T, env *testenv.Env, name string, v any) {
	t.Helper()
	dir := filepath.Join(env.Root, ".slipway", "bench")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), append(raw, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("raw figures: %s", filepath.Join(dir, name))
}

// makeNamespaces creates a contender's namespaces and deletes them when the test ends.
func makeNamespaces(t *testing.T, cs kubernetes.Interface, prefix string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var names []string
	for i := 0; i < namespaceCount; i++ {
		name := fmt.Sprintf("%s-%d", prefix, i)
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"slipway.dev/test": "true"}}}
		if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create namespace %s: %v", name, err)
		}
		names = append(names, name)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := cs.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
				t.Errorf("delete namespace %s: %v", name, err)
			}
		})
	}
	return names
}

// checkObjects fails the test unless every generated object exists: a contender that
// returned early must not pass for a fast one.
func checkObjects(ctx context.Context, t *testing.T, cs kubernetes.Interface, namespaces []string) {
	t.Helper()
	n := 0
	for _, ns := range namespaces {
		cms, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, cm := range cms.Items {
			if cm.Name != "kube-root-ca.crt" {
				n++
			}
		}
		svcs, err := cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		deps, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n += len(svcs.Items) + len(deps.Items)
	}
	if n != objectCount {
		t.Fatalf("%d objects in %v, want %d", n, namespaces, objectCount)
	}
}

// runChildProcess re-executes this test binary as one contender and reads its result and
// its peak RSS.
func runChildProcess(ctx context.Context, contender, name string, in childInput) (measurement, error) {
	m := measurement{name: name}
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(),
		childEnv+"="+contender, kubeconfigEnv+"="+in.kubeconfig, dirEnv+"="+in.dir,
		namespacesEnv+"="+strings.Join(in.namespaces, ","), storeEnv+"="+in.store,
		workersEnv+"="+strconv.Itoa(in.workers))
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return m, fmt.Errorf("child: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var res childResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		return m, fmt.Errorf("child result %q: %w", stdout.String(), err)
	}
	m.wall = time.Duration(res.WallSeconds * float64(time.Second))
	m.requests, m.actions, m.phases = res.Requests, res.Actions, res.Phases
	m.maxRSS = maxRSS(cmd)
	return m, nil
}

// runKubectl times `kubectl apply --server-side -f DIR` and counts its requests from its
// -v=6 log, one "Response" line per request.
func runKubectl(ctx context.Context, kubectl, cacheDir string, in childInput) (measurement, error) {
	m := measurement{name: "kubectl apply --server-side"}
	logPath := filepath.Join(filepath.Dir(in.dir), "kubectl.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return m, err
	}
	defer logFile.Close()
	cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", in.kubeconfig, "--cache-dir", cacheDir,
		"apply", "--server-side", "-f", in.dir, "-v=6")
	cmd.Stderr = logFile
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return m, fmt.Errorf("kubectl apply: %w (log %s)", err, logPath)
	}
	m.wall = time.Since(start)
	m.maxRSS = maxRSS(cmd)
	if m.requests, err = countKubectlRequests(logPath); err != nil {
		return m, err
	}
	return m, nil
}

var kubectlResponse = regexp.MustCompile(`"Response" verb="([A-Z]+)" url="([^"]+)"`)

func countKubectlRequests(path string) (map[string]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		mm := kubectlResponse.FindStringSubmatch(sc.Text())
		if mm == nil {
			continue
		}
		path, query, _ := strings.Cut(strings.TrimPrefix(mm[2], "https://"), "?")
		if i := strings.Index(path, "/"); i >= 0 {
			path = path[i:]
		}
		out[requestKind(mm[1], path, strings.Contains(query, "dryRun="))]++
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no requests found in kubectl's log %s", path)
	}
	return out, nil
}

// maxRSS is the child's peak resident set in KiB (Linux reports ru_maxrss in KiB).
func maxRSS(cmd *exec.Cmd) int64 {
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss
	}
	return 0
}

// describePhases writes "render 0.05s, plan 0.21s, ..." in the order of the deploy path.
func describePhases(phases map[string]float64) string {
	var parts []string
	for _, p := range []string{"render", "store", "plan", "dry-run", "apply"} {
		if v, ok := phases[p]; ok {
			parts = append(parts, fmt.Sprintf("%s %.2fs", p, v))
		}
	}
	return strings.Join(parts, ", ")
}
