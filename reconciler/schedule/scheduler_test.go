package schedule

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/store"
)

const repo = "git.example/team/app"

// wait bounds how long a test waits for a schedule goroutine to react. It is never slept:
// the schedule's own time is the fake clock.
const wait = 10 * time.Second

func ref(name string) store.PipelineRef { return store.PipelineRef{Repository: repo, Name: name} }

// fakeRuns records what the scheduler asks of the dispatcher, and records each run in the
// real store with its tick's claim, in one transaction, as the hub does.
type fakeRuns struct {
	mu     sync.Mutex
	st     *store.DB // set by start
	active map[store.PipelineRef]bool
	ops    []string // "cancel NAME" and "start NAME", in order
	fires  chan Fire
	err    error // returned by Start before anything is recorded
}

func newFakeRuns() *fakeRuns {
	return &fakeRuns{active: map[store.PipelineRef]bool{}, fires: make(chan Fire, 100)}
}

func (r *fakeRuns) Active(ref store.PipelineRef) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.active[ref]
}

func (r *fakeRuns) setActive(ref store.PipelineRef, v bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.active[ref] = v
}

func (r *fakeRuns) CancelActive(_ context.Context, ref store.PipelineRef, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, "cancel "+ref.Name)
	r.active[ref] = false
	return nil
}

func (r *fakeRuns) Start(ctx context.Context, f Fire) (bool, error) {
	r.mu.Lock()
	r.ops = append(r.ops, "start "+f.Pipeline.Name)
	err, st := r.err, r.st
	r.mu.Unlock()
	if err != nil {
		return false, err
	}
	_, err = st.CreateRuns(ctx, []store.NewRun{{Pipeline: f.Pipeline, Commit: "c0ffee", Trigger: store.TriggerCron}},
		store.Handled{Tick: &f.Claim})
	switch {
	case errors.Is(err, store.ErrHandledElsewhere):
		return false, fmt.Errorf("%w: %w", ErrTickTaken, err)
	case err != nil:
		return false, err
	}
	r.fires <- f
	return true, nil
}

func (r *fakeRuns) opsSoFar() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ops)
}

// running is one Scheduler running on a fake clock, with its goroutines' events.
type running struct {
	*Scheduler
	events chan event
	stop   func()
	// crash ends Run's context without waiting: the process dying where the caller is.
	crash func()
}

func start(t *testing.T, st Store, fc *clocktesting.FakeClock, runs Runs, reg prometheus.Registerer) *running {
	t.Helper()
	log := logrus.New()
	log.SetLevel(logrus.DebugLevel)
	var m *Metrics
	if reg != nil {
		var err error
		if m, err = NewMetrics(reg); err != nil {
			t.Fatal(err)
		}
	}
	if fr, ok := runs.(*fakeRuns); ok {
		fr.mu.Lock()
		fr.st = st.(*store.DB)
		fr.mu.Unlock()
	}
	s := New(Options{Store: st, Runs: runs, Clock: fc, Metrics: m, Log: logrus.NewEntry(log)})
	r := &running{Scheduler: s, events: make(chan event, 1000)}
	s.event = func(ev event) { r.events <- ev }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	r.crash = cancel
	r.stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(wait):
			t.Fatal("scheduler did not stop")
		}
	}
	t.Cleanup(r.stop)
	return r
}

func openStore(t *testing.T) *store.DB {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// next returns the next event of the given kind ("": any) for pipeline name ("": any),
// skipping others.
func (r *running) next(t *testing.T, kind, name string) event {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case ev := <-r.events:
			if (kind == "" || ev.kind == kind) && (name == "" || ev.ref.Name == name) {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event for %q within %s", kind, name, wait)
		}
	}
}

// quiet fails if a run was started. Call it when every schedule goroutine has re-armed (or
// stopped) after its last tick: each one starts its run before it re-arms, so nothing can
// still be on the way.
func (r *running) quiet(t *testing.T, runs *fakeRuns) {
	t.Helper()
	select {
	case f := <-runs.fires:
		t.Fatalf("unexpected run %+v", f)
	default:
	}
}

// waiters checks how many timers wait on the fake clock. Right after moving the clock it
// says, without waiting for any goroutine, whether a tick fired: a fired timer is removed
// from the clock as the clock moves.
func waiters(t *testing.T, fc *clocktesting.FakeClock, n int) {
	t.Helper()
	if got := fc.Waiters(); got != n {
		t.Fatalf("%d timers waiting, want %d", got, n)
	}
}

