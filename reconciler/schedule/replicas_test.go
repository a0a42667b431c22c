package schedule

import (
	"context"
	"testing"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/slipwayhq/slipway/pipeline"
)

func TestTwoSchedulersRacingRunEachTickOnce(t *testing.T) {
	st := openStore(t)
	fc := clocktesting.NewFakeClock(utc(10, 0, 30))
	runs := newFakeRuns()
	every := pipeline.Schedule{Cron: "*/1 * * * *"}
	a := start(t, st, fc, runs, nil)
	set(t, a, map[string][]pipeline.Schedule{"p": {every}})
	a.next(t, "armed", "p")
	// A second process with the same schedule (a replica taking the repository over while
	// the first still runs it): each tick must still start one run.
	b := start(t, st, fc, runs, nil)
	set(t, b, map[string][]pipeline.Schedule{"p": {every}})
	b.next(t, "armed", "p")
	for minute := 1; minute <= 3; minute++ {
		fc.SetTime(utc(10, minute, 1))
		a.next(t, "handled", "p")
		b.next(t, "handled", "p")
		a.next(t, "armed", "p")
		b.next(t, "armed", "p")
		if f := fire(t, runs); !f.Tick.Equal(utc(10, minute, 0)) {
			t.Fatalf("fired %+v", f)
		}
		a.quiet(t, runs)
	}
	if got := lastTick(t, st, "p", every); !got.Equal(utc(10, 3, 0)) {
		t.Fatalf("recorded %v", got)
	}
}

func TestReleaseKeepsTheTicksForTheNextOwner(t *testing.T) {
	st := openStore(t)
	fc := clocktesting.NewFakeClock(utc(10, 0, 30))
	runs := newFakeRuns()
	every := pipeline.Schedule{Cron: "*/1 * * * *"}
	a := start(t, st, fc, runs, nil)
	set(t, a, map[string][]pipeline.Schedule{"p": {every}})
	a.next(t, "armed", "p")
	if err := a.Release(context.Background(), repo); err != nil {
		t.Fatal(err)
	}
	a.next(t, "stopped", "p")
	if got := lastTick(t, st, "p", every); !got.Equal(utc(10, 0, 30)) {
		t.Fatalf("released schedule's record: %v", got)
	}
	// The 10:01 tick comes while nobody owns the repository; the next owner runs it late.
	fc.SetTime(utc(10, 1, 20))
	b := start(t, st, fc, runs, nil)
	set(t, b, map[string][]pipeline.Schedule{"p": {every}})
	if f := fire(t, runs); !f.Tick.Equal(utc(10, 1, 0)) || !f.Missed {
		t.Fatalf("fired %+v", f)
	}
	b.next(t, "armed", "p")
	a.quiet(t, runs)
}
