package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/reconciler/apply"
	"github.com/slipwayhq/slipway/test/testenv"
)

// throughputRow is one contender of TestBenchReplicaThroughput.
type throughputRow struct {
	Replicas        int     `json:"replicas"`
	Repositories    int     `json:"repositories"`
	PushSeconds     float64 `json:"push_seconds"`     // the pushes, 8 at a time, before the measured window
	HooksSeconds    float64 `json:"webhooks_seconds"` // delivering every webhook, 16 at a time
	AllDoneSeconds  float64 `json:"all_done_seconds"` // first webhook → every run succeeded
	RunsPerMinute   float64 `json:"runs_per_minute"`  // repositories / AllDoneSeconds
	ReplicaCPU      float64 `json:"replica_cpu_seconds"`
	MachineBusyPct  float64 `json:"machine_busy_percent"` // of all cores, over AllDoneSeconds
	LoadAvgAfter    string  `json:"load_avg_after"`
	MaxInFlightEach int     `json:"max_in_flight_each"`
}

type throughputReport struct {
	Cores int             `json:"cores"`
	Rows  []throughputRow `json:"rows"`
	Ratio float64         `json:"ratio_3_vs_1"`
}

// machineCPU is /proc/stat's busy and total jiffies over all cores; zero when it cannot be
// read. The guest columns are left out (user and nice already hold them); steal counts as
// busy: the cores were not this machine's to use.
func machineCPU() (busy, total float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line := strings.SplitN(string(b), "\n", 2)[0]
	f := strings.Fields(line)
	for i, v := range f[1:min(len(f), 9)] { // user nice system idle iowait irq softirq steal
		n, _ := strconv.ParseFloat(v, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

// idlePercent is the machine's idle share between two machineCPU readings; 0 when no time
// passed between them.
func idlePercent(busy0, total0, busy1, total1 float64) float64 {
	total := total1 - total0
	if total <= 0 {
		return 0
	}
	return 100 * (total - (busy1 - busy0)) / total
}

// TestBenchReplicaThroughput (`make bench-replicas`): REPLICA_REPOS (300) repositories, each
// a pipeline deploying one ConfigMap, pushed once each before the clock starts, then every
// generic webhook sent at once (16 at a time, round robin over the replicas as a Service
// would spread them): from the first webhook until every run succeeded, with 1 replica and with 3 (both `ha:` on the environment's
// PostgreSQL, the default runs.maxInFlight each). The replicas, the control
// plane, PostgreSQL and the Git server share this machine's cores: the ratio is capped by
// them, which the machine-busy column shows.
func TestBenchReplicaThroughput(t *testing.T) {
	env := testenv.Get(t)
	bin := buildSlipwayBinary(t, env)
	n := envCount(t, "REPLICA_REPOS", 300)
	unique := testenv.UniqueName(t)
	namespaces := makeNamespaces(t, env.Clientset(t), "bench-rt-"+unique[len(unique)-6:])
	readme := func(int) map[string]string { return map[string]string{"README.md": "throughput\n"} }
	repos := newHARepos(t, env, t.TempDir(), "rt", n, readme)
	names := repoNames(repos)
	rep := throughputReport{Cores: runtime.NumCPU()}
	for _, replicas := range []int{1, 3} {
		t.Run(fmt.Sprintf("replicas-%d", replicas), func(t *testing.T) {
			// Each contender starts from a head without a pipeline (its store is fresh, and a
			// fresh store's first look runs the head), then the measured push adds one.
			if replicas > 1 {
				if _, err := pushEach(repos, 8, func(int) (map[string]string, []string) {
					return nil, []string{".pipeline.yaml", "cm.yaml"}
				}, "reset", nil); err != nil {
					t.Fatal(err)
				}
			}
			ids := []string{"replica-a", "replica-b", "replica-c"}[:replicas]
			h := newHABench(t, env, bin, repos, haOptions{replicas: ids, poll: "0s", webhook: true, timing: haDefaults})
			startAt := time.Now()
			for _, id := range ids {
				h.start(id)
			}
			h.settle(names, 3*time.Minute)
			if got := h.firstLooks(names, startAt, "", 5*time.Minute); len(got) != n {
				h.fail("%d of %d repositories looked at within 5 minutes of the start", len(got), n)
			}
			// The commits are pushed first, unseen (no polling, no webhook yet), so the
			// measured window is Slipway's work, not the Git server's pushes: then every
			// repository's webhook goes out at once, 16 at a time, spread over the replicas
			// as a Service would.
			p0 := time.Now()
			heads, err := pushEach(repos, 8, func(i int) (map[string]string, []string) {
				ns := namespaces[i%len(namespaces)]
				return map[string]string{
					".pipeline.yaml": "name: app\nstages:\n- name: deploy\n  tasks:\n  - name: cm\n    type: deploy-yaml\n    path: cm.yaml\n    cluster: bench\n    namespace: " + ns + "\n",
					"cm.yaml":        soakConfigMap(repos[i].name, "one"),
				}, nil
			}, "deploy", nil)
			if err != nil {
				t.Fatal(err)
			}
			pushed := time.Since(p0)
			cpu0 := 0.0
			for _, p := range h.live() {
				c, _ := procCPU(p.cmd.Process.Pid)
				cpu0 += c
			}
			busy0, total0 := machineCPU()
			t0 := time.Now()
			live := h.live()
			if err := apply.ForEach(context.Background(), n, 16, func(ctx context.Context, i int) error {
				return deliverPush(ctx, live[i%len(live)].addr, h.hook, repos[i].name, heads[i])
			}); err != nil {
				t.Fatal(err)
			}
			delivered := time.Since(t0)
			deadline := time.Now().Add(20 * time.Minute)
			for {
				done := 0
				for _, r := range h.runs() {
					if r.Status == "succeeded" {
						done++
					}
				}
				if done >= n {
					break
				}
				if time.Now().After(deadline) {
					h.fail("%d of %d runs succeeded within 20 minutes", done, n)
				}
				time.Sleep(time.Second)
			}
			wall := time.Since(t0)
			busy1, total1 := machineCPU()
			cpu1 := 0.0
			for _, p := range h.live() {
				c, _ := procCPU(p.cmd.Process.Pid)
				cpu1 += c
			}
			row := throughputRow{Replicas: replicas, Repositories: n, PushSeconds: pushed.Seconds(), HooksSeconds: delivered.Seconds(), AllDoneSeconds: wall.Seconds(),
				RunsPerMinute: float64(n) / wall.Minutes(), ReplicaCPU: cpu1 - cpu0, LoadAvgAfter: loadAverage(),
				MaxInFlightEach: config.DefaultMaxInFlight()}
			if total1 > total0 {
				row.MachineBusyPct = 100 * (busy1 - busy0) / (total1 - total0)
			}
			rep.Rows = append(rep.Rows, row)
			t.Logf("%d replica(s): %d runs in %.1fs (%.0f/min), webhooks %.1fs (pushes before, unmeasured, %.1fs), replicas' CPU %.1fs, machine %.0f%% busy, load %s",
				replicas, n, wall.Seconds(), row.RunsPerMinute, delivered.Seconds(), pushed.Seconds(), row.ReplicaCPU, row.MachineBusyPct, row.LoadAvgAfter)
		})
	}
	if len(rep.Rows) != 2 {
		t.Fatalf("a contender failed")
	}
	rep.Ratio = rep.Rows[1].RunsPerMinute / rep.Rows[0].RunsPerMinute
	var b strings.Builder
	fmt.Fprintf(&b, "\nRun throughput, one push to each of %d repositories (one ConfigMap each), on %d cores shared with the control plane, PostgreSQL and Git (%s):\n\n", n, rep.Cores, haDefaults)
	b.WriteString("| replicas | webhooks s | all runs done s | runs/min | replicas' CPU s | machine busy % | load after |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range rep.Rows {
		fmt.Fprintf(&b, "| %d | %.1f | %.1f | %.0f | %.1f | %.0f | %s |\n", r.Replicas, r.HooksSeconds, r.AllDoneSeconds, r.RunsPerMinute, r.ReplicaCPU, r.MachineBusyPct, r.LoadAvgAfter)
	}
	fmt.Fprintf(&b, "\n3 replicas vs 1: %.2f× (the issue's target of 2.5× is for a machine with cores for three replicas; here the machine's busy share says how saturated it was)\n", rep.Ratio)
	t.Log(b.String())
	writeReport(t, env, "replicas-throughput.json", rep)
}
