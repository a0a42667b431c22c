package bench

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// timelinePoint is one second of the deploy as the daemon's metrics and /proc show it: what
// its bounds held (runs in flight, runs waiting for a place, objects being applied), the
// requests it made and the CPU it and the API server used in that second, and how many runs
// had ended by then. Read side by side, they say which bound the deploy sat against: a full
// apply pool, full run places, or neither (the daemon then waits on something else).
type timelinePoint struct {
	Seconds         float64 `json:"s"`
	RunsInFlight    float64 `json:"runs_in_flight"`
	WaitingForPlace float64 `json:"waiting_for_place"`
	AppliesInFlight float64 `json:"applies_in_flight"`
	PatchesPerSec   float64 `json:"patches_per_s"`
	DaemonCPU       float64 `json:"daemon_cpu_percent"`
	APIServerCPU    float64 `json:"apiserver_cpu_percent"`
	RunsEnded       int     `json:"runs_ended"`
}

// timeline samples a daemon's metrics and CPU and the API server's CPU every second until
// stopped.
type timeline struct {
	stop chan struct{}
	done chan []timelinePoint
}

func startTimeline(addr string, daemonPID, apiPID int) *timeline {
	tl := &timeline{stop: make(chan struct{}), done: make(chan []timelinePoint, 1)}
	go func() {
		var points []timelinePoint
		start := time.Now()
		prevM, _ := fetchMetrics(addr)
		prevD, _ := procCPU(daemonPID)
		prevA, _ := procCPU(apiPID)
		prevT := start
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-tl.stop:
				tl.done <- points
				return
			case <-tick.C:
			}
			m, err := fetchMetrics(addr)
			if err != nil {
				continue // the daemon is busy or gone: a gap in the timeline, not a failure
			}
			d, _ := procCPU(daemonPID)
			a, _ := procCPU(apiPID)
			now := time.Now()
			dt := now.Sub(prevT).Seconds()
			points = append(points, timelinePoint{
				Seconds:         now.Sub(start).Seconds(),
				RunsInFlight:    m["slipway_runs_in_flight"],
				WaitingForPlace: m["slipway_runs_waiting_for_place"],
				AppliesInFlight: m["slipway_applies_in_flight"],
				PatchesPerSec:   diffByVerb(prevM, m)["patch"] / dt,
				DaemonCPU:       100 * (d - prevD) / dt,
				APIServerCPU:    100 * (a - prevA) / dt,
			})
			prevM, prevD, prevA, prevT = m, d, a, now
		}
	}()
	return tl
}

// end stops the sampling and stamps each point with the runs ended by then (ends measured
// from the same start).
func (tl *timeline) end(ends []time.Duration) []timelinePoint {
	close(tl.stop)
	points := <-tl.done
	sorted := append([]time.Duration(nil), ends...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	for i := range points {
		at := time.Duration(points[i].Seconds * float64(time.Second))
		points[i].RunsEnded = sort.Search(len(sorted), func(k int) bool { return sorted[k] > at })
	}
	return points
}

// describeTimeline is a markdown table of the timeline, one row per `every` seconds (each
// row the mean of its seconds, the runs ended at its last).
func describeTimeline(points []timelinePoint, every int) string {
	var b strings.Builder
	b.WriteString("| s | runs in flight | waiting for a place | applies in flight | patches/s | daemon CPU % | API server CPU % | runs ended |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for i := 0; i < len(points); i += every {
		group := points[i:min(i+every, len(points))]
		var sum timelinePoint
		for _, p := range group {
			sum.RunsInFlight += p.RunsInFlight
			sum.WaitingForPlace += p.WaitingForPlace
			sum.AppliesInFlight += p.AppliesInFlight
			sum.PatchesPerSec += p.PatchesPerSec
			sum.DaemonCPU += p.DaemonCPU
			sum.APIServerCPU += p.APIServerCPU
		}
		n := float64(len(group))
		last := group[len(group)-1]
		fmt.Fprintf(&b, "| %.0f | %.0f | %.0f | %.1f | %.0f | %.0f | %.0f | %d |\n", last.Seconds,
			sum.RunsInFlight/n, sum.WaitingForPlace/n, sum.AppliesInFlight/n, sum.PatchesPerSec/n,
			sum.DaemonCPU/n, sum.APIServerCPU/n, last.RunsEnded)
	}
	return b.String()
}
