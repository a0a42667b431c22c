package e2e

import (
	"io"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/test/testenv"
)

// slipway.yaml's memoryLimit is the Go runtime's soft memory limit in the running daemon
// (its default when unset), read back from the runtime's own gauge on /metrics; a
// GOMEMLIMIT in the environment wins over it.
func TestServeMemoryLimit(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "") // the default's case: whatever the shell running the tests has
	env := testenv.Get(t)
	_, _, cfg := newProject(t, env)
	limitOf := func(what string) float64 {
		t.Helper()
		return runtimeGauge(t, cfg, "go_gc_gomemlimit_bytes", what)
	}
	if got := limitOf("default"); got != 256<<20 {
		t.Errorf("memoryLimit unset: the runtime's limit is %.0f, want the default 256Mi (%d)", got, 256<<20)
	}
	appendConfig(t, cfg, "memoryLimit: 96Mi\n")
	if got := limitOf("memoryLimit: 96Mi"); got != 96<<20 {
		t.Errorf("memoryLimit: 96Mi: the runtime's limit is %.0f, want %d", got, 96<<20)
	}
	t.Setenv("GOMEMLIMIT", "200MiB")
	if got := limitOf("GOMEMLIMIT=200MiB"); got != 200<<20 {
		t.Errorf("GOMEMLIMIT=200MiB beside memoryLimit: 96Mi: the runtime's limit is %.0f, want the environment's %d", got, 200<<20)
	}
	t.Setenv("GOMEMLIMIT", "off")
	if got := limitOf("GOMEMLIMIT=off"); got != math.MaxInt64 {
		t.Errorf("GOMEMLIMIT=off beside memoryLimit: 96Mi: the runtime's limit is %.0f, want none (%d)", got, int64(math.MaxInt64))
	}
}

// slipway.yaml's gcPercent is the collector's target in the running daemon (its default
// when unset), read back from the runtime's own gauge on /metrics; a GOGC in the
// environment wins over it.
func TestServeGCPercent(t *testing.T) {
	t.Setenv("GOGC", "") // the default's case: whatever the shell running the tests has
	env := testenv.Get(t)
	_, _, cfg := newProject(t, env)
	// The daemon sets the target before it registers the collector, so the gauge's first
	// answer is the one in force.
	percentOf := func(what string) float64 {
		t.Helper()
		return runtimeGauge(t, cfg, "go_gc_gogc_percent", what)
	}
	if got := percentOf("default"); got != 35 {
		t.Errorf("gcPercent unset: the collector's target is %.0f, want the default 35", got)
	}
	appendConfig(t, cfg, "gcPercent: 80\n")
	if got := percentOf("gcPercent: 80"); got != 80 {
		t.Errorf("gcPercent: 80: the collector's target is %.0f, want 80", got)
	}
	t.Setenv("GOGC", "120")
	if got := percentOf("GOGC=120"); got != 120 {
		t.Errorf("GOGC=120 beside gcPercent: 80: the collector's target is %.0f, want the environment's 120", got)
	}
}

// runtimeGauge starts `slipway serve` with cfg and returns the Go runtime's gauge named
// metric from its /metrics (what names the configuration in messages).
func runtimeGauge(t *testing.T, cfg, metric, what string) float64 {
	t.Helper()
	addr := testenv.FreeAddress(t)
	d := startServe(t, cfg, "--metrics-address", addr)
	defer d.stop(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if v, ok := metricsUp(addr)[metric]; ok {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s on /metrics within 30 s:\n%s", what, metric, d.output())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// metricsUp is metricsOf for a daemon that may not listen yet: nil until it answers.
func metricsUp(addr string) map[string]float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil
	}
	return parseMetrics(string(b))
}
