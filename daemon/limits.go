package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/reconciler/apply"
	"github.com/slipwayhq/slipway/reconciler/trigger"
	"github.com/slipwayhq/slipway/store"
)

// inFlightSource is what the run metrics read: the dispatcher.
type inFlightSource interface {
	InFlight() (running, waiting int)
	PeakInFlight() int
	StartRetrying() int
}

// runMetrics exports the bound on runs in flight: how many execute, how many wait for a
// place, and the bound; and the runs waiting to try a start the store could not record,
// which hold no place and are counted nowhere else.
type runMetrics struct {
	src                                   inFlightSource
	max                                   int
	running, waiting, cap, peak, retrying *prometheus.Desc
}

func newRunMetrics(src inFlightSource, max int) *runMetrics {
	return &runMetrics{src: src, max: max,
		running: prometheus.NewDesc("slipway_runs_in_flight", "Runs holding a place now (runs waiting at an approval gate, for health the shared watches report, or for a build slot give their place up).", nil, nil),
		waiting: prometheus.NewDesc("slipway_runs_waiting_for_place", "Runs waiting only for a place because runs.maxInFlight runs are in flight: queued ones, and running ones taking back the place a wait gave up.", nil, nil),
		cap:     prometheus.NewDesc("slipway_runs_max_in_flight", "runs.maxInFlight: the most runs executing at once.", nil, nil),
		peak:    prometheus.NewDesc("slipway_runs_in_flight_peak", "The most runs seen executing at once since the daemon started.", nil, nil),
		retrying: prometheus.NewDesc("slipway_runs_start_retrying",
			"Queued runs whose start the store could not record, waiting to try it again (100 ms doubling to 5 s apart).", nil, nil),
	}
}

func (m *runMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.running
	ch <- m.waiting
	ch <- m.cap
	ch <- m.peak
	ch <- m.retrying
}

func (m *runMetrics) Collect(ch chan<- prometheus.Metric) {
	running, waiting := m.src.InFlight()
	ch <- prometheus.MustNewConstMetric(m.running, prometheus.GaugeValue, float64(running))
	ch <- prometheus.MustNewConstMetric(m.waiting, prometheus.GaugeValue, float64(waiting))
	ch <- prometheus.MustNewConstMetric(m.cap, prometheus.GaugeValue, float64(m.max))
	ch <- prometheus.MustNewConstMetric(m.peak, prometheus.GaugeValue, float64(m.src.PeakInFlight()))
	ch <- prometheus.MustNewConstMetric(m.retrying, prometheus.GaugeValue, float64(m.src.StartRetrying()))
}

// peakSource is a bound that remembers the most it saw held at once.
type peakSource interface{ Peak() int }

// boundMetrics exports another bound than the runs': its value, the most seen at once
// and, when known, how many are held now.
type boundMetrics struct {
	src              peakSource
	inUse            func() int // nil: not exported
	max              int
	cap, peak, using *prometheus.Desc
}

// newApplyMetrics exports runs.maxAppliesInFlight and the objects applied at once.
func newApplyMetrics(s *apply.Slots) *boundMetrics {
	return &boundMetrics{src: s, inUse: s.InUse, max: s.Cap(),
		cap:   prometheus.NewDesc("slipway_applies_max_in_flight", "runs.maxAppliesInFlight: the most objects applied at once across all runs.", nil, nil),
		peak:  prometheus.NewDesc("slipway_applies_in_flight_peak", "The most objects seen applied at once (server-side applies and their dry-runs) since the daemon started.", nil, nil),
		using: prometheus.NewDesc("slipway_applies_in_flight", "Objects being applied now (server-side applies and their dry-runs).", nil, nil),
	}
}

// newBuildMetrics exports runs.maxBuildsInFlight and the image builds and scripts executing
// at once.
func newBuildMetrics(s *reconciler.BuildSlots) *boundMetrics {
	return &boundMetrics{src: s, inUse: s.InUse, max: s.Cap(),
		cap:   prometheus.NewDesc("slipway_builds_max_in_flight", "runs.maxBuildsInFlight: the most image builds and script tasks (executors buildkit and local) executing at once across all runs.", nil, nil),
		peak:  prometheus.NewDesc("slipway_builds_in_flight_peak", "The most image builds and script tasks (executors buildkit and local) seen executing at once since the daemon started.", nil, nil),
		using: prometheus.NewDesc("slipway_builds_in_flight", "Image builds and script tasks (executors buildkit and local) executing now.", nil, nil),
	}
}

// newGitMetrics exports git.maxPerHost and the most Git operations seen at once against one
// host.
func newGitMetrics(src peakSource, max int) *boundMetrics {
	return &boundMetrics{src: src, max: max,
		cap:  prometheus.NewDesc("slipway_git_max_per_host", "git.maxPerHost (or --git-per-host): the most fetches and ref listings at once against one Git host.", nil, nil),
		peak: prometheus.NewDesc("slipway_git_per_host_peak", "The most fetches and ref listings seen at once against one Git host since the daemon started.", nil, nil),
	}
}

// lookMetrics exports the look queue's bound per Git host, the most looks seen running at
// once against one host, the looks running now and those waiting their turn.
type lookMetrics struct {
	*boundMetrics
	queue   *trigger.LookQueue
	waiting *prometheus.Desc
}

