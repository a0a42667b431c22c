package store

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestScheduleTicksRoundTrip(t *testing.T) {
	s, path := openTest(t)
	ctx := testCtx(t)
	const daily = "CRON_TZ=Asia/Shanghai 0 3 * * *"

	// Nothing recorded, not even the pipeline: no tick and no error.
	if tick, ok, err := s.LastScheduleTick(ctx, testPipeline, daily); err != nil || ok || !tick.IsZero() {
		t.Fatalf("unrecorded schedule: %v %v %v", tick, ok, err)
	}

	// The first tick records the pipeline too; times keep microseconds and come back in UTC.
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	tick := time.Date(2026, 11, 23, 3, 0, 0, 123456789, shanghai)
	if err := s.SetScheduleTick(ctx, testPipeline, daily, tick); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetPipeline(ctx, testPipeline); err != nil {
		t.Fatalf("pipeline not recorded with its first tick: %v", err)
	}
	got, ok, err := s.LastScheduleTick(ctx, testPipeline, daily)
	if err != nil || !ok || !got.Equal(tick.Truncate(time.Microsecond)) || got.Location() != time.UTC {
		t.Fatalf("read back %v %v %v, want %v", got, ok, err, tick)
	}

	// A later tick replaces it; other schedules and pipelines are separate.
	next := tick.Add(24 * time.Hour)
	if err := s.SetScheduleTick(ctx, testPipeline, daily, next); err != nil {
		t.Fatal(err)
	}
	other := PipelineRef{Repository: testPipeline.Repository, Name: "other"}
	if err := s.SetScheduleTick(ctx, other, daily, tick); err != nil {
		t.Fatal(err)
	}
	if err := s.SetScheduleTick(ctx, testPipeline, "CRON_TZ=UTC @hourly", tick); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.LastScheduleTick(ctx, testPipeline, daily); !got.Equal(next.Truncate(time.Microsecond)) {
		t.Fatalf("after replace: %v, want %v", got, next)
	}

	// It survives reopening the database.
	_ = s.Close()
	s = openAt(t, path)
	if got, ok, err := s.LastScheduleTick(ctx, other, daily); err != nil || !ok || !got.Equal(tick.Truncate(time.Microsecond)) {
		t.Fatalf("after reopen: %v %v %v", got, ok, err)
	}

	// Deleting forgets one schedule only; deleting again, or an unknown pipeline, is fine.
	for range 2 {
		if err := s.DeleteScheduleTick(ctx, testPipeline, daily); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteScheduleTick(ctx, PipelineRef{Repository: "x", Name: "y"}, daily); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.LastScheduleTick(ctx, testPipeline, daily); ok {
		t.Fatal("deleted schedule still recorded")
	}
	if _, ok, _ := s.LastScheduleTick(ctx, testPipeline, "CRON_TZ=UTC @hourly"); !ok {
		t.Fatal("deleting one schedule deleted another")
	}
	if _, ok, _ := s.LastScheduleTick(ctx, other, daily); !ok {
		t.Fatal("deleting one pipeline's schedule deleted another pipeline's")
	}

	// Bad input is refused.
	if err := s.SetScheduleTick(ctx, PipelineRef{Name: "x"}, daily, tick); err == nil {
		t.Fatal("pipeline without repository accepted")
	}
	if err := s.SetScheduleTick(ctx, testPipeline, "", tick); err == nil {
		t.Fatal("empty schedule accepted")
	}
	if err := s.SetScheduleTick(ctx, testPipeline, daily, time.Time{}); err == nil {
		t.Fatal("zero tick accepted")
	}
	if _, _, err := s.LastScheduleTick(ctx, PipelineRef{}, daily); err == nil {
		t.Fatal("empty pipeline accepted")
	}
}

func TestAdvanceScheduleTickIsACompareAndSet(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	const key = "CRON_TZ=UTC */1 * * * *"
	base := time.Date(2026, 12, 1, 17, 0, 0, 0, time.UTC)
	// Nothing recorded: from zero creates the baseline, once.
	if ok, err := s.AdvanceScheduleTick(ctx, testPipeline, key, time.Time{}, base); err != nil || !ok {
		t.Fatalf("baseline: %v %v", ok, err)
	}
	if ok, err := s.AdvanceScheduleTick(ctx, testPipeline, key, time.Time{}, base.Add(time.Hour)); err != nil || ok {
		t.Fatalf("a second baseline over the first: %v %v", ok, err)
	}
	// Replicas racing for one tick: exactly one records it.
	tick := base.Add(time.Minute)
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.AdvanceScheduleTick(ctx, testPipeline, key, base, tick)
			if err != nil {
				t.Error(err)
			}
			if ok {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d processes handled the tick of %s", wins.Load(), tick)
	}
	// A stale from loses, and leaves the record alone.
	if ok, err := s.AdvanceScheduleTick(ctx, testPipeline, key, base, tick.Add(time.Minute)); err != nil || ok {
		t.Fatalf("advance from a stale tick: %v %v", ok, err)
	}
	if got, _, _ := s.LastScheduleTick(ctx, testPipeline, key); !got.Equal(tick) {
		t.Fatalf("recorded %v, want %v", got, tick)
	}
	if _, err := s.AdvanceScheduleTick(ctx, PipelineRef{Name: "x"}, key, base, tick); err == nil {
		t.Fatal("pipeline without repository accepted")
	}
}
