package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/daemon"
	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/store"
	"github.com/slipwayhq/slipway/test/testenv"
)

// The no-op's cost in store writes, counted on the real engine and cluster: a run of an
// unchanged commit whose objects nothing changed makes six writes, each a turn of the
// store's writer it waits for: its record, its start (the pipeline's claim with it), its
// task's start, its revision (healthy at once, with the task's lines so far), the task's
// end and the run's end (the claim's with it).
func TestANoopDeployRunWritesSixTimes(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	repo, repoName, cfg := newProject(t, env)
	repo.commit("app", map[string][]byte{
		".pipeline.yaml": []byte("name: noop\nstages:\n- name: deploy\n  tasks:\n  - name: app\n    type: deploy-yaml\n    path: app.yaml\n    cluster: e2e\n    namespace: " + ns + "\n"),
		"app.yaml":       []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: gitops\n"),
	})
	logger := logrus.New()
	logger.SetOutput(testWriter{t})
	parts, err := daemon.Open(ctx, cfg, logrus.NewEntry(logger))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = parts.Close() }()
	stats, ok := parts.Store.(interface{ WriteStats() (uint64, uint64) })
	if !ok {
		t.Fatalf("the store %T counts no writes", parts.Store)
	}
	dctx, stop := context.WithCancel(ctx)
	runner, disp, err := parts.StartDispatcher(dctx, "e2e", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { stop(); disp.Wait(); runner.Close() }()
	rcfg, src, err := parts.Repository(repoName)
	if err != nil {
		t.Fatal(err)
	}
	co, err := runner.Prepare(ctx, reconciler.Request{Repo: src, Branch: rcfg.DefaultBranch()})
	if err != nil {
		t.Fatal(err)
	}
	runOnce := func() (store.Run, uint64) {
		t.Helper()
		w0, _ := stats.WriteStats()
		run, err := disp.Submit(ctx, reconciler.RunJob(co, co.Pipelines[0], store.TriggerManual, 0))
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-disp.Done(run.Pipeline, run.BuildID):
		case <-ctx.Done():
			t.Fatal("the run never ended")
		}
		w1, _ := stats.WriteStats()
		final, err := parts.Store.GetRun(ctx, run.Pipeline, run.BuildID)
		if err != nil || final.Status != store.RunSucceeded {
			t.Fatalf("run %d: %+v, %v; want it succeeded", run.BuildID, final, err)
		}
		return final, w1 - w0
	}
	_, first := runOnce()
	t.Logf("the first deploy: %d writes", first)
	// The holder's heartbeat (every 10 s) may land inside one: the fewest of three.
	least := uint64(1 << 62)
	var last store.Run
	for range 3 {
		run, n := runOnce()
		least, last = min(least, n), run
	}
	t.Logf("a no-op run: %d writes", least)
	if least != 6 {
		t.Errorf("a no-op run made %d store writes, want 6", least)
	}
	lines, err := parts.Store.ReadLogs(ctx, last.Pipeline, last.BuildID, store.LogQuery{Tasks: []string{"app"}})
	if err != nil {
		t.Fatal(err)
	}
	var text []string
	for _, l := range lines {
		text = append(text, l.Text)
	}
	if log := strings.Join(text, "\n"); !strings.Contains(log, "rendered 1 objects") || !strings.Contains(log, "all 1 objects healthy") {
		t.Errorf("the no-op's task log lost lines:\n%s", log)
	}
}
