package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/store"
	"github.com/slipwayhq/slipway/test/testenv"
)

// Shape of the trigger benchmark.
const (
	trigPushes      = 50                     // measured pushes per contender (after one warm-up push)
	trigTargetP95   = time.Second            // push → run start, webhook, p95
	trigDeliveryP95 = 250 * time.Millisecond // webhook delivery → run start, p95
	trigPipeline    = "bench-trigger"        // the latency repository's pipeline
	idleRepos       = 1000                   // polled repositories on the local Git server
	idlePoll        = time.Minute            // their interval
	idleSettle      = 20 * time.Second       // after the first pass, before measuring
	idleTargetCPU   = 5.0                    // % of one core
	idleTargetRSS   = 150                    // MiB
	idleFirstPassTO = 15 * time.Minute
)

// idleWindow is three mean poll intervals: a poll waits its interval plus up to a tenth
// of it as jitter (mean +5 %), so the window holds about three looks per repository and
// no partial minute skews the per-minute rates.
var idleWindow = 3 * (idlePoll + idlePoll/20)

// TestBenchTriggers measures what starts runs: push→run-start latency through a Gitea
// webhook against polling at 1 s, and the idle cost of a daemon polling 1000 repositories
// on the local Git server once a minute.
func TestBenchTriggers(t *testing.T) {
	env := testenv.Get(t)
	bin := buildSlipwayBinary(t, env)
	t.Run("latency", func(t *testing.T) { benchPushLatency(t, env, bin) })
	t.Run("idle", func(t *testing.T) { benchIdlePolling(t, env, bin) })
}

func buildSlipwayBinary(t *testing.T, env *testenv.Env) string {
	t.Helper()
	return buildSlipwayTo(context.Background(), t, env, t.TempDir())
}

// ---- push → run start ------------------------------------------------------------------

// pushSample is one measured push. Delivery fields are zero for the polling contender.
type pushSample struct {
	toCreated, toStarted time.Duration // from `git push` returning
	// From `git push` starting: Gitea moves the ref before its hooks end and the push
	// returns, so a poll can start the run before the push returns (a negative toStarted).
	pushToCreated, pushToStarted         time.Duration
	toDelivery                           time.Duration // git push returned → the delivery reached the relay
	deliveryToCreated, deliveryToStarted time.Duration
	run                                  store.Run
	delivered                            time.Time // when the delivery reached the relay
}