func fire(t *testing.T, runs *fakeRuns) Fire {
	t.Helper()
	select {
	case f := <-runs.fires:
		return f
	case <-time.After(wait):
		t.Fatalf("no run started within %s", wait)
		return Fire{}
	}
}

func set(t *testing.T, s *running, pipelines map[string][]pipeline.Schedule) {
	t.Helper()
	if err := s.Set(context.Background(), repo, pipelines); err != nil {
		t.Fatal(err)
	}
}

func lastTick(t *testing.T, st Store, name string, sc pipeline.Schedule) time.Time {
	t.Helper()
	tick, ok, err := st.LastScheduleTick(context.Background(), ref(name), Key(sc))
	if err != nil || !ok {
		t.Fatalf("last tick of %s %s: %v %v", name, Key(sc), ok, err)
	}
	return tick
}

func utc(h, m, s int) time.Time { return time.Date(2026, 11, 23, h, m, s, 0, time.UTC) }

func TestTicksFireAtTheirInstants(t *testing.T) {
	st := openStore(t)
	fc := clocktesting.NewFakeClock(utc(10, 1, 30))
	runs := newFakeRuns()
	s := start(t, st, fc, runs, nil)
	shanghai, _ := time.LoadLocation("Asia/Shanghai")
	set(t, s, map[string][]pipeline.Schedule{
		"five":    {{Cron: "*/5 * * * *"}},
		"morning": {{Cron: "0 3 * * *", Timezone: "Asia/Shanghai"}},
		"every":   {{Cron: "@every 90s"}},
	})
	armed := map[string]time.Time{}
	for range 3 {
		ev := s.next(t, "armed", "")
		armed[ev.ref.Name] = ev.next
	}
	// 03:00 in Shanghai (UTC+8) is 19:00 UTC; @every counts from when it was first seen.
	want := map[string]time.Time{"five": utc(10, 5, 0), "morning": utc(19, 0, 0), "every": utc(10, 3, 0)}
	for name, w := range want {
		if !armed[name].Equal(w) {
			t.Errorf("%s first armed for %v, want %v", name, armed[name], w)
		}
	}

	// One second early: nothing.
	fc.SetTime(utc(10, 2, 59))
	waiters(t, fc, 3)

	fc.SetTime(utc(10, 3, 0))
	if f := fire(t, runs); f.Pipeline != ref("every") || !f.Tick.Equal(utc(10, 3, 0)) || f.Missed || f.Schedule != "CRON_TZ=UTC @every 90s" {
		t.Fatalf("fired %+v", f)
	}
	if ev := s.next(t, "armed", "every"); !ev.next.Equal(utc(10, 4, 30)) {
		t.Fatalf("every re-armed for %v", ev.next)
	}
	fc.SetTime(utc(10, 4, 30))
	if f := fire(t, runs); f.Pipeline != ref("every") || !f.Tick.Equal(utc(10, 4, 30)) {
		t.Fatalf("fired %+v", f)
	}
	s.next(t, "armed", "every")
	fc.SetTime(utc(10, 5, 0))
	if f := fire(t, runs); f.Pipeline != ref("five") || !f.Tick.Equal(utc(10, 5, 0)) {
		t.Fatalf("fired %+v", f)
	}
	if ev := s.next(t, "armed", "five"); !ev.next.Equal(utc(10, 10, 0)) {
		t.Fatalf("five re-armed for %v", ev.next)
	}

	// Stop the fast ones to watch the time zone alone.
	set(t, s, map[string][]pipeline.Schedule{"morning": {{Cron: "0 3 * * *", Timezone: "Asia/Shanghai"}}})
	stopped := map[string]bool{}
	for len(stopped) < 2 {
		stopped[s.next(t, "stopped", "").ref.Name] = true
	}
	if !stopped["five"] || !stopped["every"] {
		t.Fatalf("stopped %v", stopped)
	}
	fc.SetTime(utc(18, 59, 59))
	waiters(t, fc, 1)
	s.quiet(t, runs)
	fc.SetTime(utc(19, 0, 0))
	f := fire(t, runs)
	if f.Pipeline != ref("morning") || f.Tick.Location().String() != "Asia/Shanghai" ||
		f.Tick.Format("2006-01-02 15:04") != "2026-11-24 03:00" {
		t.Fatalf("fired %+v (%s)", f, f.Tick)
	}
	if ev := s.next(t, "armed", "morning"); !ev.next.Equal(time.Date(2026, 11, 25, 3, 0, 0, 0, shanghai)) {
		t.Fatalf("morning re-armed for %v", ev.next)
	}
	if got := lastTick(t, st, "morning", pipeline.Schedule{Cron: "0 3 * * *", Timezone: "Asia/Shanghai"}); !got.Equal(utc(19, 0, 0)) {
		t.Fatalf("recorded %v", got)
	}
}

