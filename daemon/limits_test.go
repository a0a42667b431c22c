package daemon

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/reconciler/trigger"
	"github.com/slipwayhq/slipway/sources"
	"github.com/slipwayhq/slipway/store"
)

type fakePruner struct {
	got    []store.Retention
	result store.Pruned
	err    error
}

func (f *fakePruner) Prune(_ context.Context, r store.Retention) (store.Pruned, error) {
	f.got = append(f.got, r)
	return f.result, f.err
}

func TestRetentionPassUsesTheConfigAndCounts(t *testing.T) {
	c, err := config.Parse("slipway.yaml", []byte("dataDir: /d\nretention: {batch: 7, driftEvents: {maxCount: 3}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakePruner{result: store.Pruned{Deliveries: 2, PullRequestEvents: 1, DriftEvents: 5}}
	reg := prometheus.NewRegistry()
	r, err := newRetention(f, c.Retention, reg, logrus.NewEntry(logrus.New()))
	if err != nil {
		t.Fatal(err)
	}
	r.pass(context.Background())
	want := store.Retention{Deliveries: 168 * time.Hour,
		PullRequestEvents: store.RecordLimit{MaxAge: 2160 * time.Hour, MaxCount: 10000},
		DriftEvents:       store.RecordLimit{MaxAge: 2160 * time.Hour, MaxCount: 3}, Batch: 7}
	if len(f.got) != 1 || f.got[0] != want {
		t.Fatalf("Prune got %+v, want %+v", f.got, want)
	}
	// A failed pass counts what it did delete and is tried again next time.
	f.err = errors.New("database is locked")
	r.pass(context.Background())
	if got := testutil.ToFloat64(r.deleted.WithLabelValues("drift_events")); got != 10 {
		t.Errorf("drift_events deleted = %v, want 10", got)
	}
	if got := testutil.ToFloat64(r.deleted.WithLabelValues("webhook_deliveries")); got != 4 {
		t.Errorf("webhook_deliveries deleted = %v, want 4", got)
	}
}

type fakeInFlight struct{ running, waiting, peak, retrying int }

func (f fakeInFlight) InFlight() (int, int) { return f.running, f.waiting }
func (f fakeInFlight) PeakInFlight() int    { return f.peak }
func (f fakeInFlight) StartRetrying() int   { return f.retrying }

func TestRunMetrics(t *testing.T) {
	m := newRunMetrics(fakeInFlight{running: 3, waiting: 5, peak: 4, retrying: 2}, 4)
	if n := testutil.CollectAndCount(m); n != 5 {
		t.Fatalf("%d metrics, want 5", n)
	}
	got := gathered(t, m)
	want := map[string]float64{"slipway_runs_in_flight": 3, "slipway_runs_waiting_for_place": 5, "slipway_runs_max_in_flight": 4,
		"slipway_runs_in_flight_peak": 4, "slipway_runs_start_retrying": 2}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

// TestBuildLimitMetrics: runs.maxBuildsInFlight is exported beside the builds and scripts
// executing now and the most seen at once (none yet).
func TestBuildLimitMetrics(t *testing.T) {
	got := gathered(t, newBuildMetrics(reconciler.NewBuildSlots(3)))
	want := map[string]float64{"slipway_builds_max_in_flight": 3, "slipway_builds_in_flight_peak": 0, "slipway_builds_in_flight": 0}
	if len(got) != len(want) {
		t.Fatalf("metrics %v, want %v", got, want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (exported: %v), want %v", k, g, ok, v)
		}
	}
}

// TestLookMetrics: the look queue's bound per host, the most seen running against one
// host, and those running and waiting now.
func TestLookMetrics(t *testing.T) {
	q := trigger.NewLookQueue(2)
	repo := sources.Repo{Name: "app", URL: "https://git.example/team/app.git"}
	release := make(chan struct{})
	defer close(release)
	started := make(chan struct{}, 2)
	for range 3 {
		q.Go(repo, func() { started <- struct{}{}; <-release })
	}
	<-started
	<-started
	got := gathered(t, newLookMetrics(q))
	want := map[string]float64{"slipway_looks_max_per_host": 2, "slipway_looks_per_host_peak": 2,
		"slipway_looks_running": 2, "slipway_looks_waiting": 1}
	if len(got) != len(want) {
		t.Fatalf("metrics %v, want %v", got, want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (exported: %v), want %v", k, g, ok, v)
		}
	}
}

type fakeWriteStats struct{ writes, commits uint64 }

func (f fakeWriteStats) WriteStats() (uint64, uint64) { return f.writes, f.commits }

func TestStoreMetrics(t *testing.T) {
	got := gathered(t, newStoreMetrics(fakeWriteStats{writes: 12, commits: 5}))
	if got["slipway_store_writes_total"] != 12 || got["slipway_store_commits_total"] != 5 {
		t.Fatalf("store metrics %v", got)
	}
}

// gathered is the value of each metric c exports (its first series), gauge or counter.
func gathered(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		got[mf.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
	}
	return got
}
