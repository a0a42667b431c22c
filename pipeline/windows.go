package pipeline

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// WindowState is whether deploys to an environment may happen at a moment, and if not, why
// and when to look again.
type WindowState struct {
	Open bool
	// Why names the window that keeps it closed; empty when open.
	Why string
	// Recheck is the next moment the answer may change, when closed.
	Recheck time.Time
}

// WindowAt says whether environment e's windows let a deploy happen at t. With no windows it
// is always open. Windows are read in their time zones; validation has checked them.
func (e *Environment) WindowAt(t time.Time) WindowState {
	var allows int
	var allowOpen bool
	var nextAllow time.Time
	for _, w := range e.Windows {
		sched, loc, err := w.schedule()
		if err != nil {
			return WindowState{Why: err.Error(), Recheck: t.Add(time.Minute)}
		}
		lt := t.In(loc)
		if w.Kind == WindowDeny {
			if end, open := openUntil(sched, w.Duration.Duration, lt); open {
				return WindowState{Why: fmt.Sprintf("deny window %q (%s, %s) is open until %s", w.Cron, w.Duration, w.zone(), end.Format(time.RFC3339)), Recheck: end}
			}
			continue
		}
		allows++
		if _, open := openUntil(sched, w.Duration.Duration, lt); open {
			allowOpen = true
			continue
		}
		if n := sched.Next(lt); nextAllow.IsZero() || n.Before(nextAllow) {
			nextAllow = n
		}
	}
	if allows > 0 && !allowOpen {
		return WindowState{Why: fmt.Sprintf("no allow window is open; the next opens at %s", nextAllow.Format(time.RFC3339)), Recheck: nextAllow}
	}
	return WindowState{Open: true}
}

// openUntil reports whether a window opening on sched for d is open at t, and until when.
func openUntil(sched cron.Schedule, d time.Duration, t time.Time) (time.Time, bool) {
	var last time.Time
	// Every opening in (t-d, t]; the last one decides when the window closes.
	for s := sched.Next(t.Add(-d)); !s.After(t); s = sched.Next(s) {
		last = s
	}
	if last.IsZero() {
		return time.Time{}, false
	}
	return last.Add(d), true
}

func (w Window) schedule() (cron.Schedule, *time.Location, error) {
	loc, err := time.LoadLocation(w.zone())
	if err != nil {
		return nil, nil, fmt.Errorf("window %q: time zone %q: %w", w.Cron, w.zone(), err)
	}
	sched, err := cronParser.Parse(strings.TrimSpace(w.Cron))
	if err != nil {
		return nil, nil, fmt.Errorf("window %q: %w", w.Cron, err)
	}
	return sched, loc, nil
}

func (w Window) zone() string {
	if w.Timezone == "" {
		return "UTC"
	}
	return w.Timezone
}