func TestConcurrencyPolicies(t *testing.T) {
	st := openStore(t)
	fc := clocktesting.NewFakeClock(utc(10, 1, 30))
	runs := newFakeRuns()
	reg := prometheus.NewRegistry()
	s := start(t, st, fc, runs, reg)
	forbid := pipeline.Schedule{Cron: "*/5 * * * *"} // forbid is the default
	set(t, s, map[string][]pipeline.Schedule{
		"forbid":  {forbid},
		"replace": {{Cron: "*/5 * * * *", Concurrency: pipeline.ConcurrencyReplace}},
		"allow":   {{Cron: "*/5 * * * *", Concurrency: pipeline.ConcurrencyAllow}},
	})
	for _, name := range []string{"forbid", "replace", "allow"} {
		runs.setActive(ref(name), true)
	}
	for range 3 {
		s.next(t, "armed", "")
	}

	fc.SetTime(utc(10, 5, 0))
	results := map[string]string{}
	for armed := 0; len(results) < 3 || armed < 3; {
		switch ev := s.next(t, "", ""); ev.kind {
		case "handled":
			results[ev.ref.Name] = ev.result + "/" + ev.reason
		case "armed":
			armed++
		}
	}
	fire(t, runs)
	fire(t, runs) // replace and allow
	want := map[string]string{"forbid": "skipped/forbid", "replace": "fired/replace", "allow": "fired/scheduled"}
	for name, w := range want {
		if results[name] != w {
			t.Errorf("%s: %s, want %s", name, results[name], w)
		}
	}
	ops := runs.opsSoFar()
	i := slices.Index(ops, "cancel replace")
	if i < 0 || !slices.Contains(ops[i:], "start replace") || slices.Contains(ops, "cancel allow") || slices.Contains(ops, "start forbid") ||
		!slices.Contains(ops, "start allow") {
		t.Fatalf("operations %v: want replace cancelled before it starts, allow started without a cancel, forbid not started", ops)
	}
	// The skipped tick is recorded as handled too.
	if got := lastTick(t, st, "forbid", forbid); !got.Equal(utc(10, 5, 0)) {
		t.Fatalf("forbid recorded %v", got)
	}

	// Once the run is over, forbid fires again.
	runs.setActive(ref("forbid"), false)
	fc.SetTime(utc(10, 10, 0))
	seen := map[string]bool{}
	for range 3 {
		seen[fire(t, runs).Pipeline.Name] = true
	}
	if !seen["forbid"] {
		t.Fatalf("forbid did not fire after the run ended: %v", seen)
	}
	for range 3 {
		s.next(t, "armed", "") // counted before re-arming
	}

	counts := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "slipway_schedule_ticks_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			counts[labels["pipeline"]+" "+labels["result"]+"/"+labels["reason"]] += m.GetCounter().GetValue()
		}
	}
	if counts["forbid skipped/forbid"] != 1 || counts["replace fired/replace"] != 1 || counts["allow fired/scheduled"] != 2 {
		t.Fatalf("counted %v", counts)
	}
}

