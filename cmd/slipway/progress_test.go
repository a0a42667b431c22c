package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/store"
)

// The summary of a `slipway run` of several pipelines names the build bound only when its
// runs built or ran scripts.
func TestRunSummaryShowsTheBuildLimitWhenUsed(t *testing.T) {
	var out bytes.Buffer
	b := sharedBounds{peakRuns: 2, maxRuns: 4, peakApplies: 3, maxApplies: 64, peakBuilds: 2, maxBuilds: 2}
	printSummary(&out, map[store.RunStatus]int{store.RunSucceeded: 3}, 3, time.Second, b)
	if !strings.Contains(out.String(), "at most 2 runs and 3 objects applied at once (runs.maxInFlight 4, runs.maxAppliesInFlight 64)\n") ||
		!strings.Contains(out.String(), "at most 2 image builds and scripts at once (runs.maxBuildsInFlight 2)\n") {
		t.Fatalf("summary:\n%s", out.String())
	}
	out.Reset()
	b.peakBuilds = 0
	printSummary(&out, map[store.RunStatus]int{store.RunSucceeded: 3}, 3, time.Second, b)
	if strings.Contains(out.String(), "maxBuildsInFlight") {
		t.Fatalf("a summary of runs that built nothing names the build bound:\n%s", out.String())
	}
}
