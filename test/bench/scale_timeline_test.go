package bench

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// timelinePoint is one second of the deploy as the daemon's metrics and /proc show it: what
// its bounds held (runs in flight, runs waiting for a place, looks at repositories running
// and waiting for their Git host's turn, objects being applied), the requests it made, the
// CPU it, the API server, the Git server (with the Git processes it spawned) and the rest
// of the control plane used in that second, the machine's idle cores, and how many runs had
// ended by then. Read side by side, they say which bound the deploy sat against: a full
// apply pool, full run places, the Git host's turns, the machine's cores, or none of them
// (the daemon then waits on something else).
type timelinePoint struct {
	Seconds         float64 `json:"s"`
	RunsInFlight    float64 `json:"runs_in_flight"`
	WaitingForPlace float64 `json:"waiting_for_place"`
	LooksRunning    float64 `json:"looks_running"`
	LooksWaiting    float64 `json:"looks_waiting"`
	AppliesInFlight float64 `json:"applies_in_flight"`
	PatchesPerSec   float64 `json:"patches_per_s"`
	DaemonCPU       float64 `json:"daemon_cpu_percent"`
	APIServerCPU    float64 `json:"apiserver_cpu_percent"`
	GitServerCPU    float64 `json:"gitserver_cpu_percent"`
	ControlPlaneCPU float64 `json:"control_plane_cpu_percent"`
	MachineIdle     float64 `json:"machine_idle_percent"`
	RunsEnded       int     `json:"runs_ended"`
}

// timelinePIDs are the processes a timeline samples: the daemon, the API server, the Git
// server (its spawned Git processes counted with it) and the rest of the control plane.
type timelinePIDs struct {
	daemon, apiServer, gitServer int
	controlPlane                 []int
}

// timelineCPU is one reading of the sampled processes' CPU seconds and the machine's.
type timelineCPU struct {
	daemon, apiServer, gitServer, controlPlane float64
	busy, total                                float64 // the machine's jiffies, all cores
}

func (p timelinePIDs) read() timelineCPU {
	var c timelineCPU
	c.daemon, _ = procCPU(p.daemon)
	c.apiServer, _ = procCPU(p.apiServer)
	c.gitServer, _ = procTreeCPU(p.gitServer)
	for _, pid := range p.controlPlane {
		v, _ := procCPU(pid)
		c.controlPlane += v
	}
	c.busy, c.total = machineCPU()
	return c
}

// timeline samples a daemon's metrics and the processes' CPU every second until stopped.
type timeline struct {
	stop chan struct{}
	done chan []timelinePoint
}

func startTimeline(addr string, pids timelinePIDs) *timeline {
	tl := &timeline{stop: make(chan struct{}), done: make(chan []timelinePoint, 1)}
	go func() {
		var points []timelinePoint
		start := time.Now()
		prevM, _ := fetchMetrics(addr)
		prev := pids.read()
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
			c := pids.read()
			now := time.Now()
			dt := now.Sub(prevT).Seconds()
			percent := func(now, before float64) float64 { return 100 * (now - before) / dt }
			idle := idlePercent(prev.busy, prev.total, c.busy, c.total)
			points = append(points, timelinePoint{
				Seconds:         now.Sub(start).Seconds(),
				RunsInFlight:    m["slipway_runs_in_flight"],
				WaitingForPlace: m["slipway_runs_waiting_for_place"],
				LooksRunning:    m["slipway_looks_running"],
				LooksWaiting:    m["slipway_looks_waiting"],
				AppliesInFlight: m["slipway_applies_in_flight"],
				PatchesPerSec:   diffByVerb(prevM, m)["patch"] / dt,
				DaemonCPU:       percent(c.daemon, prev.daemon),
				APIServerCPU:    percent(c.apiServer, prev.apiServer),
				GitServerCPU:    percent(c.gitServer, prev.gitServer),
				ControlPlaneCPU: percent(c.controlPlane, prev.controlPlane),
				MachineIdle:     idle,
			})
			prevM, prev, prevT = m, c, now
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
// row the mean of its seconds, the runs ended at its last). CPU is in percent of one core;
// idle is the share of all the machine's cores.
func describeTimeline(points []timelinePoint, every int) string {
	var b strings.Builder
	b.WriteString("| s | runs in flight | waiting for a place | looks running | looks waiting | applies in flight | patches/s | daemon CPU % | API server CPU % | Git server CPU % | rest of control plane CPU % | machine idle % | runs ended |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for i := 0; i < len(points); i += every {
		group := points[i:min(i+every, len(points))]
		var sum timelinePoint
		for _, p := range group {
			sum.RunsInFlight += p.RunsInFlight
			sum.WaitingForPlace += p.WaitingForPlace
			sum.LooksRunning += p.LooksRunning
			sum.LooksWaiting += p.LooksWaiting
			sum.AppliesInFlight += p.AppliesInFlight
			sum.PatchesPerSec += p.PatchesPerSec
			sum.DaemonCPU += p.DaemonCPU
			sum.APIServerCPU += p.APIServerCPU
			sum.GitServerCPU += p.GitServerCPU
			sum.ControlPlaneCPU += p.ControlPlaneCPU
			sum.MachineIdle += p.MachineIdle
		}
		n := float64(len(group))
		last := group[len(group)-1]
		fmt.Fprintf(&b, "| %.0f | %.0f | %.0f | %.0f | %.0f | %.1f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %d |\n", last.Seconds,
			sum.RunsInFlight/n, sum.WaitingForPlace/n, sum.LooksRunning/n, sum.LooksWaiting/n, sum.AppliesInFlight/n,
			sum.PatchesPerSec/n, sum.DaemonCPU/n, sum.APIServerCPU/n, sum.GitServerCPU/n, sum.ControlPlaneCPU/n,
			sum.MachineIdle/n, last.RunsEnded)
	}
	return b.String()
}

// meanIdle is the share of the machine's cores left idle over the timeline, in percent.
func meanIdle(points []timelinePoint) float64 {
	if len(points) == 0 {
		return 0
	}
	var sum float64
	for _, p := range points {
		sum += p.MachineIdle
	}
	return sum / float64(len(points))
}