func TestSetChangesAndRemovesSchedules(t *testing.T) {
	st := openStore(t)
	fc := clocktesting.NewFakeClock(utc(10, 1, 30))
	runs := newFakeRuns()
	s := start(t, st, fc, runs, nil)
	five := pipeline.Schedule{Cron: "*/5 * * * *"}
	set(t, s, map[string][]pipeline.Schedule{"p": {five}})
	s.next(t, "armed", "p")

	// Same expression, other policy: the schedule keeps running and the policy applies.
	runs.setActive(ref("p"), true)
	allow := five
	allow.Concurrency = pipeline.ConcurrencyAllow
	set(t, s, map[string][]pipeline.Schedule{"p": {allow}})
	fc.SetTime(utc(10, 5, 0))
	if ev := s.next(t, "handled", "p"); ev.result != resultFired {
		t.Fatalf("after the policy change: %+v", ev)
	}
	fire(t, runs)
	s.next(t, "armed", "p")
	runs.setActive(ref("p"), false)

	// Another expression replaces it: the old one stops and is forgotten, the new one
	// starts from now.
	hourly := pipeline.Schedule{Cron: "0 * * * *"}
	set(t, s, map[string][]pipeline.Schedule{"p": {hourly}})
	var stopped, armed bool
	for !stopped || !armed {
		switch ev := <-s.events; ev.kind {
		case "stopped":
			stopped = ev.key == Key(five)
		case "armed":
			armed = ev.key == Key(hourly) && ev.next.Equal(utc(11, 0, 0))
		default:
			t.Fatalf("unexpected %+v", ev)
		}
	}
	if _, ok, _ := st.LastScheduleTick(context.Background(), ref("p"), Key(five)); ok {
		t.Fatal("the removed schedule is still recorded")
	}
	fc.SetTime(utc(10, 10, 0)) // a tick of the old expression only
	waiters(t, fc, 1)
	fc.SetTime(utc(11, 0, 0))
	if f := fire(t, runs); f.Schedule != Key(hourly) {
		t.Fatalf("fired %+v", f)
	}
	s.next(t, "armed", "p")

	// Removing every schedule stops them; later ticks start nothing.
	set(t, s, nil)
	s.next(t, "stopped", "p")
	waiters(t, fc, 0)
	fc.SetTime(utc(13, 0, 0))
	s.quiet(t, runs)
}

func TestRestartRunsAMissedTickOnce(t *testing.T) {
	st := openStore(t)
	fc := clocktesting.NewFakeClock(utc(10, 1, 30))
	runs := newFakeRuns()
	five := pipeline.Schedule{Cron: "*/5 * * * *"}
	s := start(t, st, fc, runs, nil)
	set(t, s, map[string][]pipeline.Schedule{"p": {five}})
	s.next(t, "armed", "p")
	// A schedule seen for the first time records a baseline and fires nothing.
	if got := lastTick(t, st, "p", five); !got.Equal(utc(10, 1, 30)) {
		t.Fatalf("baseline %v", got)
	}
	s.stop()

	// Down over 10:05; back at 10:07, within the default 10m deadline.
	fc.SetTime(utc(10, 7, 0))
	s = start(t, st, fc, runs, nil)
	set(t, s, map[string][]pipeline.Schedule{"p": {five}})
	if f := fire(t, runs); !f.Tick.Equal(utc(10, 5, 0)) || !f.Missed {
		t.Fatalf("fired %+v", f)
	}
	if ev := s.next(t, "armed", "p"); !ev.next.Equal(utc(10, 10, 0)) {
		t.Fatalf("armed for %v", ev.next)
	}
	s.quiet(t, runs)
	if got := lastTick(t, st, "p", five); !got.Equal(utc(10, 5, 0)) {
		t.Fatalf("recorded %v", got)
	}

	// And a second restart does not run it again.
	s.stop()
	s = start(t, st, fc, runs, nil)
	set(t, s, map[string][]pipeline.Schedule{"p": {five}})
	s.next(t, "armed", "p")
	s.quiet(t, runs)
}

func TestTickMissedBeyondStartingDeadlineIsSkipped(t *testing.T) {
	st := openStore(t)
	fc := clocktesting.NewFakeClock(utc(10, 1, 30))
	runs := newFakeRuns()
	five := pipeline.Schedule{Cron: "*/5 * * * *", StartingDeadline: pipeline.Duration{Duration: time.Minute}}
	s := start(t, st, fc, runs, nil)
	set(t, s, map[string][]pipeline.Schedule{"p": {five}})
	s.next(t, "armed", "p")
	s.stop()

	fc.SetTime(utc(10, 7, 0)) // 10:05 is 2m ago, the deadline 1m
	s = start(t, st, fc, runs, nil)
	set(t, s, map[string][]pipeline.Schedule{"p": {five}})
	if ev := s.next(t, "handled", "p"); ev.result != resultSkipped || ev.reason != reasonDeadline || !ev.tick.Equal(utc(10, 5, 0)) {
		t.Fatalf("handled %+v", ev)
	}
	if ev := s.next(t, "armed", "p"); !ev.next.Equal(utc(10, 10, 0)) {
		t.Fatalf("armed for %v", ev.next)
	}
	s.quiet(t, runs)
	if got := lastTick(t, st, "p", five); !got.Equal(utc(10, 5, 0)) {
		t.Fatalf("recorded %v", got)
	}
	// The next tick is on time again.
	fc.SetTime(utc(10, 10, 0))
	if f := fire(t, runs); !f.Tick.Equal(utc(10, 10, 0)) || f.Missed {
		t.Fatalf("fired %+v", f)
	}
}

