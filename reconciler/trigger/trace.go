package trigger

import (
	"time"

	"github.com/sirupsen/logrus"
)

// lookTrace times the phases of one look at a branch, so the log line of each run it starts
// says where the push's time went: waiting for the look, listing refs, fetching, reading the
// pipeline file, matching path filters and recording the run. The benchmark reads it.
type lookTrace struct {
	hinted time.Time // the earliest webhook the look answers; zero for a poll
	start  time.Time // the look's start
	last   time.Time // the end of the phase timed last
	phases []tracePhase
}

type tracePhase struct {
	name string
	d    time.Duration
}

// newLookTrace starts timing a look that answers hints.
func newLookTrace(hints []Hint) *lookTrace {
	now := time.Now()
	t := &lookTrace{start: now, last: now}
	for _, h := range hints {
		if !h.Received.IsZero() && (t.hinted.IsZero() || h.Received.Before(t.hinted)) {
			t.hinted = h.Received
		}
	}
	if !t.hinted.IsZero() {
		t.phases = append(t.phases, tracePhase{"wait", t.last.Sub(t.hinted)})
	}
	return t
}

// mark ends the phase name, begun where the last one ended.
func (t *lookTrace) mark(name string) {
	now := time.Now()
	t.phases = append(t.phases, tracePhase{name, now.Sub(t.last)})
	t.last = now
}

// with is t plus the phase name that began at start (one pipeline's own phase, which the
// look's other pipelines do not share).
func (t *lookTrace) with(name string, start time.Time) *lookTrace {
	c := &lookTrace{hinted: t.hinted, start: t.start, last: time.Now()}
	c.phases = append(append(c.phases, t.phases...), tracePhase{name, c.last.Sub(start)})
	return c
}

// fields are the phases in milliseconds, as trace_<phase>_ms, the total since the webhook
// arrived (or the poll's look began), and when the webhook arrived.
func (t *lookTrace) fields() logrus.Fields {
	from := t.start
	f := logrus.Fields{}
	if !t.hinted.IsZero() {
		from = t.hinted
		f["trace_hinted"] = t.hinted.UTC().Format(time.RFC3339Nano)
	}
	f["trace_total_ms"] = ms(t.last.Sub(from))
	for _, p := range t.phases {
		f["trace_"+p.name+"_ms"] = ms(p.d)
	}
	return f
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
