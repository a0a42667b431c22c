package daemon

import (
	"github.com/prometheus/client_golang/prometheus"
)

// inFlightSource is what the run metrics read: the dispatcher.
type inFlightSource interface {
	InFlight() (running, waiting int)
}

// runMetrics exports the bound on runs in flight: how many execute, how many wait for a
// place, and the bound.
type runMetrics struct {
	src                   inFlightSource
	max                   int
	running, waiting, cap *prometheus.Desc
}

func newRunMetrics(src inFlightSource, max int) *runMetrics {
	return &runMetrics{src: src, max: max,
		running: prometheus.NewDesc("slipway_runs_in_flight", "Runs executing now (runs waiting at an approval gate give their place up).", nil, nil),
		waiting: prometheus.NewDesc("slipway_runs_waiting_for_place", "Queued runs waiting only because runs.maxInFlight runs are in flight.", nil, nil),
		cap:     prometheus.NewDesc("slipway_runs_max_in_flight", "runs.maxInFlight: the most runs executing at once.", nil, nil),
	}
}

func (m *runMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.running
	ch <- m.waiting
	ch <- m.cap
}

func (m *runMetrics) Collect(ch chan<- prometheus.Metric) {
	running, waiting := m.src.InFlight()
	ch <- prometheus.MustNewConstMetric(m.running, prometheus.GaugeValue, float64(running))
	ch <- prometheus.MustNewConstMetric(m.waiting, prometheus.GaugeValue, float64(waiting))
	ch <- prometheus.MustNewConstMetric(m.cap, prometheus.GaugeValue, float64(m.max))
}
