package bench

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/test/testenv"
)

// failoverKill is one SIGKILL of a replica and when its repositories were looked at again.
type failoverKill struct {
	Replica      string  `json:"replica"`
	Repositories int     `json:"repositories"`
	OwnedMaxMs   float64 `json:"owned_max_ms"`     // kill → the last moved repository's "watching" line
	PolledMaxMs  float64 `json:"polled_max_ms"`    // kill → the last moved repository's first look
	PolledMinMs  float64 `json:"polled_min_ms"`    // kill → the first moved repository's first look
	RejoinMs     float64 `json:"rejoin_settle_ms"` // restart → every repository owned once again
	Missing      int     `json:"missing"`          // moved repositories never looked at within a minute
}

type failoverReport struct {
	Replicas       int            `json:"replicas"`
	Repositories   int            `json:"repositories"`
	LeaseDuration  string         `json:"lease_duration"`
	RenewDeadline  string         `json:"renew_deadline"`
	RetryPeriod    string         `json:"retry_period"`
	Seed           uint64         `json:"seed"`
	Kills          []failoverKill `json:"kills"`
	PerKillSeconds stats          `json:"per_kill_seconds"` // kill → all its repositories polled
	PerRepoSeconds stats          `json:"per_repo_seconds"` // kill → each moved repository polled
	LoadAvgBefore  string         `json:"load_avg_before"`
	LoadAvgAfter   string         `json:"load_avg_after"`
}

// stats are a sample's nearest-rank percentiles.
type stats struct {
	N   int     `json:"n"`
	Min float64 `json:"min"`
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	Max float64 `json:"max"`
}

func statsOf(ds []time.Duration) stats {
	if len(ds) == 0 {
		return stats{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	sec := func(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }
	return stats{N: len(s), Min: sec(s[0]), P50: sec(percentile(s, 50)), P95: sec(percentile(s, 95)), Max: sec(s[len(s)-1])}
}

func (s stats) row(what string) string {
	return fmt.Sprintf("| %s | %d | %.2f | %.2f | %.2f | %.2f |", what, s.N, s.Min, s.P50, s.P95, s.Max)
}

// envCount reads a positive count from the environment, else def.
func envCount(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// TestBenchFailover (`make bench-failover`): three replicas share 30 repositories; one,
// chosen at random, is SIGKILLed FAILOVER_KILLS times (20), each time at a random point of
// its Lease renewal round. For each kill: from the signal to the first look of each of its
// repositories by the replica that took it over (the "replica: first look at the
// repository" log line, docs/operations.md), then the killed replica is started again and
// the repositories settle before the next kill. Default ha timings: a dead replica's
// Leases expire leaseDuration after its last renewal, which came up to a retryPeriod
// before the kill, and a live replica notices on its next round.
func TestBenchFailover(t *testing.T) {
	env := testenv.Get(t)
	bin := buildSlipwayBinary(t, env)
	kills := envCount(t, "FAILOVER_KILLS", 20)
	const nRepos = 30
	repos := newHARepos(t, env, t.TempDir(), "fo", nRepos, func(int) map[string]string {
		return map[string]string{".pipeline.yaml": scriptPipeline("app", "'true'", "")}
	})
	ids := []string{"replica-a", "replica-b", "replica-c"}
	h := newHABench(t, env, bin, repos, haOptions{replicas: ids, poll: "10s", timing: haDefaults})
	for _, id := range ids {
		h.start(id)
	}
	names := repoNames(repos)
	owners := h.settle(names, 2*time.Minute)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	rep := failoverReport{Replicas: len(ids), Repositories: nRepos, LeaseDuration: haDefaults.lease.String(),
		RenewDeadline: haDefaults.renew.String(), RetryPeriod: haDefaults.retry.String(), Seed: seed, LoadAvgBefore: loadAverage()}
	var perKill, perRepo []time.Duration
	for k := range kills {
		victim := ids[rng.IntN(len(ids))]
		var mine []string
		for repo, o := range owners {
			if o[0] == victim {
				mine = append(mine, repo)
			}
		}
		// A random point of the victim's renewal round.
		time.Sleep(time.Duration(rng.Int64N(int64(haDefaults.retry))))
		at := h.kill(victim)
		polled := h.firstLooks(mine, at, victim, time.Minute)
		owned := h.logged(ownedRepo, mine, at, victim)
		fk := failoverKill{Replica: victim, Repositories: len(mine), Missing: len(mine) - len(polled)}
		var last, first, lastOwned time.Duration
		for _, repo := range mine {
			if p, ok := polled[repo]; ok {
				d := p.Sub(at)
				perRepo = append(perRepo, d)
				last = max(last, d)
				if first == 0 || d < first {
					first = d
				}
			}
			if o, ok := owned[repo]; ok {
				lastOwned = max(lastOwned, o.Sub(at))
			}
		}
		if fk.Missing > 0 {
			t.Errorf("kill %d of %s: %d of its %d repositories not looked at within a minute", k+1, victim, fk.Missing, len(mine))
		} else {
			perKill = append(perKill, last)
		}
		fk.PolledMaxMs, fk.PolledMinMs, fk.OwnedMaxMs = ms(last), ms(first), ms(lastOwned)
		restarted := time.Now()
		h.start(victim)
		owners = h.settle(names, 2*time.Minute)
		fk.RejoinMs = ms(time.Since(restarted))
		rep.Kills = append(rep.Kills, fk)
		t.Logf("kill %2d: %s (%d repositories): all looked at %.2fs after the kill (first %.2fs, last taken %.2fs); rejoined in %.1fs; load %s",
			k+1, victim, len(mine), last.Seconds(), first.Seconds(), lastOwned.Seconds(), fk.RejoinMs/1000, loadAverage())
	}
	rep.PerKillSeconds, rep.PerRepoSeconds, rep.LoadAvgAfter = statsOf(perKill), statsOf(perRepo), loadAverage()
	t.Logf("\nFailover: %d SIGKILLs of one of %d replicas sharing %d repositories (%s; poll 10s; seed %d); load average %s before, %s after. "+
		"From the kill to the new owner's first look (log line `replica: first look at the repository`):\n\n"+
		"| measured | n | min s | p50 s | p95 s | max s |\n| --- | --- | --- | --- | --- | --- |\n%s\n%s\n",
		kills, len(ids), nRepos, haDefaults, seed, rep.LoadAvgBefore, rep.LoadAvgAfter,
		rep.PerKillSeconds.row("all of a killed replica's repositories"), rep.PerRepoSeconds.row("each moved repository"))
	writeReport(t, env, "failover.json", rep)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
