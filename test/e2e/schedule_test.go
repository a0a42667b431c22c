package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/slipwayhq/slipway/daemon"
	"github.com/slipwayhq/slipway/store"
	"github.com/slipwayhq/slipway/test/testenv"
)

// inProcessDaemon is daemon.Serve running in the test's process, so its clock can be a fake.
type inProcessDaemon struct {
	parts  *daemon.Parts
	cancel context.CancelFunc
	done   chan error
}

func serveInProcess(t *testing.T, cfg string, clk *testingclock.FakeClock) *inProcessDaemon {
	t.Helper()
	logger := logrus.New()
	logger.SetOutput(testWriter{t})
	log := logrus.NewEntry(logger).WithField("daemon", "in-process")
	ctx, cancel := context.WithCancel(context.Background())
	parts, err := daemon.Open(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	d := &inProcessDaemon{parts: parts, cancel: cancel, done: make(chan error, 1)}
	go func() { d.done <- daemon.Serve(ctx, parts, daemon.Options{Clock: clk, Log: log}) }()
	t.Cleanup(func() { d.stop(t) })
	return d
}

func (d *inProcessDaemon) stop(t *testing.T) {
	t.Helper()
	if d.cancel == nil {
		return
	}
	d.cancel()
	d.cancel = nil
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("daemon.Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("daemon.Serve did not return within 30s of cancellation")
	}
	_ = d.parts.Close()
}

// runs lists the pipeline's runs, newest first.
func (d *inProcessDaemon) runs(t *testing.T, ref store.PipelineRef) []store.Run {
	t.Helper()
	runs, err := d.parts.Store.ListRuns(context.Background(), ref, 0)
	if err != nil && !strings.Contains(err.Error(), "not found") {
		t.Fatal(err)
	}
	return runs
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestScheduleFiresForbidsAndCatchesUpOnce runs a schedule from the pipeline file on an
// injected clock, against the real Git server and cluster: ticks start runs with trigger
// cron (pushes do not: the file has schedules only), forbid skips a tick while a run is
// active, and a restarted daemon runs the newest of several missed ticks exactly once.
func TestScheduleFiresForbidsAndCatchesUpOnce(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	repo, repoName, cfg := newProject(t, env)
	manifests := readExample(t, env, "2048-yaml/2048_env.yaml")
	repo.commit("scheduled", map[string][]byte{
		".pipeline.yaml": deployPipeline(env.Registry, ns, `timeout: 6s
triggers:
  schedules:
    - cron: "*/5 * * * *"
      timezone: Asia/Shanghai
      concurrency: forbid
`, "60s", ""),
		"2048_env.yaml": []byte(neverReady(manifests)),
	})
	ref := store.PipelineRef{Repository: repoName, Name: "jack-2048"}
	clk := testingclock.NewFakeClock(time.Date(2026, 11, 23, 10, 1, 0, 0, time.UTC))
	d := serveInProcess(t, cfg, clk)
	// The watcher reads the file and hands its schedule to the scheduler, which arms a timer.
	waitFor(t, 30*time.Second, "the schedule's timer", clk.HasWaiters)
	time.Sleep(2 * time.Second)
	if runs := d.runs(t, ref); len(runs) != 0 {
		t.Fatalf("a push started a pipeline that only has schedules: %+v", runs)
	}

	clk.SetTime(time.Date(2026, 11, 23, 10, 5, 0, 0, time.UTC))
	waitFor(t, 15*time.Second, "run 1 from the 10:05 tick", func() bool {
		runs := d.runs(t, ref)
		return len(runs) == 1 && runs[0].Status == store.RunRunning
	})
	if r := d.runs(t, ref)[0]; r.Trigger != store.TriggerCron {
		t.Fatalf("run 1 trigger = %s, want cron", r.Trigger)
	}
	// Run 1 waits for health (6s pipeline timeout); the 10:10 tick comes while it runs.
	waitFor(t, 10*time.Second, "the next timer", clk.HasWaiters)
	clk.SetTime(time.Date(2026, 11, 23, 10, 10, 0, 0, time.UTC))
	waitFor(t, 10*time.Second, "the 10:10 tick recorded", func() bool {
		tick, ok, err := d.parts.Store.LastScheduleTick(context.Background(), ref, "CRON_TZ=Asia/Shanghai */5 * * * *")
		return err == nil && ok && tick.Equal(time.Date(2026, 11, 23, 10, 10, 0, 0, time.UTC))
	})
	waitFor(t, 20*time.Second, "run 1 to time out", func() bool { return d.runs(t, ref)[0].Status.Final() })
	if runs := d.runs(t, ref); len(runs) != 1 || runs[0].Status != store.RunTimedOut {
		t.Fatalf("forbid: the 10:10 tick during run 1 started a run, or run 1 did not time out: %+v", runs)
	}

	// Down from 10:10 to 10:31: ticks 10:15 … 10:30 are missed; the newest (10:30) is
	// within the 10m startingDeadline and runs once at start, the others never.
	d.stop(t)
	clk.SetTime(time.Date(2026, 11, 23, 10, 31, 0, 0, time.UTC))
	d = serveInProcess(t, cfg, clk)
	waitFor(t, 30*time.Second, "run 2 from the missed 10:30 tick", func() bool { return len(d.runs(t, ref)) >= 2 })
	time.Sleep(3 * time.Second)
	runs := d.runs(t, ref)
	if len(runs) != 2 || runs[0].Trigger != store.TriggerCron {
		t.Fatalf("after the restart: want exactly one catch-up run, got %+v", runs)
	}
	d.stop(t)
}
