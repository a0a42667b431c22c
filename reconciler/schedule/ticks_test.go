package schedule

import (
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pipeline"
)

func TestKeyNormalisesWhitespaceAndZone(t *testing.T) {
	for _, c := range []struct {
		s    pipeline.Schedule
		want string
	}{
		{pipeline.Schedule{Cron: " 0  3 * * *"}, "CRON_TZ=UTC 0 3 * * *"},
		{pipeline.Schedule{Cron: "0 3 * * *", Timezone: "UTC"}, "CRON_TZ=UTC 0 3 * * *"},
		{pipeline.Schedule{Cron: "@every 2h", Timezone: "Asia/Shanghai"}, "CRON_TZ=Asia/Shanghai @every 2h"},
	} {
		if got := Key(c.s); got != c.want {
			t.Errorf("Key(%+v) = %q, want %q", c.s, got, c.want)
		}
	}
}

func TestParseRefusesWhatValidationRefuses(t *testing.T) {
	for _, s := range []pipeline.Schedule{
		{Cron: "0 3 * * *", Timezone: "Local"},
		{Cron: "0 3 * * *", Timezone: "Mars/Olympus"},
		{Cron: "CRON_TZ=Asia/Shanghai 0 3 * * *"},
		{Cron: "0 0 3 * * *"}, // six fields: seconds are not accepted
		{Cron: ""},
	} {
		if _, _, err := Parse(s); err == nil {
			t.Errorf("Parse(%+v) accepted", s)
		}
	}
}

// Ticks follow the zone's wall clock across daylight saving changes.
func TestTicksFollowDaylightSaving(t *testing.T) {
	sched, loc, err := Parse(pipeline.Schedule{Cron: "0 9 * * *", Timezone: "Europe/Berlin"})
	if err != nil {
		t.Fatal(err)
	}
	// Berlin leaves summer time on 2026-10-25: 09:00 is 07:00 UTC before, 08:00 UTC after.
	t1 := sched.Next(time.Date(2026, 10, 24, 0, 0, 0, 0, time.UTC))
	t2 := sched.Next(t1)
	if !t1.Equal(time.Date(2026, 10, 24, 7, 0, 0, 0, time.UTC)) || !t2.Equal(time.Date(2026, 10, 25, 8, 0, 0, 0, time.UTC)) {
		t.Fatalf("ticks %v, %v", t1, t2)
	}
	if t2.In(loc).Hour() != 9 {
		t.Fatalf("%v is not 09:00 in Berlin", t2.In(loc))
	}
}

func TestNewestDue(t *testing.T) {
	parse := func(cron string) func(last, now time.Time) time.Time {
		sched, _, err := Parse(pipeline.Schedule{Cron: cron})
		if err != nil {
			t.Fatal(err)
		}
		return func(last, now time.Time) time.Time { return newestDue(sched, last, now) }
	}
	at := func(d, h, m, s int) time.Time { return time.Date(2026, 11, d, h, m, s, 0, time.UTC) }
	minutely := parse("* * * * *")
	for _, c := range []struct {
		name      string
		got, want time.Time
	}{
		{"none due", minutely(at(23, 10, 0, 30), at(23, 10, 0, 59)), time.Time{}},
		{"exactly now", minutely(at(23, 10, 0, 30), at(23, 10, 1, 0)), at(23, 10, 1, 0)},
		{"last itself is not due again", minutely(at(23, 10, 1, 0), at(23, 10, 1, 30)), time.Time{}},
		// A year down: the newest tick, found without walking half a million of them.
		{"a year of minutes", minutely(at(23, 10, 0, 0).AddDate(-1, 0, 0), at(23, 10, 0, 30)), at(23, 10, 0, 0)},
		{"sparse", parse("0 0 29 2 *")(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), at(23, 0, 0, 0)),
			time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)},
		{"dense block long ago", parse("* 0 * * *")(at(20, 0, 0, 0), at(23, 23, 0, 0)), at(23, 0, 59, 0)},
		{"every from its last tick", parse("@every 1m")(at(23, 10, 0, 30), at(23, 13, 0, 50)), at(23, 13, 0, 30)},
		{"every not yet", parse("@every 1m")(at(23, 10, 0, 30), at(23, 10, 1, 29)), time.Time{}},
		{"every sub-second baseline", parse("@every 1m")(at(23, 10, 0, 30).Add(123*time.Millisecond), at(23, 10, 1, 30)), at(23, 10, 1, 30)},
		{"never", parse("0 0 30 2 *")(at(23, 0, 0, 0), at(23, 1, 0, 0)), time.Time{}},
	} {
		if !c.got.Equal(c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
}
