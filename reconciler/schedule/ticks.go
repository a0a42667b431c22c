package schedule

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/slipwayhq/slipway/pipeline"
)

// cronFields is what pipeline validation accepts: five fields or a descriptor.
const cronFields = cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor

// Key identifies a schedule within its pipeline: the cron expression (whitespace
// normalised, so re-indenting the file changes nothing) with its time zone, in robfig's
// CRON_TZ syntax. It is what the store records ticks under.
func Key(s pipeline.Schedule) string {
	return "CRON_TZ=" + zone(s) + " " + strings.Join(strings.Fields(s.Cron), " ")
}

func zone(s pipeline.Schedule) string {
	if s.Timezone == "" {
		return "UTC"
	}
	return s.Timezone
}

// Parse reads a schedule's expression in its time zone. Validation has normally checked
// both already; the scheduler checks again rather than trusting its caller.
func Parse(s pipeline.Schedule) (cron.Schedule, *time.Location, error) {
	tz := zone(s)
	// "Local" would make the schedule depend on the daemon host's zone.
	if tz == "Local" {
		return nil, nil, fmt.Errorf("schedule %q: time zone Local is not allowed: use an IANA name", s.Cron)
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, nil, fmt.Errorf("schedule %q: time zone: %w", s.Cron, err)
	}
	spec := strings.Join(strings.Fields(s.Cron), " ")
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		return nil, nil, fmt.Errorf("schedule %q: set the time zone with timezone, not in the expression", s.Cron)
	}
	sched, err := cron.NewParser(cronFields).Parse(spec)
	if err != nil {
		return nil, nil, fmt.Errorf("schedule %q: %w", s.Cron, err)
	}
	// The parser defaults to time.Local, which Next reads as "the zone of the time given".
	if spec, ok := sched.(*cron.SpecSchedule); ok {
		spec.Location = loc
	}
	return sched, loc, nil
}

// newestDue returns the newest tick of sched after last and at or before now, or the zero
// time if there is none. It does not walk every tick since last (a year of a per-minute
// schedule would be half a million steps): it looks back from now over a window that
// doubles until it holds a tick, then walks that window only.
func newestDue(sched cron.Schedule, last, now time.Time) time.Time {
	if d, ok := sched.(cron.ConstantDelaySchedule); ok {
		// @every ticks are anchored on the previous tick, not on the wall clock: Next(t) is
		// t, cut to the second, plus the delay.
		base := last.Truncate(time.Second)
		if now.Before(base.Add(d.Delay)) {
			return time.Time{}
		}
		return base.Add(now.Sub(base) / d.Delay * d.Delay)
	}
	first := sched.Next(last)
	if first.IsZero() || first.After(now) {
		return time.Time{}
	}
	for w := time.Minute; ; w *= 2 {
		from := now.Add(-w)
		if !from.After(last) {
			from = last // terminates: Next(last) = first is due
		}
		t := sched.Next(from)
		if t.IsZero() || t.After(now) {
			continue
		}
		for {
			n := sched.Next(t)
			if n.IsZero() || n.After(now) {
				return t
			}
			t = n
		}
	}
}