func benchPushLatency(t *testing.T, env *testenv.Env, bin string) {
	ns := env.Namespace(t)
	admin := env.Gitea(t)
	owner := admin.CreateUser(t, "bench")
	as := admin.As(owner)
	repo := as.CreateRepo(t, "", "bench-hooks")
	pushURL := as.PushURL(repo.Owner.Login, repo.Name) // carries a token: never printed
	tmp := t.TempDir()
	secretBytes := make([]byte, 16)
	_, _ = rand.Read(secretBytes)
	secret := hex.EncodeToString(secretBytes)
	for name, v := range map[string]string{"gitea-user": owner.Name, "gitea-password": owner.Password, "hook-secret": secret} {
		if err := os.WriteFile(filepath.Join(tmp, name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	work := &benchWork{t: t, dir: filepath.Join(tmp, "work"), redact: []string{pushURL, owner.Token, owner.Password}}
	work.git("init", "-q", "--initial-branch=master", ".")
	pipelineYAML := fmt.Sprintf(`name: %s
stages:
  - name: deploy
    tasks:
      - name: configmap
        type: deploy-yaml
        path: configmap.yaml
        cluster: bench
        namespace: %s
        wait: 30s
`, trigPipeline, ns)
	configMap := func(i int) string {
		return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench-trigger\ndata:\n  PUSH: %q\n", fmt.Sprint(i))
	}
	work.commit("first", map[string]string{".pipeline.yaml": pipelineYAML, "configmap.yaml": configMap(0)})
	work.git("push", "-q", pushURL, "master")
	cloneURL := as.CloneURL(repo.Owner.Login, repo.Name)

	// The relay records each delivery's arrival and forwards it to the webhook daemon.
	relay := newTrigRelay(t)
	hookOwner, hookRepo := repo.Owner.Login, repo.Name
	admin.CreateHook(t, hookOwner, hookRepo, testenv.GiteaHookOptions{URL: relay.srv.URL, Secret: secret, Events: []string{"push"}})

	pushNo := 0
	measure := func(t *testing.T, d *trigDaemon, st store.Store, repoName string, viaHook bool) (warm pushSample, samples []pushSample) {
		ref := store.PipelineRef{Repository: repoName, Name: trigPipeline}
		for i := 0; i <= trigPushes; i++ {
			pushNo++
			hash := work.commit(fmt.Sprintf("push %d", pushNo), map[string]string{"configmap.yaml": configMap(pushNo)})
			pushing := time.Now()
			work.git("push", "-q", pushURL, "master")
			pushed := time.Now()
			run := waitRun(t, d, st, ref, hash, 30*time.Second, func(r store.Run) bool { return !r.StartedAt.IsZero() })
			s := pushSample{toCreated: run.CreatedAt.Sub(pushed), toStarted: run.StartedAt.Sub(pushed), run: run,
				pushToCreated: run.CreatedAt.Sub(pushing), pushToStarted: run.StartedAt.Sub(pushing)}
			if viaHook {
				del, ok := relay.delivery(hash)
				for wait := time.Now(); ok && del.status == 0 && time.Since(wait) < 10*time.Second; {
					time.Sleep(10 * time.Millisecond) // the daemon's answer is on its way back
					del, ok = relay.delivery(hash)
				}
				if !ok {
					d.fail(t, "push %d (%s) started a run but no delivery of it reached the relay", pushNo, hash[:8])
				}
				if del.status != http.StatusAccepted {
					d.fail(t, "the daemon answered the delivery of %s with %d", hash[:8], del.status)
				}
				s.toDelivery, s.delivered = del.at.Sub(pushed), del.at
				s.deliveryToCreated, s.deliveryToStarted = run.CreatedAt.Sub(del.at), run.StartedAt.Sub(del.at)
			}
			// Each push is its own delivery and its own run: the next waits for this one's end.
			end := waitRun(t, d, st, ref, hash, 60*time.Second, func(r store.Run) bool { return r.Status.Final() })
			if end.Status != store.RunSucceeded {
				d.fail(t, "run #%d of push %d ended %s: %s", end.BuildID, pushNo, end.Status, end.Reason)
			}
			if i == 0 {
				warm = s
				continue
			}
			samples = append(samples, s)
		}
		return warm, samples
	}

	// 1. Webhooks only (poll: 0s): the daemon looks once at start, then on deliveries.
	hookDir := filepath.Join(tmp, "hooks")
	hookCfg := writeTrigConfig(t, env, hookDir, tmp, "bench-hooks", cloneURL, "0s", true)
	dh := startTrigServe(t, bin, hookCfg, hookDir)
	relay.setTarget("http://" + dh.listen + "/hooks/bench-hooks")
	sth := dh.openStore(t)
	waitRun(t, dh, sth, store.PipelineRef{Repository: "bench-hooks", Name: trigPipeline}, work.head(), 60*time.Second,
		func(r store.Run) bool { return r.Status == store.RunSucceeded })
	hookWarm, hookSamples := measure(t, dh, sth, "bench-hooks", true)
	hookMetrics := scrapeMetrics(t, dh.metrics)
	_ = sth.Close()
	dh.stop(t)
	traces := readTrigTraces(t, dh.logPath)
	relay.setTarget("") // deliveries from here on are answered and dropped
	// The ConfigMap belongs to the webhook daemon's repository; the polling daemon's is
	// another, which may not take it over: it starts from a namespace without it.
	if err := env.Clientset(t).CoreV1().ConfigMaps(ns).Delete(context.Background(), "bench-trigger", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete the webhook contender's ConfigMap: %v", err)
	}

	// 2. The same repository polled every second, no webhook: a daemon of its own.
	pollDir := filepath.Join(tmp, "poll")
	pollCfg := writeTrigConfig(t, env, pollDir, tmp, "bench-poll", cloneURL, "1s", false)
	dp := startTrigServe(t, bin, pollCfg, pollDir)
	stp := dp.openStore(t)
	waitRun(t, dp, stp, store.PipelineRef{Repository: "bench-poll", Name: trigPipeline}, work.head(), 60*time.Second,
		func(r store.Run) bool { return r.Status == store.RunSucceeded })
	_, pollSamples := measure(t, dp, stp, "bench-poll", false)
	_ = stp.Close()
	dp.stop(t)

	pick := func(ss []pushSample, f func(pushSample) time.Duration) []time.Duration {
		out := make([]time.Duration, len(ss))
		for i, s := range ss {
			out[i] = f(s)
		}
		sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
		return out
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }
	var b strings.Builder
	fmt.Fprintf(&b, "\nPush → run start, %d pushes per contender to a Gitea repository (one warm-up push not counted), "+
		"pipeline deploy-yaml of one ConfigMap; each push waits for the previous run to end\n\n", trigPushes)
	b.WriteString("| contender, interval | p50 | p95 | max |\n|---|---:|---:|---:|\n")
	row := func(name string, ss []pushSample, f func(pushSample) time.Duration) {
		v := pick(ss, f)
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", name, ms(percentile(v, 50)), ms(percentile(v, 95)), ms(v[len(v)-1]))
	}
	row("webhook: git push returned → run started", hookSamples, func(s pushSample) time.Duration { return s.toStarted })
	row("webhook: git push returned → run created", hookSamples, func(s pushSample) time.Duration { return s.toCreated })
	row("webhook: git push returned → Gitea's delivery reached the relay", hookSamples, func(s pushSample) time.Duration { return s.toDelivery })
	row("webhook: delivery arrived → run created", hookSamples, func(s pushSample) time.Duration { return s.deliveryToCreated })
	row("webhook: delivery arrived → run started", hookSamples, func(s pushSample) time.Duration { return s.deliveryToStarted })
	row("webhook: git push started → run started", hookSamples, func(s pushSample) time.Duration { return s.pushToStarted })
	row("poll every 1s, no webhook: git push started → run started", pollSamples, func(s pushSample) time.Duration { return s.pushToStarted })
	row("poll every 1s, no webhook: git push started → run created", pollSamples, func(s pushSample) time.Duration { return s.pushToCreated })
	fmt.Fprintf(&b, "\nwarm-up push (not counted), webhook: push → delivery %s, delivery → started %s; webhook daemon counted "+
		"%.0f webhook triggers, %.0f ref looks\n", ms(hookWarm.toDelivery), ms(hookWarm.deliveryToStarted),
		hookMetrics[`slipway_triggers_received_total{repository="bench-hooks",source="webhook"}`], hookMetrics["slipway_git_polls_total"])
	phases := trigPhases(t, hookSamples, traces)
	fmt.Fprintf(&b, "\nWhere a webhook delivery's time goes until its run starts (the daemon's trace on the run's \"triggered\" log line, "+
		"the run's record for the dispatch)\n\n| phase | p50 | p95 | mean |\n|---|---:|---:|---:|\n")
	for _, ph := range phases {
		fmt.Fprintf(&b, "| %s | %.1f ms | %.1f ms | %.1f ms |\n", ph.Name, ph.P50, ph.P95, ph.Mean)
	}
	p95 := percentile(pick(hookSamples, func(s pushSample) time.Duration { return s.toStarted }), 95)
	dp95 := percentile(pick(hookSamples, func(s pushSample) time.Duration { return s.deliveryToStarted }), 95)
	verdict := func(got, want time.Duration) string {
		if got > want {
			return "MISSED"
		}
		return "met"
	}
	if p95 > trigTargetP95 {
		t.Errorf("webhook push → run start p95 %s, target ≤ %s", p95, trigTargetP95)
	}
	if dp95 > trigDeliveryP95 {
		t.Errorf("webhook delivery → run start p95 %s, target ≤ %s", dp95, trigDeliveryP95)
	}
	fmt.Fprintf(&b, "\n| target | measured | verdict |\n|---|---:|---|\n| webhook push → run start p95 ≤ %s | %s | %s |\n",
		trigTargetP95, ms(p95), verdict(p95, trigTargetP95))
	fmt.Fprintf(&b, "| webhook delivery → run start p95 ≤ %s | %s | %s |\n", trigDeliveryP95, ms(dp95), verdict(dp95, trigDeliveryP95))
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(&b, "\nload average at the end: %s\n", strings.TrimSpace(string(load)))
	t.Log(b.String())
	fmt.Println(b.String())
	figures := func(ss []pushSample, f func(pushSample) time.Duration) trigFigure {
		v := pick(ss, f)
		return trigFigure{P50: msf(percentile(v, 50)), P95: msf(percentile(v, 95)), Max: msf(v[len(v)-1])}
	}
	writeReport(t, env, "triggers.json", map[string]any{
		"pushes":                        trigPushes,
		"load_average":                  strings.Fields(string(load)),
		"webhook_push_to_started":       figures(hookSamples, func(s pushSample) time.Duration { return s.toStarted }),
		"webhook_delivery_to_start":     figures(hookSamples, func(s pushSample) time.Duration { return s.deliveryToStarted }),
		"webhook_push_to_delivery":      figures(hookSamples, func(s pushSample) time.Duration { return s.toDelivery }),
		"webhook_push_start_to_started": figures(hookSamples, func(s pushSample) time.Duration { return s.pushToStarted }),
		"poll_1s_push_start_to_started": figures(pollSamples, func(s pushSample) time.Duration { return s.pushToStarted }),
		"phases":                        phases,
	})
}

// trigFigure is one measure's percentiles in milliseconds.
type trigFigure struct {
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	Max float64 `json:"max_ms"`
}

func msf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// trigTrace is what the daemon's log line of a run it triggered says of the way there.
type trigTrace struct {
	hinted time.Time          // when the daemon had the webhook
	ms     map[string]float64 // trace_<phase>_ms, by phase
}

// readTrigTraces reads the trace of every run the daemon's JSON log says it triggered, by
// BUILD_ID.
func readTrigTraces(t *testing.T, logPath string) map[int64]trigTrace {
	t.Helper()
	raw, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]trigTrace{}
	for _, line := range strings.Split(string(raw), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != "triggered" {
			continue
		}
		id, _ := rec["build_id"].(float64)
		tr := trigTrace{ms: map[string]float64{}}
		if h, ok := rec["trace_hinted"].(string); ok {
			tr.hinted, _ = time.Parse(time.RFC3339Nano, h)
		}
		for k, v := range rec {
			if name, ok := strings.CutPrefix(k, "trace_"); ok {
				if f, ok := v.(float64); ok {
					tr.ms[strings.TrimSuffix(name, "_ms")] = f
				}
			}
		}
		out[int64(id)] = tr
	}
	return out
}

// trigPhase is one step between a webhook's delivery and its run's start, over the pushes.
type trigPhase struct {
	Name string  `json:"name"`
	P50  float64 `json:"p50_ms"`
	P95  float64 `json:"p95_ms"`
	Mean float64 `json:"mean_ms"`
}

// trigPhaseOrder names the steps in the order they happen.
var trigPhaseOrder = []struct{ key, name string }{
	{"hook", "delivery reached the relay → the daemon had verified and recorded it (hook)"},
	{"wait", "→ the watcher's look began (wait)"},
	{"refs", "→ the refs were listed, the pushed commit fetched alongside (refs)"},
	{"prefetch", "→ that fetch ended, if after the listing (prefetch)"},
	{"sync", "→ the branch was fetched (sync)"},
	{"prepare", "→ the commit's pipeline file was checked out, read and validated (prepare)"},
	{"match", "→ triggers and path filters matched (match)"},
	{"submit", "→ the run was recorded, queued (submit)"},
	{"dispatch", "→ the run started: claimed, placed, marked running (dispatch)"},
	{"total", "delivery → run started (sum)"},
}

// trigPhases splits each webhook push's delivery → run started into the daemon's traced
// steps; every run must have its trace.
func trigPhases(t *testing.T, samples []pushSample, traces map[int64]trigTrace) []trigPhase {
	t.Helper()
	by := map[string][]float64{}
	for _, s := range samples {
		tr, ok := traces[s.run.BuildID]
		if !ok || tr.hinted.IsZero() {
			t.Fatalf("run #%d has no trace of a webhook on its \"triggered\" log line", s.run.BuildID)
		}
		submitted := tr.hinted.Add(time.Duration(tr.ms["total"] * float64(time.Millisecond)))
		for k, v := range tr.ms {
			if k != "total" {
				by[k] = append(by[k], v)
			}
		}
		by["hook"] = append(by["hook"], msf(tr.hinted.Sub(s.delivered)))
		by["dispatch"] = append(by["dispatch"], msf(s.run.StartedAt.Sub(submitted)))
		by["total"] = append(by["total"], msf(s.deliveryToStarted))
	}
	var out []trigPhase
	for _, p := range trigPhaseOrder {
		v := by[p.key]
		if len(v) == 0 {
			continue
		}
		sort.Float64s(v)
		sum := 0.0
		for _, x := range v {
			sum += x
		}
		at := func(pc int) float64 { return v[max((pc*len(v)+99)/100-1, 0)] }
		out = append(out, trigPhase{Name: p.name, P50: at(50), P95: at(95), Mean: sum / float64(len(v))})
	}
	return out
}

// waitRun polls the store until ref has a run of commit for which cond holds.
func waitRun(t *testing.T, d *trigDaemon, st store.Store, ref store.PipelineRef, commit string, timeout time.Duration, cond func(store.Run) bool) store.Run {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		runs, err := st.ListRuns(context.Background(), ref, 5)
		if err == nil {
			for _, r := range runs {
				if r.Commit == commit && cond(r) {
					return r
				}
			}
		}
		if time.Now().After(deadline) {
			d.fail(t, "no run of %s for %s within %s (runs %+v, err %v)", commit[:8], ref, timeout, runs, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// writeTrigConfig writes dir/slipway.yaml following one Gitea repository; credentials are
// files in secrets.
func writeTrigConfig(t *testing.T, env *testenv.Env, dir, secrets, name, url, poll string, hook bool) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	webhook := ""
	if hook {
		webhook = fmt.Sprintf("\n    webhook: {type: gitea, secretFile: %s/hook-secret}", secrets)
	}
	cfg := fmt.Sprintf(`dataDir: %s/data
listen: %s
repositories:
  - name: %s
    url: %s
    branch: master
    poll: %s
    auth: {usernameFile: %s/gitea-user, passwordFile: %s/gitea-password}%s
    policy: {clusters: ['*'], namespaces: ['*'], registries: ['*']}
clusters:
  - name: bench
    kubeconfig: %s
`, dir, testenv.FreeAddress(t), name, url, poll, secrets, secrets, webhook, env.Kubeconfig)
	path := filepath.Join(dir, "slipway.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// trigRelay sits between Gitea and the daemon: it notes when each delivery arrived and
// which commit it names, and forwards it unchanged (or drops it when no target is set).
type trigRelay struct {
	srv    *httptest.Server
	mu     sync.Mutex
	target string
	got    map[string]trigDelivery // by the pushed commit ("after")
}

type trigDelivery struct {
	at     time.Time
	status int // the daemon's answer; 0 while it is being forwarded
}

func newTrigRelay(t *testing.T) *trigRelay {
	r := &trigRelay{got: map[string]trigDelivery{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		at := time.Now()
		body, _ := io.ReadAll(req.Body)
		var ev struct {
			After string `json:"after"`
		}
		_ = json.Unmarshal(body, &ev)
		r.mu.Lock()
		target := r.target
		_, seen := r.got[ev.After]
		if !seen { // the arrival is noted before the daemon can start anything
			r.got[ev.After] = trigDelivery{at: at}
		}
		r.mu.Unlock()
		status := http.StatusOK
		if target != "" {
			out, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(string(body)))
			out.Header = req.Header.Clone()
			resp, err := http.DefaultClient.Do(out)
			if err != nil {
				status = http.StatusBadGateway
			} else {
				status = resp.StatusCode
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
		if !seen {
			r.mu.Lock()
			r.got[ev.After] = trigDelivery{at: at, status: status}
			r.mu.Unlock()
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *trigRelay) setTarget(url string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.target = url
}

func (r *trigRelay) delivery(commit string) (trigDelivery, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.got[commit]
	return d, ok
}

// benchWork is a working copy pushed with the git CLI. Pushes name a URL carrying
// credentials; errors print the output with them replaced.
type benchWork struct {
	t      *testing.T
	dir    string
	redact []string
}

func (w *benchWork) git(args ...string) string {
	w.t.Helper()
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		w.t.Fatal(err)
	}
	cmd := exec.Command("git", args...)
	cmd.Dir = w.dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@example.com",
		"GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@example.com", "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		text := string(out)
		for _, s := range w.redact {
			if s != "" {
				text = strings.ReplaceAll(text, s, "<redacted>")
			}
		}
		w.t.Fatalf("git %s: %v\n%s", args[0], err, text)
	}
	return strings.TrimSpace(string(out))
}

func (w *benchWork) commit(msg string, files map[string]string) string {
	w.t.Helper()
	for name, content := range files {
		p := filepath.Join(w.dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			w.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			w.t.Fatal(err)
		}
	}
	w.git("add", "-A")
	w.git("commit", "-q", "-m", msg)
	return w.head()
}

func (w *benchWork) head() string { return w.git("rev-parse", "HEAD") }

// ---- slipway serve ---------------------------------------------------------------------

// trigDaemon is a `slipway serve` child with its metrics endpoint and JSON log.
type trigDaemon struct {
	cmd     *exec.Cmd
	done    chan error
	logPath string
	dir     string
	listen  string // the HTTP API and webhooks
	metrics string
	stopped bool
}

func startTrigServe(t *testing.T, bin, cfg, dir string) *trigDaemon {
	t.Helper()
	d := &trigDaemon{done: make(chan error, 1), logPath: filepath.Join(dir, "serve.log"), dir: dir, metrics: testenv.FreeAddress(t)}
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "listen: "); ok {
			d.listen = v
		}
	}
	logFile, err := os.Create(d.logPath)
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(bin, "serve", "--config", cfg, "--metrics-address", d.metrics, "--log-format", "json")
	d.cmd.Stdout, d.cmd.Stderr = logFile, logFile
	if err := d.cmd.Start(); err != nil {
		logFile.Close()
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait(); logFile.Close() }()
	t.Cleanup(func() { d.stop(t) })
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + d.metrics + "/metrics")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		select {
		case err := <-d.done:
			d.stopped = true
			d.fail(t, "slipway serve exited at start: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			d.fail(t, "slipway serve's metrics did not answer within 60s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// openStore opens the daemon's SQLite store for reading run records.
func (d *trigDaemon) openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite://"+filepath.Join(d.dir, "data", "slipway.db"))
	if err != nil {
		d.fail(t, "open the daemon's store: %v", err)
	}
	return st
}

func (d *trigDaemon) stop(t *testing.T) {
	t.Helper()
	if d.stopped {
		return
	}
	d.stopped = true
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("slipway serve exited with %v (log %s)", err, d.logPath)
		}
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		t.Errorf("slipway serve did not stop within 30s of SIGTERM (log %s)", d.logPath)
	}
}

func (d *trigDaemon) fail(t *testing.T, format string, args ...any) {
	t.Helper()
	log, _ := os.ReadFile(d.logPath)
	if len(log) > 8000 {
		log = log[len(log)-8000:]
	}
	t.Fatalf(format+"\nslipway serve's log (tail):\n%s", append(args, log)...)
}

// ---- idle cost of 1000 polled repositories --------------------------------------------

func benchIdlePolling(t *testing.T, env *testenv.Env, bin string) {
	tmp := t.TempDir()
	group := testenv.UniqueName(t) // a folder of bare repositories under the Git root
	root := filepath.Join(env.GitRoot, group)
	t.Cleanup(func() { _ = os.RemoveAll(root) })

	// One template repository with one commit, copied 1000 times: the pipeline's push
	// trigger names a branch never pushed, so no look starts a run.
	tmpl := filepath.Join(tmp, "template.git")
	if out, err := exec.Command("git", "init", "-q", "--bare", "--template=", "--initial-branch=master", tmpl).CombinedOutput(); err != nil {
		t.Fatalf("git init --bare: %v\n%s", err, out)
	}
	work := &benchWork{t: t, dir: filepath.Join(tmp, "work")}
	work.git("init", "-q", "--initial-branch=master", ".")
	work.commit("idle", map[string]string{".pipeline.yaml": `name: idle
triggers:
  push:
    branches: [never-pushed]
stages:
  - name: noop
    tasks:
      - {name: noop, type: deploy-yaml, path: app.yaml, cluster: bench, namespace: idle}
`, "app.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: idle}\n", "README": "a repository nobody pushes to\n"})
	work.git("push", "-q", tmpl, "master")
	files := map[string][]byte{}
	err := filepath.WalkDir(tmpl, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(tmpl, p)
		files[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	copyStart := time.Now()
	names := make([]string, idleRepos)
	for i := range names {
		names[i] = fmt.Sprintf("r%04d", i)
		dir := filepath.Join(root, names[i]+".git")
		for rel, b := range files {
			p := filepath.Join(dir, rel)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for _, d := range []string{"refs/tags", "objects/info", "objects/pack"} {
			_ = os.MkdirAll(filepath.Join(dir, d), 0o755)
		}
	}
	copyWall := time.Since(copyStart)

	for name, v := range map[string]string{"git-user": env.GitUser, "git-password": env.GitPassword} {
		if err := os.WriteFile(filepath.Join(tmp, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "dataDir: %s/data\nlisten: %s\nrepositories:\n", tmp, testenv.FreeAddress(t))
	for _, n := range names {
		fmt.Fprintf(&cfg, "  - name: idle-%s\n    url: %s/%s/%s.git\n    branch: master\n    poll: %s\n"+
			"    auth: {usernameFile: git-user, passwordFile: git-password}\n", n, env.GitURL, group, n, idlePoll)
	}
	cfgPath := filepath.Join(tmp, "slipway.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	gitTotals := func() testenv.GitRepoStats {
		var sum testenv.GitRepoStats
		for name, s := range env.GitStatsAll(t) {
			if strings.HasPrefix(name, group+"/") {
				sum.Listings += s.Listings
				sum.Fetches += s.Fetches
				sum.Pushes += s.Pushes
				sum.Requests += s.Requests
			}
		}
		return sum
	}
	git0 := gitTotals()

	// First pass: every repository is cloned into a mirror and its head read once.
	start := time.Now()
	d := startTrigServe(t, bin, cfgPath, tmp)
	pid := d.cmd.Process.Pid
	var peakRSS atomic.Int64
	sampleDone := make(chan struct{})
	sampleStop := make(chan struct{})
	go func() { // VmRSS every 250 ms, for the peak over time (VmHWM says it too)
		defer close(sampleDone)
		for {
			if rss, _, err := procMemory(pid); err == nil && rss > peakRSS.Load() {
				peakRSS.Store(rss)
			}
			select {
			case <-sampleStop:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	defer func() {
		select {
		case <-sampleStop:
		default:
			close(sampleStop)
		}
		<-sampleDone
	}()
	var polls map[string]float64
	for {
		polls = pollResults(scrapeMetrics(t, d.metrics))
		if polls["error"] > 0 {
			d.fail(t, "%v looks failed during the first pass", polls["error"])
		}
		if polls["changed"] >= idleRepos {
			break
		}
		if time.Since(start) > idleFirstPassTO {
			d.fail(t, "the first pass did not finish within %s: %v", idleFirstPassTO, polls)
		}
		time.Sleep(time.Second)
	}
	firstPass := time.Since(start)
	cpuFirst, _ := procCPU(pid)
	_, hwmFirst, _ := procMemory(pid)
	git1 := gitTotals()

	// Steady state: nothing changes; each repository is listed once a minute.
	time.Sleep(idleSettle)
	polls0 := pollResults(scrapeMetrics(t, d.metrics))
	gitA := gitTotals()
	cpu0, err := procCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	peakRSS.Store(0)
	wStart := time.Now()
	if out := os.Getenv("SLIPWAY_BENCH_PERF"); out != "" {
		// A diagnosis aid: perf samples the daemon over the window (its own CPU is not the
		// daemon's, but sampling adds a little to the daemon's: compare with a plain run).
		perf := exec.Command("perf", "record", "-F", "499", "-g", "-o", out, "-p", fmt.Sprint(pid),
			"--", "sleep", fmt.Sprint(int(idleWindow.Seconds())))
		if b, err := perf.CombinedOutput(); err != nil {
			t.Errorf("perf record: %v\n%s", err, b)
		}
		t.Logf("perf profile of the steady window in %s: perf report -i %s --no-children", out, out)
	}
	time.Sleep(idleWindow - time.Since(wStart))
	cpu1, err := procCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	wall := time.Since(wStart)
	gitB := gitTotals()
	rss, hwm, err := procMemory(pid)
	if err != nil {
		t.Fatal(err)
	}
	close(sampleStop)
	<-sampleDone
	threads, fds := procThreads(pid), procFDs(pid)
	anon, file := procStatusKiB(pid, "RssAnon:"), procStatusKiB(pid, "RssFile:")
	polls1 := pollResults(scrapeMetrics(t, d.metrics))
	d.stop(t)

	minutes := wall.Minutes()
	cpuPct := 100 * (cpu1 - cpu0) / wall.Seconds()
	steadyRSS := peakRSS.Load()
	looks := polls1["unchanged"] - polls0["unchanged"]
	var b strings.Builder
	fmt.Fprintf(&b, "\nslipway serve polling %d repositories on the local Git server every %s (no webhooks, nothing changes)\n\n", idleRepos, idlePoll)
	b.WriteString("| measure | value |\n|---|---:|\n")
	fmt.Fprintf(&b, "| making the %d bare repositories (copies of one) | %.1f s |\n", idleRepos, copyWall.Seconds())
	fmt.Fprintf(&b, "| first pass: start → every repository cloned and its head read (--git-per-host 4) | %.1f s |\n", firstPass.Seconds())
	fmt.Fprintf(&b, "| first pass: CPU | %.1f s (%.0f%% of a core) |\n", cpuFirst, 100*cpuFirst/firstPass.Seconds())
	fmt.Fprintf(&b, "| first pass: peak RSS (VmHWM) | %d MiB |\n", hwmFirst/1024)
	fmt.Fprintf(&b, "| first pass: Git requests (listings / fetches) | %d (%d / %d) |\n",
		git1.Requests-git0.Requests, git1.Listings-git0.Listings, git1.Fetches-git0.Fetches)
	fmt.Fprintf(&b, "| steady window (after %s of settling) | %.0f s |\n", idleSettle, wall.Seconds())
	fmt.Fprintf(&b, "| steady: CPU | %.2f s (%.2f%% of one core) |\n", cpu1-cpu0, cpuPct)
	fmt.Fprintf(&b, "| steady: RSS at the end (VmRSS) / highest sampled in the window | %d MiB / %d MiB |\n", rss/1024, steadyRSS/1024)
	fmt.Fprintf(&b, "| steady: of the RSS, anonymous (heap, stacks) / file-backed (the %d MiB binary's pages) | %d MiB / %d MiB |\n",
		binSize(bin)>>20, anon/1024, file/1024)
	fmt.Fprintf(&b, "| steady: VmHWM (whole life, first pass included) | %d MiB |\n", hwm/1024)
	fmt.Fprintf(&b, "| steady: threads / open file descriptors | %d / %d |\n", threads, fds)
	fmt.Fprintf(&b, "| steady: looks (slipway_git_polls_total unchanged) | %.0f (%.0f per minute) |\n", looks, looks/minutes)
	fmt.Fprintf(&b, "| steady: Git server requests | %d (%.0f per minute) |\n", gitB.Requests-gitA.Requests, float64(gitB.Requests-gitA.Requests)/minutes)
	fmt.Fprintf(&b, "| steady: ref listings / fetches | %d / %d |\n", gitB.Listings-gitA.Listings, gitB.Fetches-gitA.Fetches)
	fmt.Fprintf(&b, "| steady: CPU per look | %.2f ms |\n", 1000*(cpu1-cpu0)/max(looks, 1))

	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	cpuOK, rssOK := cpuPct < idleTargetCPU, rss/1024 < idleTargetRSS && steadyRSS/1024 < idleTargetRSS
	fetchOK := gitB.Fetches == gitA.Fetches && polls1["changed"] == polls0["changed"] && polls1["error"] == polls0["error"]
	fmt.Fprintf(&b, "\n| target | measured | verdict |\n|---|---:|---|\n")
	fmt.Fprintf(&b, "| idle CPU < %.0f%% of one core | %.2f%% | %s |\n", idleTargetCPU, cpuPct, verdict(cpuOK))
	fmt.Fprintf(&b, "| idle RSS < %d MiB | %d MiB | %s |\n", idleTargetRSS, max(rss, steadyRSS)/1024, verdict(rssOK))
	fmt.Fprintf(&b, "| no fetch while nothing changes | %d fetches, %.0f looks changed, %.0f failed | %s |\n",
		gitB.Fetches-gitA.Fetches, polls1["changed"]-polls0["changed"], polls1["error"]-polls0["error"], verdict(fetchOK))
	t.Log(b.String())
	fmt.Println(b.String())
	if !cpuOK || !rssOK {
		t.Errorf("idle cost of %d polled repositories over target: %.2f%% CPU, %d MiB RSS", idleRepos, cpuPct, max(rss, steadyRSS)/1024)
	}
	if !fetchOK {
		t.Errorf("the steady state fetched %d times (%.0f looks changed, %.0f failed); want none",
			gitB.Fetches-gitA.Fetches, polls1["changed"]-polls0["changed"], polls1["error"]-polls0["error"])
	}
	if minLooks := float64(idleRepos) * idleWindow.Minutes() / (idlePoll.Minutes() * 1.1); looks < 0.9*minLooks {
		t.Errorf("%.0f looks in %.0f s; at one per %s per repository (plus ≤ 10%% jitter) want about %.0f or more",
			looks, wall.Seconds(), idlePoll, minLooks)
	}
}

// pollResults sums slipway_git_polls_total by result over all repositories.
func pollResults(m map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if !strings.HasPrefix(k, "slipway_git_polls_total{") {
			continue
		}
		i := strings.Index(k, `result="`)
		if i < 0 {
			continue
		}
		r := k[i+8:]
		out[r[:strings.IndexByte(r, '"')]] += v
	}
	return out
}

func procThreads(pid int) int { return int(procStatusKiB(pid, "Threads:")) }

// procStatusKiB reads one numeric field of /proc/PID/status (KiB for the memory fields).
func procStatusKiB(pid int, field string) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			var n int64
			_, _ = fmt.Sscan(strings.TrimSpace(v), &n)
			return n
		}
	}
	return 0
}

func binSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func procFDs(pid int) int {
	es, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(es)
}