func TestManyMissedTicksRunOnce(t *testing.T) {
	st := openStore(t)
	fc := clocktesting.NewFakeClock(utc(10, 0, 30))
	runs := newFakeRuns()
	minutely := pipeline.Schedule{Cron: "* * * * *"}
	every := pipeline.Schedule{Cron: "@every 1m"}
	both := map[string][]pipeline.Schedule{"cron": {minutely}, "every": {every}}
	s := start(t, st, fc, runs, nil)
	set(t, s, both)
	s.next(t, "armed", "")
	s.next(t, "armed", "")
	s.stop()

	// Three hours down: 180 missed ticks of each, one run each.
	fc.SetTime(utc(13, 0, 50))
	s = start(t, st, fc, runs, nil)
	set(t, s, both)
	got := map[string]time.Time{}
	for range 2 {
		f := fire(t, runs)
		if !f.Missed {
			t.Fatalf("fired %+v", f)
		}
		got[f.Pipeline.Name] = f.Tick
	}
	// @every counts from its last tick (the 10:00:30 baseline), cron from the wall clock.
	if !got["cron"].Equal(utc(13, 0, 0)) || !got["every"].Equal(utc(13, 0, 30)) {
		t.Fatalf("fired %v", got)
	}
	s.next(t, "armed", "")
	s.next(t, "armed", "")
	s.quiet(t, runs)
}

func TestStartErrorIsRecordedAndCounted(t *testing.T) {
	st := openStore(t)
	fc := clocktesting.NewFakeClock(utc(10, 1, 30))
	runs := newFakeRuns()
	runs.err = errors.New("no checkout of the tracked branch")
	s := start(t, st, fc, runs, nil)
	five := pipeline.Schedule{Cron: "*/5 * * * *"}
	set(t, s, map[string][]pipeline.Schedule{"p": {five}})
	s.next(t, "armed", "p")
	fc.SetTime(utc(10, 5, 0))
	if ev := s.next(t, "handled", "p"); ev.result != resultFailed {
		t.Fatalf("handled %+v", ev)
	}
	// Not retried in a loop: the next try is the next tick.
	if ev := s.next(t, "armed", "p"); !ev.next.Equal(utc(10, 10, 0)) {
		t.Fatalf("armed for %v", ev.next)
	}
}

func TestSetReportsBadSchedulesAndKeepsTheRest(t *testing.T) {
	st := openStore(t)
	fc := clocktesting.NewFakeClock(utc(10, 1, 30))
	s := start(t, st, fc, newFakeRuns(), nil)
	err := s.Set(context.Background(), repo, map[string][]pipeline.Schedule{
		"p": {{Cron: "not cron"}, {Cron: "*/5 * * * *", Timezone: "Mars/Olympus"}, {Cron: "*/5 * * * *"},
			{Cron: "*/5  *  * * *"}}, // the same schedule, written differently
	})
	if err == nil {
		t.Fatal("bad schedules accepted")
	}
	if ev := s.next(t, "armed", "p"); ev.key != "CRON_TZ=UTC */5 * * * *" {
		t.Fatalf("armed %+v", ev)
	}
	s.mu.Lock()
	n := len(s.entries)
	s.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d schedules set, want 1", n)
	}
}

// A run that became active between the Active check and Start (Start answers ErrActive)
// is a forbid skip, not a failure; the policy reaches Start with the tick.
func TestForbidSkipsWhenStartFindsARunActive(t *testing.T) {
	st := openStore(t)
	fc := clocktesting.NewFakeClock(utc(10, 1, 30))
	runs := newFakeRuns()
	runs.err = fmt.Errorf("start p: %w", ErrActive)
	s := start(t, st, fc, runs, nil)
	set(t, s, map[string][]pipeline.Schedule{"p": {{Cron: "*/5 * * * *", Concurrency: pipeline.ConcurrencyForbid}}})
	s.next(t, "armed", "p")
	fc.SetTime(utc(10, 5, 0))
	if ev := s.next(t, "handled", "p"); ev.result != resultSkipped || ev.reason != reasonForbid {
		t.Fatalf("handled %+v, want skipped by forbid", ev)
	}
}