func newLookMetrics(q *trigger.LookQueue) *lookMetrics {
	return &lookMetrics{queue: q,
		boundMetrics: &boundMetrics{src: q, inUse: q.Running, max: q.Cap(),
			cap: prometheus.NewDesc("slipway_looks_max_per_host",
				fmt.Sprintf("The most looks at repositories that run at once against one Git host: %d × git.maxPerHost.", lookQueuePerPlace), nil, nil),
			peak:  prometheus.NewDesc("slipway_looks_per_host_peak", "The most looks seen running at once against one Git host since the daemon started.", nil, nil),
			using: prometheus.NewDesc("slipway_looks_running", "Looks at repositories running now, across Git hosts.", nil, nil),
		},
		waiting: prometheus.NewDesc("slipway_looks_waiting", "Looks at repositories waiting for their Git host's turn.", nil, nil),
	}
}

func (m *lookMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.boundMetrics.Describe(ch)
	ch <- m.waiting
}

func (m *lookMetrics) Collect(ch chan<- prometheus.Metric) {
	m.boundMetrics.Collect(ch)
	ch <- prometheus.MustNewConstMetric(m.waiting, prometheus.GaugeValue, float64(m.queue.Waiting()))
}

func (m *boundMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.cap
	ch <- m.peak
	if m.inUse != nil {
		ch <- m.using
	}
}

func (m *boundMetrics) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(m.cap, prometheus.GaugeValue, float64(m.max))
	ch <- prometheus.MustNewConstMetric(m.peak, prometheus.GaugeValue, float64(m.src.Peak()))
	if m.inUse != nil {
		ch <- prometheus.MustNewConstMetric(m.using, prometheus.GaugeValue, float64(m.inUse()))
	}
}

// pruner is what retention needs of the store.
type pruner interface {
	Prune(ctx context.Context, r store.Retention) (store.Pruned, error)
}

// retention deletes old deliveries, pull request events and drift events, as
// slipway.yaml's retention section says: once at start, then every interval.
type retention struct {
	store    pruner
	rules    store.Retention
	interval time.Duration
	deleted  *prometheus.CounterVec
	log      *logrus.Entry
}

func newRetention(st pruner, c config.Retention, reg prometheus.Registerer, log *logrus.Entry) (*retention, error) {
	deleted := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "slipway_retention_deleted_total",
		Help: "Records deleted by retention, by kind (webhook_deliveries, pull_request_events, drift_events).",
	}, []string{"kind"})
	if err := reg.Register(deleted); err != nil {
		return nil, err
	}
	interval := c.Interval.Duration
	if interval <= 0 {
		interval = time.Hour // a Config not read from a file has no defaults applied
	}
	return &retention{store: st, interval: interval, deleted: deleted, log: log, rules: store.Retention{
		Deliveries:        c.WebhookDeliveries.MaxAge.Duration,
		PullRequestEvents: store.RecordLimit{MaxAge: c.PullRequestEvents.MaxAge.Duration, MaxCount: c.PullRequestEvents.MaxCount},
		DriftEvents:       store.RecordLimit{MaxAge: c.DriftEvents.MaxAge.Duration, MaxCount: c.DriftEvents.MaxCount},
		Batch:             c.Batch,
	}}, nil
}

// Run prunes until ctx ends; a failed pass is logged and tried again next interval.
func (r *retention) Run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		r.pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *retention) pass(ctx context.Context) {
	start := time.Now()
	p, err := r.store.Prune(ctx, r.rules)
	r.deleted.WithLabelValues("webhook_deliveries").Add(float64(p.Deliveries))
	r.deleted.WithLabelValues("pull_request_events").Add(float64(p.PullRequestEvents))
	r.deleted.WithLabelValues("drift_events").Add(float64(p.DriftEvents))
	log := r.log.WithFields(logrus.Fields{"webhook_deliveries": p.Deliveries, "pull_request_events": p.PullRequestEvents,
		"drift_events": p.DriftEvents, "took": time.Since(start).Round(time.Millisecond)})
	switch {
	case err != nil && ctx.Err() == nil:
		log.WithError(err).Warn("retention: deleting old records failed; trying again next interval")
	case p != (store.Pruned{}):
		log.Info("retention: old records deleted")
	}
}

// writeStats is what the store metrics read: the store's count of writes and commits.
type writeStats interface {
	WriteStats() (writes, commits uint64)
}

// storeMetrics exports the store's writes: each a transaction a caller waits for, and on
// SQLite the commits they shared (one fsync each).
type storeMetrics struct {
	src             writeStats
	writes, commits *prometheus.Desc
}

func newStoreMetrics(src writeStats) *storeMetrics {
	return &storeMetrics{src: src,
		writes:  prometheus.NewDesc("slipway_store_writes_total", "Store write transactions committed (a run's record, start, task moves, revision, log lines, end...).", nil, nil),
		commits: prometheus.NewDesc("slipway_store_commits_total", "Store commits: on SQLite concurrent writes share one (and its fsync), on PostgreSQL one per write.", nil, nil),
	}
}

func (m *storeMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.writes
	ch <- m.commits
}

func (m *storeMetrics) Collect(ch chan<- prometheus.Metric) {
	writes, commits := m.src.WriteStats()
	ch <- prometheus.MustNewConstMetric(m.writes, prometheus.CounterValue, float64(writes))
	ch <- prometheus.MustNewConstMetric(m.commits, prometheus.CounterValue, float64(commits))
}
