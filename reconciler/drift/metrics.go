package drift

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the drift watcher's Prometheus metrics, registered on the caller's registry.
type Metrics struct {
	objects *prometheus.GaugeVec
	events  *prometheus.CounterVec
	swept   *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		objects: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "slipway_drift_objects",
			Help: "Objects of current revisions that differ from what Slipway applied, by repository and pipeline.",
		}, []string{"repository", "pipeline"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_drift_events_total",
			Help: "Drift events recorded, by repository, pipeline and action (reported, corrected, correction-failed).",
		}, []string{"repository", "pipeline", "action"}),
		swept: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_drift_sweep_objects_total",
			Help: "Objects the drift sweeps went over, by sweep (partial, full) and result (checked; unchanged: the watch cache showed no write since the object was last found matching).",
		}, []string{"sweep", "result"}),
	}
	for _, c := range []prometheus.Collector{m.objects, m.events, m.swept} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
