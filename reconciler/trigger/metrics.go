package trigger

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/store"
)

// Metrics count what starts runs and what is turned away. A nil *Metrics counts nothing.
type Metrics struct {
	received   *prometheus.CounterVec
	rejected   *prometheus.CounterVec
	duplicates *prometheus.CounterVec
	superseded *prometheus.CounterVec
	skipped    *prometheus.CounterVec
	polls      *prometheus.CounterVec
}

// NewMetrics creates the trigger metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_triggers_received_total",
			Help: "Triggers received, by repository and source (webhook, poll, cron, manual).",
		}, []string{"repository", "source"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_triggers_rejected_total",
			Help: "Triggers refused, by repository and reason (missing_signature, bad_signature, too_large, bad_payload, unknown_commit, ...).",
		}, []string{"repository", "reason"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_triggers_deduplicated_total",
			Help: "Webhook redeliveries recognised by their delivery id and ignored, by repository.",
		}, []string{"repository"}),
		superseded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_runs_superseded_total",
			Help: "Runs recorded superseded because a newer commit replaced them, by repository and pipeline.",
		}, []string{"repository", "pipeline"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_triggers_skipped_total",
			Help: "New commits that started nothing on purpose, by repository and reason (skip_ci, no_match).",
		}, []string{"repository", "reason"}),
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_git_polls_total",
			Help: "Looks at a tracked branch, by repository and result (unchanged, changed, error).",
		}, []string{"repository", "result"}),
	}
	for _, c := range []prometheus.Collector{m.received, m.rejected, m.duplicates, m.superseded, m.skipped, m.polls} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Received counts a trigger from source for repository.
func (m *Metrics) Received(repository, source string) {
	if m != nil {
		m.received.WithLabelValues(repository, source).Inc()
	}
}

// Rejected counts a refused trigger.
func (m *Metrics) Rejected(repository, reason string) {
	if m != nil {
		m.rejected.WithLabelValues(repository, reason).Inc()
	}
}

// Duplicate counts an ignored redelivery.
func (m *Metrics) Duplicate(repository string) {
	if m != nil {
		m.duplicates.WithLabelValues(repository).Inc()
	}
}

func (m *Metrics) skip(repository, reason string) {
	if m != nil {
		m.skipped.WithLabelValues(repository, reason).Inc()
	}
}

func (m *Metrics) poll(repository, result string) {
	if m != nil {
		m.polls.WithLabelValues(repository, result).Inc()
	}
}

// RunEvent counts runs that end superseded, whoever superseded them (the dispatcher's
// queue or a watcher's coalescing), so it sits on the runner's observers.
func (m *Metrics) RunEvent(e reconciler.Event) {
	if m != nil && e.Task == "" && e.Status == string(store.RunSuperseded) {
		m.superseded.WithLabelValues(e.Repository, e.Pipeline).Inc()
	}
}
