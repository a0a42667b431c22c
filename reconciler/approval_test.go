package reconciler

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/policy"
	"github.com/slipwayhq/slipway/sources"
	"github.com/slipwayhq/slipway/store"
)

// emptyCheckout stands in for Git: the gated runs below need no files.
type emptyCheckout struct{}

func (emptyCheckout) Sync(context.Context, sources.Repo, string) (sources.SyncResult, error) {
	return sources.SyncResult{}, nil
}
func (emptyCheckout) Checkout(context.Context, sources.Repo, string, string) error { return nil }
func (emptyCheckout) ChangedPaths(context.Context, sources.Repo, string, string) ([]string, error) {
	return nil, nil
}
func (emptyCheckout) Commit(context.Context, sources.Repo, string) (sources.Commit, error) {
	return sources.Commit{}, nil
}

// gatedPipeline has one stage behind a manual approval; its script task has no executor
// in the test's configuration, so a run that gets past the gate fails in that task, which
// proves the task started.
func gatedPipeline(t *testing.T, top, approval string) *pipeline.Pipeline {
	t.Helper()
	ps, diags := pipeline.Parse("gated.yaml", []byte(`name: app
`+top+`stages:
  - name: production
    approval:
      manual: {approvers: [ops-lead]}
`+approval+`    tasks:
      - name: smoke
        type: script
        image: busybox
        script: "true"
`))
	if err := diags.Err(); err != nil {
		t.Fatal(err)
	}
	return ps[0]
}

func startGatedRun(t *testing.T, p *pipeline.Pipeline) (store.Store, *Dispatcher, store.Run) {
	t.Helper()
	st := testStore(t)
	runner := NewRunner(RunnerOptions{Store: st, Sources: emptyCheckout{}, Config: &config.Config{DataDir: t.TempDir()},
		Log: logrus.NewEntry(logrus.New())})
	d, _ := startTestDispatcher(t, runner, st)
	run, err := d.Submit(context.Background(), RunJob(&Checkout{Repo: sources.Repo{Name: testRef.Repository}}, p, store.TriggerPush, 0))
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, st, run, store.RunAwaitingApproval)
	return st, d, run
}

func waitStatus(t *testing.T, st store.Store, run store.Run, want store.RunStatus) store.Run {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := st.GetRun(context.Background(), run.Pipeline, run.BuildID)
		if err == nil && got.Status == want {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %d is %s (%v), want %s", run.BuildID, got.Status, err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAGatedStageWaitsForAnApprover(t *testing.T) {
	st, d, run := startGatedRun(t, gatedPipeline(t, "timeout: 1s\n", ""))
	waiting, _ := st.GetRun(context.Background(), testRef, run.BuildID)
	if !strings.Contains(waiting.Reason, "waits for a manual approval from ops-lead") {
		t.Errorf("reason %q", waiting.Reason)
	}
	if tasks, _ := st.ListTasks(context.Background(), testRef, run.BuildID); tasks[0].Status != store.TaskPending {
		t.Fatalf("the gated task started: %+v", tasks)
	}
	if err := d.Answer(context.Background(), testRef, run.BuildID, policy.Answer{Actor: "mallory", Approve: true}); !errors.Is(err, policy.ErrNotApprover) {
		t.Fatalf("an answer from someone not listed: %v", err)
	}
	// Waiting longer than the pipeline's timeout of 1s does not time the run out: the
	// run's own clock stops while it waits for people.
	time.Sleep(1500 * time.Millisecond)
	if err := d.Answer(context.Background(), testRef, run.BuildID, policy.Answer{Actor: "ops-lead", Approve: true}); err != nil {
		t.Fatal(err)
	}
	waitDone(t, d, run.BuildID)
	final, _ := st.GetRun(context.Background(), testRef, run.BuildID)
	tasks, _ := st.ListTasks(context.Background(), testRef, run.BuildID)
	if final.Status != store.RunFailed || tasks[0].Status != store.TaskFailed ||
		!strings.Contains(tasks[0].Reason, "no executor for script tasks") {
		t.Fatalf("after the approval the stage must run: run %+v, task %+v", final, tasks[0])
	}
	if err := d.Answer(context.Background(), testRef, run.BuildID, policy.Answer{Actor: "ops-lead", Approve: true}); !errors.Is(err, ErrNotActive) {
		t.Errorf("answering a finished run: %v", err)
	}
}

func TestARejectedStageFailsTheRun(t *testing.T) {
	st, d, run := startGatedRun(t, gatedPipeline(t, "", ""))
	if err := d.Answer(context.Background(), testRef, run.BuildID, policy.Answer{Actor: "ops-lead", Comment: "not today"}); err != nil {
		t.Fatal(err)
	}
	waitDone(t, d, run.BuildID)
	final, _ := st.GetRun(context.Background(), testRef, run.BuildID)
	tasks, _ := st.ListTasks(context.Background(), testRef, run.BuildID)
	if final.Status != store.RunFailed || final.Reason != "stage production rejected by ops-lead: not today" || tasks[0].Status != store.TaskSkipped {
		t.Fatalf("run %+v, task %+v", final, tasks[0])
	}
}

func TestAnApprovalTimesOut(t *testing.T) {
	st, d, run := startGatedRun(t, gatedPipeline(t, "", "      timeout: 300ms\n"))
	waitDone(t, d, run.BuildID)
	final, _ := st.GetRun(context.Background(), testRef, run.BuildID)
	if final.Status != store.RunApprovalTimedOut || !strings.HasPrefix(final.Reason, "no approval of stage production within 300ms") {
		t.Fatalf("run %+v", final)
	}
}

func TestANewerPushSupersedesARunWaitingForApproval(t *testing.T) {
	st, d, run := startGatedRun(t, gatedPipeline(t, "", ""))
	p := gatedPipeline(t, "", "")
	newer, err := d.Submit(context.Background(), RunJob(&Checkout{Repo: sources.Repo{Name: testRef.Repository}}, p, store.TriggerPush, 0))
	if err != nil {
		t.Fatal(err)
	}
	final := waitStatus(t, st, run, store.RunSuperseded)
	if final.Reason != "superseded by BUILD_ID 2" {
		t.Errorf("reason %q", final.Reason)
	}
	waitStatus(t, st, newer, store.RunAwaitingApproval)
}

// A process nobody can send approvals to (the CLI's engine) fails a run at the gate at
// once, saying where it could be approved, instead of waiting for nothing.
func TestARunThatNobodyCanApproveFailsAtOnce(t *testing.T) {
	st := testStore(t)
	runner := NewRunner(RunnerOptions{Store: st, Sources: emptyCheckout{}, Config: &config.Config{DataDir: t.TempDir()},
		Log: logrus.NewEntry(logrus.New())})
	ctx, cancel := context.WithCancel(context.Background())
	d, err := StartDispatcher(ctx, DispatcherOptions{Executor: runner, Claims: st, NoApprovals: true, Log: logrus.NewEntry(logrus.New())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); d.Wait() })
	run, err := d.Submit(ctx, RunJob(&Checkout{Repo: sources.Repo{Name: testRef.Repository}}, gatedPipeline(t, "", ""), store.TriggerManual, 0))
	if err != nil {
		t.Fatal(err)
	}
	final := waitStatus(t, st, run, store.RunFailed)
	if !strings.Contains(final.Reason, "this process takes no approvals: run it through slipway serve") {
		t.Fatalf("reason %q", final.Reason)
	}
}

