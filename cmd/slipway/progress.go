package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/store"
)

// progressBoard reports the runs of one `slipway run`. Of one pipeline it prints a line per
// run and task state change (progressPrinter). Of several it keeps one line per pipeline:
// on a terminal the lines are redrawn in place; elsewhere (CI logs, pipes) each run's
// state changes are printed as lines of their own, tasks left out (a failed run's reason
// names its task), so many pipelines stay readable.
type progressBoard struct {
	w   io.Writer
	tty bool

	mu    sync.Mutex
	many  bool
	order []string          // pipelines, in the file's order
	lines map[string]string // the latest line of each
	drawn int               // lines drawn last on the terminal
}

func newProgressBoard(w io.Writer) *progressBoard {
	f, ok := w.(*os.File)
	return &progressBoard{w: w, tty: ok && term.IsTerminal(int(f.Fd())), lines: map[string]string{}}
}

// setPipelines names the pipelines about to run, before any runs.
func (b *progressBoard) setPipelines(names []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.many = len(names) > 1
	b.order = names
	for _, n := range names {
		b.lines[n] = fmt.Sprintf("%-30s %s", n, "preparing")
	}
	b.drawLocked()
}

func (b *progressBoard) RunEvent(e reconciler.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.many {
		progressPrinter{w: b.w}.RunEvent(e)
		return
	}
	if e.Task != "" {
		if !b.tty {
			return
		}
		// On a terminal the pipeline's line shows the task it is at.
		b.lines[e.Pipeline] = fmt.Sprintf("%-30s #%-5d running: %s/%s %s", e.Pipeline, e.BuildID, e.Stage, e.Task, e.Status)
		b.drawLocked()
		return
	}
	line := fmt.Sprintf("%-30s #%-5d %s", e.Pipeline, e.BuildID, e.Status)
	if e.Reason != "" {
		line += ": " + firstLine(e.Reason)
	}
	if !b.tty {
		fmt.Fprintf(b.w, "%s %s\n", e.Time.Format(time.TimeOnly), line)
		return
	}
	b.lines[e.Pipeline] = line
	b.drawLocked()
}

// drawLocked redraws the pipelines' lines over the last drawing (terminals only).
func (b *progressBoard) drawLocked() {
	if !b.tty || !b.many {
		return
	}
	var s strings.Builder
	if b.drawn > 0 {
		fmt.Fprintf(&s, "\x1b[%dA", b.drawn)
	}
	for _, n := range b.order {
		s.WriteString("\x1b[2K" + b.lines[n] + "\n")
	}
	b.drawn = len(b.order)
	_, _ = io.WriteString(b.w, s.String())
}

// finish leaves the last drawing on the terminal as it is.
func (b *progressBoard) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.drawn = 0
}

// printSummary is the end of a `slipway run` of several pipelines: how their runs ended,
// how long they took together, and how close they came to the bounds they shared.
func printSummary(w io.Writer, byStatus map[store.RunStatus]int, runs int, took time.Duration, b sharedBounds) {
	var parts []string
	for st, n := range byStatus {
		parts = append(parts, fmt.Sprintf("%d %s", n, st))
	}
	sort.Strings(parts)
	fmt.Fprintf(w, "%d pipelines in %s: %s\n", runs, took.Round(100*time.Millisecond), strings.Join(parts, ", "))
	fmt.Fprintf(w, "at most %d runs and %d objects applied at once (runs.maxInFlight %d, runs.maxAppliesInFlight %d)\n",
		b.peakRuns, b.peakApplies, b.maxRuns, b.maxApplies)
	if b.peakBuilds > 0 {
		fmt.Fprintf(w, "at most %d image builds and scripts at once (runs.maxBuildsInFlight %d)\n", b.peakBuilds, b.maxBuilds)
	}
}

// sharedBounds are the bounds the runs of a `slipway run` shared: the most each saw held
// at once, and its value.
type sharedBounds struct {
	peakRuns, maxRuns       int
	peakApplies, maxApplies int
	peakBuilds, maxBuilds   int
}
