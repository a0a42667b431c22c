package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/test/testenv"
)

// floodSenders is the hostile load: 200 senders at once, each trickling a 3 MiB
// body under a well-formed but wrong signature, so the daemon must read to reject.
// floodHeaders announce a delivery with a well-formed signature that is wrong.
const floodHeaders = "Content-Type: application/json\r\nX-Slipway-Event: push\r\nX-Slipway-Signature-256: sha256=" +
	"0000000000000000000000000000000000000000000000000000000000000000\r\n"

const (
	floodSenders = 200
	floodRounds  = 3
)

// TestBenchWebhookFlood measures what the flood costs `slipway serve` with the default
// webhook limits: its peak RSS and the /healthz latency while it lasts, each the median of
// floodRounds fresh daemons with the spread. Targets: RSS < 300 MB, /healthz p99 < 200 ms.
func TestBenchWebhookFlood(t *testing.T) {
	env := testenv.Get(t)
	ctx := context.Background()
	tmp := t.TempDir()
	bin := buildSlipwayTo(ctx, t, env, tmp)
	work := filepath.Join(tmp, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "README"), []byte("flood\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, url := pushWork(ctx, t, env, work, "flood")
	var rss, idle []float64 // MiB
	var p99s, refusals []time.Duration
	var refused []int
	for round := range floodRounds {
		dir := filepath.Join(tmp, fmt.Sprintf("round-%d", round))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		for name, v := range map[string]string{"git-user": env.GitUser, "git-password": env.GitPassword, "hook-secret": "flood-secret"} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		listen := testenv.FreeAddress(t)
		cfg := filepath.Join(dir, "slipway.yaml")
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`dataDir: %s/data
listen: %s
repositories:
  - name: flood
    url: %s
    branch: master
    poll: 0s
    auth: {usernameFile: git-user, passwordFile: git-password}
    webhook: {type: generic, secretFile: hook-secret}
`, dir, listen, url)), 0o600); err != nil {
			t.Fatal(err)
		}
		s := startDriftServe(t, bin, cfg, dir)
		server := "http://" + listen
		waitHealthy(t, s, server)
		idle = append(idle, float64(testenv.PeakRSS(t, s.pid()))/(1<<20))
		results, health := testenv.WebhookFlood(t, server, "/hooks/flood", floodHeaders, floodSenders)
		n, slowest := 0, time.Duration(0)
		for _, r := range results {
			if r.Status == http.StatusServiceUnavailable {
				n++
				slowest = max(slowest, r.After)
			}
		}
		rss = append(rss, float64(testenv.PeakRSS(t, s.pid()))/(1<<20))
		p99s = append(p99s, testenv.Percentile(health, 0.99))
		refusals = append(refusals, slowest)
		refused = append(refused, n)
		s.stop()
		t.Logf("round %d: peak RSS %.0f MiB (%.0f MiB before the flood), /healthz p99 %s (%d checks), %d of %d refused at once (slowest %s)",
			round+1, rss[round], idle[round], p99s[round], len(health), n, floodSenders, slowest)
	}
	sort.Float64s(rss)
	sort.Float64s(idle)
	slices.Sort(p99s)
	slices.Sort(refusals)
	var b strings.Builder
	fmt.Fprintf(&b, "\n%d senders, each a slow 3 MiB body with a wrong signature; default limits (16 reads, 10s); median of %d (min–max)\n\n", floodSenders, floodRounds)
	b.WriteString("| measure | median | spread | target |\n| --- | --- | --- | --- |\n")
	fmt.Fprintf(&b, "| daemon peak RSS | %.0f MiB | %.0f–%.0f MiB | < 300 MB |\n", rss[1], rss[0], rss[2])
	fmt.Fprintf(&b, "| its peak RSS before the flood | %.0f MiB | %.0f–%.0f MiB | |\n", idle[1], idle[0], idle[2])
	fmt.Fprintf(&b, "| /healthz p99 during the flood | %s | %s–%s | < 200 ms |\n", p99s[1].Round(100*time.Microsecond), p99s[0].Round(100*time.Microsecond), p99s[2].Round(100*time.Microsecond))
	fmt.Fprintf(&b, "| slowest 503 to a sender beyond the cap | %s | %s–%s | at once |\n", refusals[1].Round(time.Millisecond), refusals[0].Round(time.Millisecond), refusals[2].Round(time.Millisecond))
	fmt.Fprintf(&b, "| senders refused at once | %v | | ≥ %d |\n", refused, floodSenders-16)
	t.Log(b.String())
	if rss[1] >= 300*1e6/(1<<20) {
		t.Errorf("median peak RSS %.0f MiB is over the 300 MB target", rss[1])
	}
	if p99s[1] >= 200*time.Millisecond {
		t.Errorf("median /healthz p99 %s is over the 200 ms target", p99s[1])
	}
}

func waitHealthy(t *testing.T, s *driftServe, server string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(server + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			s.fail("the daemon's /healthz did not answer at %s", server)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