// evidenceGate refuses every gated stage with evidence, as the pull-request rule does.
type evidenceGate struct{}

func (evidenceGate) MayAnswer(ctx context.Context, repository string, st *pipeline.Stage, actor string) (string, error) {
	return policy.Gate{}.MayAnswer(ctx, repository, st, actor)
}

func (evidenceGate) MayStart(_ context.Context, req policy.StageRequest) (policy.Decision, error) {
	if req.Stage.Approval == nil {
		return policy.Decision{Allow: true}, nil
	}
	return policy.Decision{Rule: "pullRequest", Reason: "PR #7 has 0 of 1 approvals",
		Evidence: map[string]any{"pullRequest": 7, "head": "ffff000"}}, nil
}

func TestTheGatesEvidenceIsAudited(t *testing.T) {
	st := testStore(t)
	runner := NewRunner(RunnerOptions{Store: st, Sources: emptyCheckout{}, Config: &config.Config{DataDir: t.TempDir()},
		Gate: evidenceGate{}, Audit: st, Log: logrus.NewEntry(logrus.New())})
	d, _ := startTestDispatcher(t, runner, st)
	run, err := d.Submit(context.Background(), RunJob(&Checkout{Repo: sources.Repo{Name: testRef.Repository}}, gatedPipeline(t, "", ""), store.TriggerPush, 0))
	if err != nil {
		t.Fatal(err)
	}
	waitDone(t, d, run.BuildID)
	entries, err := st.ListAudit(context.Background(), store.AuditFilter{})
	if err != nil || len(entries) != 1 {
		t.Fatalf("audit %+v %v", entries, err)
	}
	if e := entries[0]; e.Reason != "PR #7 has 0 of 1 approvals" ||
		!strings.Contains(string(e.Evidence), `"evidence":{"head":"ffff000","pullRequest":7}`) {
		t.Errorf("audit entry %+v (evidence %s)", e, e.Evidence)
	}
}

// TestAWaitingGateGivesItsPlaceUp: with one place for runs in flight, a run waiting for
// an approval does not keep another pipeline's run from running up to its own gate, and
// once approved it takes a place again before its stage runs.
func TestAWaitingGateGivesItsPlaceUp(t *testing.T) {
	st := testStore(t)
	ctx, d := startOnePlaceRunner(t, st, st)
	var runs []store.Run
	for _, name := range []string{"app", "other"} {
		p := gatedPipeline(t, "", "")
		p.Name = name
		run, err := d.Submit(ctx, RunJob(&Checkout{Repo: sources.Repo{Name: testRef.Repository}}, p, store.TriggerPush, 0))
		if err != nil {
			t.Fatal(err)
		}
		waitStatus(t, st, run, store.RunAwaitingApproval)
		runs = append(runs, run)
	}
	if running, waiting := d.InFlight(); running != 0 || waiting != 0 {
		t.Fatalf("two runs at their gates: %d in flight, %d waiting; want none", running, waiting)
	}
	for _, run := range runs {
		if err := d.Answer(context.Background(), run.Pipeline, run.BuildID, policy.Answer{Actor: "ops-lead", Approve: true}); err != nil {
			t.Fatal(err)
		}
	}
	for _, run := range runs {
		<-d.Done(run.Pipeline, run.BuildID)
		tasks, _ := st.ListTasks(context.Background(), run.Pipeline, run.BuildID)
		if tasks[0].Status != store.TaskFailed {
			t.Errorf("%s: the approved stage did not run: %+v", run.Pipeline.Name, tasks[0])
		}
	}
}
