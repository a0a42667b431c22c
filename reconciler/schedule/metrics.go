package schedule

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipwayhq/slipway/store"
)

// The results and reasons a tick is counted under.
const (
	resultFired   = "fired"
	resultSkipped = "skipped"
	resultFailed  = "failed"

	reasonScheduled = "scheduled" // fired on time
	reasonMissed    = "missed"    // fired late: it came due while the daemon was down
	reasonReplace   = "replace"   // fired after cancelling the active run
	reasonForbid    = "forbid"    // skipped: a run was active and concurrency is forbid
	reasonDeadline  = "deadline"  // skipped: missed by more than startingDeadline
	reasonError     = "error"     // the run could not be started
)

// Metrics are the scheduler's Prometheus metrics, registered on the caller's registry.
type Metrics struct {
	ticks *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		ticks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_schedule_ticks_total",
			Help: "Schedule ticks handled, by repository, pipeline, result (fired, skipped, failed) and reason " +
				"(scheduled, missed, replace; forbid, deadline; error).",
		}, []string{"repository", "pipeline", "result", "reason"}),
	}
	if err := reg.Register(m.ticks); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Metrics) tick(ref store.PipelineRef, result, reason string) {
	if m == nil {
		return
	}
	m.ticks.WithLabelValues(ref.Repository, ref.Name, result, reason).Inc()
}
