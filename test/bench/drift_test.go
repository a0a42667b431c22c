package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/reconciler/drift"
	"github.com/slipwayhq/slipway/test/testenv"
)

// Shape of the drift benchmark: 10 namespaces × 100 ConfigMaps, all watched by one
// `slipway serve` in report mode.
const (
	driftPerNS     = 100
	driftObjects   = namespaceCount * driftPerNS
	driftIdle      = 60 * time.Second
	driftEdits     = 100
	driftPipeline  = "bench-drift"
	driftTargetP95 = 2 * time.Second
)

// TestBenchDrift measures what drift detection costs a real `slipway serve` watching 1000
// ConfigMaps with `drift: report`: CPU, RSS and API requests over an idle minute, then the
// latency from an out-of-band PATCH returning to slipway_drift_events_total counting it.
func TestBenchDrift(t *testing.T) {
	env := testenv.Get(t)
	cs := env.Clientset(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	tmp := t.TempDir()
	suffix := strings.TrimPrefix(testenv.UniqueName(t), "testbenchdrift-")
	namespaces := makeNamespaces(t, cs, "bench-drift-"+suffix)

	bin := buildSlipwayTo(ctx, t, env, tmp)

	// The pipeline and its manifests, pushed to a repository on the Git server.
	work := filepath.Join(tmp, "work")
	if err := writeDriftObjects(filepath.Join(work, "manifests"), namespaces); err != nil {
		t.Fatal(err)
	}
	pipelineYAML := fmt.Sprintf(`name: %s
stages:
  - name: deploy
    tasks:
      - name: configmaps
        type: deploy-yaml
        path: manifests
        cluster: bench
        namespace: %s
        allowedNamespaces: [%s]
        wait: 120s
        drift: report
`, driftPipeline, namespaces[0], strings.Join(namespaces[1:], ", "))
	if err := os.WriteFile(filepath.Join(work, ".pipeline.yaml"), []byte(pipelineYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	repoName, url := pushWork(ctx, t, env, work, "1000 ConfigMaps")
	cfgPath := writeDriftConfig(t, tmp, env, repoName, url)

	// slipway serve, with its metrics on a free port.
	serve := startDriftServe(t, bin, cfgPath, tmp)
	defer serve.stop()
	addr, fail := serve.addr, serve.fail

	deployWall := serve.waitDeployed(ctx, driftPipeline, 0)
	// The watcher learns the revision when the task ends, then lists and watches the kind.
	time.Sleep(10 * time.Second)
	before := scrapeMetrics(t, addr)
	if v := before["slipway_drift_events_total"]; v != 0 {
		fail("%v drift events before any edit", v)
	}

	// 1. Idle.
	cpu0, err := procCPU(serve.pid())
	if err != nil {
		t.Fatal(err)
	}
	idleStart := time.Now()
	time.Sleep(driftIdle)
	cpu1, err := procCPU(serve.pid())
	if err != nil {
		t.Fatal(err)
	}
	idleWall := time.Since(idleStart)
	after := scrapeMetrics(t, addr)
	rss, hwm, err := procMemory(serve.pid())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := after["slipway_kube_requests_total"]; !ok {
		fail("serve's /metrics has no slipway_kube_requests_total")
	}
	idleRequests := after["slipway_kube_requests_total"] - before["slipway_kube_requests_total"]
	idleByVerb := diffByVerb(before, after)
	perHour := idleRequests * float64(time.Hour) / float64(idleWall)
	t.Logf("idle %s: %.2f CPU s, RSS %d MiB (peak %d MiB), %.0f API requests (%s)", idleWall.Round(time.Millisecond),
		cpu1-cpu0, rss/1024, hwm/1024, idleRequests, describeFloat(idleByVerb))

	// 2. Out-of-band edits, one at a time.
	var lat []time.Duration
	events := after["slipway_drift_events_total"]
	editStart := scrapeMetrics(t, addr)
	cpuEdit0, _ := procCPU(serve.pid())
	for i := 0; i < driftEdits; i++ {
		ns, name := namespaces[i%namespaceCount], fmt.Sprintf("cm-%02d", i/namespaceCount)
		var d time.Duration
		d, events = serve.driftEdit(ctx, cs, ns, name, i, events)
		lat = append(lat, d)
	}
	cpuEdit1, _ := procCPU(serve.pid())
	editEnd := scrapeMetrics(t, addr)
	editRequests := editEnd["slipway_kube_requests_total"] - editStart["slipway_kube_requests_total"]
	_, hwm2, _ := procMemory(serve.pid())
	if want := float64(driftEdits); events-before["slipway_drift_events_total"] != want {
		fail("%v drift events after %d edits, want %v", events, driftEdits, want)
	}
	p50, p95, pmax, verdict := latencyStats(lat)

	var b strings.Builder
	fmt.Fprintf(&b, "\nslipway serve watching %d ConfigMaps in %d namespaces (drift: report), local control plane; deploy took %.1f s\n\n",
		driftObjects, namespaceCount, deployWall.Seconds())
	b.WriteString("| measure | value |\n|---|---:|\n")
	fmt.Fprintf(&b, "| idle CPU over %.0f s | %.2f s (%.1f%% of a core) |\n", idleWall.Seconds(), cpu1-cpu0, 100*(cpu1-cpu0)/idleWall.Seconds())
	fmt.Fprintf(&b, "| RSS after the idle minute (VmRSS) | %d MiB |\n", rss/1024)
	fmt.Fprintf(&b, "| peak RSS so far (VmHWM, deploy included) | %d MiB |\n", hwm/1024)
	fmt.Fprintf(&b, "| API requests in the idle minute | %.0f (%s) |\n", idleRequests, describeFloat(idleByVerb))
	fmt.Fprintf(&b, "| API requests per hour, idle minute extrapolated (no sweep, no watch renewal in it) | %.0f |\n", perHour)
	writeLatencyRows(&b, p50, p95, pmax)
	fmt.Fprintf(&b, "| serve's API requests per edit | %.1f (%s) |\n", editRequests/driftEdits, describeFloat(diffByVerb(editStart, editEnd)))
	fmt.Fprintf(&b, "| serve's CPU over the %d edits | %.2f s |\n", driftEdits, cpuEdit1-cpuEdit0)
	perCheck := editRequests / driftEdits
	fmt.Fprintf(&b, "| sweep (every %s by default; not in the idle minute), derived: requests per edit × objects | %.0f per sweep, %.0f per hour |\n",
		drift.DefaultSweep, perCheck*driftObjects, perCheck*driftObjects*float64(time.Hour/drift.DefaultSweep))
	fmt.Fprintf(&b, "| peak RSS after the edits (VmHWM) | %d MiB |\n", hwm2/1024)
	writeLatencyTarget(&b, p95, verdict)
	t.Log(b.String())
	fmt.Println(b.String())
}

// writeDriftObjects writes one file of driftPerNS ConfigMaps per namespace.
func writeDriftObjects(dir string, namespaces []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, ns := range namespaces {
		var b strings.Builder
		for i := 0; i < driftPerNS; i++ {
			fmt.Fprintf(&b, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%02d\n  namespace: %s\ndata:\n  LISTEN: \":8080\"\n  GREETING: \"hello from cm-%02d\"\n", i, ns, i)
		}
		if err := os.WriteFile(filepath.Join(dir, ns+".yaml"), []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeDriftConfig writes a slipway.yaml that polls the repository and deploys to the
// environment's cluster, named bench.
func writeDriftConfig(t *testing.T, dir string, env *testenv.Env, repoName, url string) string {
	t.Helper()
	for name, v := range map[string]string{"git-user": env.GitUser, "git-password": env.GitPassword} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := fmt.Sprintf(`dataDir: %s/data
listen: 127.0.0.1:0
repositories:
  - name: %s
    url: %s
    branch: master
    poll: 1s
    auth: {usernameFile: git-user, passwordFile: git-password}
    policy: {clusters: ['*'], namespaces: ['*'], registries: ['*']}
clusters:
  - name: bench
    kubeconfig: %s
registry:
  default: %s
  insecure: [%s]
`, dir, repoName, url, env.Kubeconfig, env.Registry, env.Registry)
	path := filepath.Join(dir, "slipway.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// scrapeMetrics reads serve's /metrics: each metric's sum over its label sets under its
// name, and each sample under its full name with labels.
func scrapeMetrics(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	out, err := fetchMetrics(addr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fetchMetrics is scrapeMetrics for a goroutine of the test's own, which may not end it.
func fetchMetrics(addr string) (map[string]float64, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("scrape serve's metrics: %w", err)
	}
	// Uncompressed: a gzip writer costs the daemon about 1 MB of garbage per scrape, and the
	// scale bench scrapes every second while it measures the daemon's memory.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape serve's metrics: %w", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		sample := line[:i]
		out[sample] = v
		if j := strings.IndexByte(sample, '{'); j >= 0 {
			out[sample[:j]] += v
		}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read serve's metrics: %w", err)
	}
	return out, nil
}

// diffByVerb is the change of slipway_kube_requests_total by verb between two scrapes.
func diffByVerb(before, after map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if !strings.HasPrefix(k, "slipway_kube_requests_total{") {
			continue
		}
		verb := k[strings.Index(k, `verb="`)+6:]
		verb = verb[:strings.IndexByte(verb, '"')]
		if d := v - before[k]; d > 0 {
			out[verb] += d
		}
	}
	return out
}

func describeFloat(m map[string]float64) string {
	if len(m) == 0 {
		return "none"
	}
	in := map[string]int{}
	for k, v := range m {
		in[k] = int(v)
	}
	return describe(in)
}

// procCPU is the process's user plus system CPU time in seconds, from /proc/PID/stat.
func procCPU(pid int) (float64, error) { return procStatCPU(pid, false) }

// procTreeCPU is procCPU plus the CPU of the children the process has waited for: a server
// that spawns a process per request (the Git server's `git http-backend`) spends most of
// its CPU in them.
func procTreeCPU(pid int) (float64, error) { return procStatCPU(pid, true) }

func procStatCPU(pid int, children bool) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) start at state, field 3;
	// utime and stime are fields 14 and 15, cutime and cstime 16 and 17, in clock ticks
	// (100 per second on Linux).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 15 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	fields := f[11:13]
	if children {
		fields = f[11:15]
	}
	var ticks float64
	for _, v := range fields {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
		}
		ticks += n
	}
	return ticks / 100, nil
}

// procMemory is the process's VmRSS and VmHWM in KiB, from /proc/PID/status.
func procMemory(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			rss, _ = strconv.ParseInt(f[1], 10, 64)
		case "VmHWM:":
			hwm, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	if rss == 0 || hwm == 0 {
		return 0, 0, fmt.Errorf("no VmRSS or VmHWM in /proc/%d/status", pid)
	}
	return rss, hwm, nil
}

// memSplit is a process's resident memory in KiB: anonymous (heap, stacks) and
// file-backed (the pages of the binary it touched, which the kernel can drop and re-read).
type memSplit struct{ anon, file int64 }

func readMemSplit(pid int) (memSplit, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memSplit{}, err
	}
	var m memSplit
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "RssAnon:":
			m.anon, _ = strconv.ParseInt(f[1], 10, 64)
		case "RssFile:":
			m.file, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	if m.anon == 0 {
		return m, fmt.Errorf("no RssAnon in /proc/%d/status", pid)
	}
	return m, nil
}

// memSampler follows a process's resident memory: VmHWM says the peak, not how much of
// it was the binary's pages.
type memSampler struct {
	done    chan struct{}
	stopped chan struct{}
	once    sync.Once
	mu      sync.Mutex
	peak    memSplit // the largest anonymous and file-backed figures seen, each on its own
	since   memSplit // the same since the last phase call
}

// sampleMemory samples pid's memory every interval until stop.
func sampleMemory(pid int, interval time.Duration) *memSampler {
	m := &memSampler{done: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(m.stopped)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if s, err := readMemSplit(pid); err == nil {
				m.mu.Lock()
				m.peak.anon, m.peak.file = max(m.peak.anon, s.anon), max(m.peak.file, s.file)
				m.since.anon, m.since.file = max(m.since.anon, s.anon), max(m.since.file, s.file)
				m.mu.Unlock()
			}
			select {
			case <-m.done:
				return
			case <-t.C:
			}
		}
	}()
	return m
}

// stop ends the sampling and returns the peaks; it may be called again.
func (m *memSampler) stop() memSplit {
	m.once.Do(func() { close(m.done) })
	<-m.stopped
	return m.peak
}

// phase returns the peaks since the last call (or the start) and starts counting anew: a
// benchmark's phases each get their own.
func (m *memSampler) phase() memSplit {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.since
	m.since = memSplit{}
	return p
}

// percentile by nearest rank of sorted durations.
func percentile(sorted []time.Duration, p int) time.Duration {
	i := (p*len(sorted)+99)/100 - 1
	if i < 0 {
		i = 0
	}
	return sorted[i]
}
