package records

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/internal/changefeed"
	"github.com/slipwayhq/slipway/store"
)

var app = store.PipelineRef{Repository: "app", Name: "deploy"}

func open(t *testing.T) (store.Store, *changefeed.Feed) {
	t.Helper()
	feed := changefeed.New()
	st, err := store.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "s.db"), store.WithChangeSink(feed))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st, feed
}

func ctxOf(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// must returns v, and fails the test by panicking on err (the test's goroutine or not).
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func newRun(t *testing.T, st store.Store, ref store.PipelineRef, trig store.Trigger, parent int64) store.Run {
	t.Helper()
	return must(st.CreateRun(ctxOf(t), store.NewRun{Pipeline: ref, Commit: "c0ffee", Branch: "main", Trigger: trig, ParentBuildID: parent}))
}

func move(t *testing.T, st store.Store, r store.Run, to ...store.RunStatus) {
	t.Helper()
	from := r.Status
	for _, s := range to {
		must(st.TransitionRun(ctxOf(t), r.Pipeline, r.BuildID, from, s, "because"))
		from = s
	}
}

const objects = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: prod}\nspec:\n  template:\n    spec:\n      containers:\n      - image: reg/web@sha256:aaaa\n"

func deploy(t *testing.T, st store.Store, r store.Run, task, env string) store.Revision {
	t.Helper()
	return must(st.SaveRevision(ctxOf(t), store.NewRevision{Pipeline: r.Pipeline, BuildID: r.BuildID, Task: task, Cluster: "kind",
		Namespace: "prod", Environment: env, Kind: store.DeployYAML, Objects: []byte(objects),
		Inventory: []store.InventoryEntry{{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "prod", Name: "web", Digest: "sha256:bb"}}}))
}

func TestFollowLogsSendsLinesInOrderThenTheFinalStatus(t *testing.T) {
	st, feed := open(t)
	ctx := ctxOf(t)
	run := newRun(t, st, app, store.TriggerPush, 0)
	must(st.AddTask(ctx, app, run.BuildID, store.NewTask{Stage: "build", Name: "script", Type: "script"}))
	if err := st.AppendLogs(ctx, app, run.BuildID, "script", []store.LogLine{{Text: "before"}}); err != nil {
		t.Fatal(err)
	}
	type got struct {
		lines    []string
		statuses []string
		final    store.Run
		err      error
	}
	done := make(chan got, 1)
	firstSeen := make(chan struct{})
	go func() {
		var g got
		g.final, g.err = FollowLogs(ctx, st, feed, Follow{Ref: app, BuildID: run.BuildID}, Emitter{
			Line: func(l Line) error {
				g.lines = append(g.lines, l.Text)
				if len(g.lines) == 1 {
					close(firstSeen)
				}
				return nil
			},
			Run: func(r Run) error { g.statuses = append(g.statuses, r.Status); return nil },
		}, time.Now)
		done <- g
	}()
	<-firstSeen
	move(t, st, run, store.RunRunning)
	for i := range 50 {
		if err := st.AppendLogs(ctx, app, run.BuildID, "script", []store.LogLine{{Text: string(rune('a' + i%26))}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.AppendLogs(ctx, app, run.BuildID, "", []store.LogLine{{Text: "last"}}); err != nil {
		t.Fatal(err)
	}
	must(st.TransitionRun(ctx, app, run.BuildID, store.RunRunning, store.RunFailed, "exit 1"))
	g := <-done
	if g.err != nil {
		t.Fatal(g.err)
	}
	want := []string{"before"}
	for i := range 50 {
		want = append(want, string(rune('a'+i%26)))
	}
	want = append(want, "last")
	if !slices.Equal(g.lines, want) {
		t.Fatalf("lines %q, want %q", g.lines, want)
	}
	if g.final.Status != store.RunFailed || g.statuses[len(g.statuses)-1] != "failed" || g.statuses[0] != "queued" {
		t.Fatalf("final %s, statuses %v", g.final.Status, g.statuses)
	}
}

func TestFollowLogsOfAFinishedRunStartsAfterTheGivenLineAndEnds(t *testing.T) {
	st, feed := open(t)
	ctx := ctxOf(t)
	run := newRun(t, st, app, store.TriggerPush, 0)
	for _, text := range []string{"one", "two", "three"} {
		if err := st.AppendLogs(ctx, app, run.BuildID, "t", []store.LogLine{{Text: text}}); err != nil {
			t.Fatal(err)
		}
	}
	move(t, st, run, store.RunRunning, store.RunSucceeded)
	all := must(st.ReadLogs(ctx, app, run.BuildID, store.LogQuery{}))
	var lines []string
	final, err := FollowLogs(ctx, st, feed, Follow{Ref: app, BuildID: run.BuildID, AfterID: all[0].ID},
		Emitter{Line: func(l Line) error { lines = append(lines, l.Text); return nil }}, time.Now)
	if err != nil || final.Status != store.RunSucceeded || !slices.Equal(lines, []string{"two", "three"}) {
		t.Fatalf("lines %q, status %s, err %v", lines, final.Status, err)
	}
}

func TestFollowLogsEndsWithItsContext(t *testing.T) {
	st, feed := open(t)
	run := newRun(t, st, app, store.TriggerPush, 0)
	ctx, cancel := context.WithCancel(ctxOf(t))
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	_, err := FollowLogs(ctx, st, feed, Follow{Ref: app, BuildID: run.BuildID}, Emitter{Line: func(Line) error { return nil }}, time.Now)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
}

func TestFollowLogsStopsWhenTheEmitterFails(t *testing.T) {
	st, feed := open(t)
	ctx := ctxOf(t)
	run := newRun(t, st, app, store.TriggerPush, 0)
	if err := st.AppendLogs(ctx, app, run.BuildID, "t", []store.LogLine{{Text: "x"}}); err != nil {
		t.Fatal(err)
	}
	gone := errors.New("client gone")
	if _, err := FollowLogs(ctx, st, feed, Follow{Ref: app, BuildID: run.BuildID}, Emitter{Line: func(Line) error { return gone }}, time.Now); !errors.Is(err, gone) {
		t.Fatalf("err %v", err)
	}
}

func TestPipelinesShowLastRunRevisionAndDrift(t *testing.T) {
	st, _ := open(t)
	ctx := ctxOf(t)
	other := store.PipelineRef{Repository: "other", Name: "deploy"}
	newRun(t, st, other, store.TriggerPush, 0)
	first := newRun(t, st, app, store.TriggerPush, 0)
	move(t, st, first, store.RunRunning, store.RunSucceeded)
	rev := deploy(t, st, first, "web", "")
	second := newRun(t, st, app, store.TriggerManual, 0)
	move(t, st, second, store.RunRunning)

	now := time.Now()
	ps := must(Pipelines(ctx, st, func(r store.PipelineRef) bool { return r.Repository == "app" }, now))
	if len(ps) != 1 {
		t.Fatalf("kept %d pipelines, want only app's", len(ps))
	}
	p := ps[0]
	if p.LastRun == nil || p.LastRun.BuildID != second.BuildID || p.LastRun.Status != "running" {
		t.Fatalf("last run %+v", p.LastRun)
	}
	if p.Revision == nil || p.Revision.BuildID != first.BuildID || p.Revision.Commit != "c0ffee" || p.Drift != DriftInSync {
		t.Fatalf("revision %+v drift %s", p.Revision, p.Drift)
	}
	must(st.RecordDriftEvent(ctx, store.NewDriftEvent{Pipeline: app, BuildID: first.BuildID, Task: "web", Cluster: "kind",
		Object: rev.Inventory[0], Action: store.DriftReported, DetectedAt: time.Now()}))
	p = must(PipelineOf(ctx, st, app, now))
	if p.Drift != DriftDrifted || p.DriftAt.IsZero() {
		t.Fatalf("drift %s at %s, want drifted", p.Drift, p.DriftAt)
	}
	none := must(PipelineOf(ctx, st, other, now))
	if none.Drift != DriftNone || none.Revision != nil {
		t.Fatalf("undeployed pipeline: %+v", none)
	}
	if _, err := PipelineOf(ctx, st, store.PipelineRef{Repository: "app", Name: "nope"}, now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown pipeline: %v", err)
	}
}

func TestRunDetailGroupsTasksByStage(t *testing.T) {
	st, _ := open(t)
	ctx := ctxOf(t)
	run := newRun(t, st, app, store.TriggerPush, 0)
	move(t, st, run, store.RunRunning)
	for _, nt := range []store.NewTask{{Stage: "build", Name: "image", Type: "build"}, {Stage: "build", Name: "test", Type: "script"}, {Stage: "deploy", Name: "web", Type: "deploy-yaml"}} {
		must(st.AddTask(ctx, app, run.BuildID, nt))
	}
	must(st.TransitionTask(ctx, app, run.BuildID, "image", store.TaskPending, store.TaskRunning, ""))
	must(st.TransitionTask(ctx, app, run.BuildID, "image", store.TaskRunning, store.TaskSucceeded, ""))
	if err := st.SetTaskOutputs(ctx, app, run.BuildID, "image", map[string]string{"digest": "sha256:aaaa"}); err != nil {
		t.Fatal(err)
	}
	deploy(t, st, run, "web", "prod")
	d := must(RunDetailOf(ctx, st, app, run.BuildID, time.Now()))
	if len(d.Stages) != 2 || d.Stages[0].Name != "build" || len(d.Stages[0].Tasks) != 2 || d.Stages[1].Tasks[0].Name != "web" {
		t.Fatalf("stages %+v", d.Stages)
	}
	if d.Stages[0].Status != "running" || d.Stages[1].Status != "pending" {
		t.Fatalf("stage statuses %s %s", d.Stages[0].Status, d.Stages[1].Status)
	}
	if d.Stages[0].Tasks[0].Outputs["digest"] != "sha256:aaaa" {
		t.Fatalf("outputs %v", d.Stages[0].Tasks[0].Outputs)
	}
	if len(d.Revisions) != 1 || !slices.Equal(d.Revisions[0].Images, []string{"reg/web@sha256:aaaa"}) || d.Revisions[0].Objects[0].Name != "web" {
		t.Fatalf("revisions %+v", d.Revisions)
	}
}

func TestStageStatus(t *testing.T) {
	for _, c := range []struct {
		tasks []string
		want  string
	}{
		{[]string{"succeeded", "failed"}, "failed"},
		{[]string{"skipped", "skipped"}, "skipped"},
		{[]string{"succeeded", "skipped"}, "succeeded"},
		{[]string{"pending"}, "pending"},
		{[]string{"succeeded", "pending"}, "running"},
		{[]string{"running", "timed_out"}, "timed_out"},
		{[]string{"cancelled", "pending"}, "cancelled"},
	} {
		var ts []Task
		for _, s := range c.tasks {
			ts = append(ts, Task{Status: s})
		}
		if got := stageStatus(ts); got != c.want {
			t.Errorf("%v: %s, want %s", c.tasks, got, c.want)
		}
	}
}

func TestDeploymentsNameTheArtifactOfAPromotion(t *testing.T) {
	st, _ := open(t)
	ctx := ctxOf(t)
	built := newRun(t, st, app, store.TriggerPush, 0)
	move(t, st, built, store.RunRunning, store.RunSucceeded)
	deploy(t, st, built, "web.staging", "staging")
	promo := newRun(t, st, app, store.TriggerPromote, built.BuildID)
	move(t, st, promo, store.RunRunning, store.RunSucceeded)
	deploy(t, st, promo, "web.prod", "prod")
	ds := must(Deployments(ctx, st, nil))
	if len(ds) != 2 {
		t.Fatalf("%d deployments", len(ds))
	}
	prod, staging := ds[0], ds[1]
	if prod.Environment != "prod" || prod.Task != "web" || prod.BuildID != built.BuildID || prod.DeployedBy != promo.BuildID {
		t.Fatalf("prod %+v", prod)
	}
	if staging.BuildID != built.BuildID || staging.DeployedBy != built.BuildID || staging.Images[0] != "reg/web@sha256:aaaa" {
		t.Fatalf("staging %+v", staging)
	}
	if ds := must(Deployments(ctx, st, func(store.PipelineRef) bool { return false })); len(ds) != 0 {
		t.Fatalf("keep dropped nothing: %+v", ds)
	}
}

func TestRunsAndApprovalsKeepOnlyWhatKeepKeeps(t *testing.T) {
	st, _ := open(t)
	ctx := ctxOf(t)
	other := store.PipelineRef{Repository: "other", Name: "deploy"}
	a := newRun(t, st, app, store.TriggerPush, 0)
	move(t, st, a, store.RunRunning, store.RunAwaitingApproval)
	b := newRun(t, st, other, store.TriggerPush, 0)
	move(t, st, b, store.RunRunning, store.RunAwaitingApproval)
	onlyApp := func(r store.PipelineRef) bool { return r.Repository == "app" }
	list := must(Runs(ctx, st, store.RunFilter{}, onlyApp, time.Now()))
	if len(list.Runs) != 1 || list.Runs[0].Repository != "app" {
		t.Fatalf("runs %+v", list.Runs)
	}
	waiting := must(Approvals(ctx, st, nil, time.Now()))
	if len(waiting) != 2 {
		t.Fatalf("approvals %+v", waiting)
	}
	if waiting := must(Approvals(ctx, st, onlyApp, time.Now())); len(waiting) != 1 || waiting[0].Pipeline != "deploy" || waiting[0].Repository != "app" {
		t.Fatalf("approvals of app %+v", waiting)
	}
}

func TestAuditKeepsBeforeTheLimit(t *testing.T) {
	st, _ := open(t)
	ctx := ctxOf(t)
	other := store.PipelineRef{Repository: "other", Name: "deploy"}
	for i, ref := range []store.PipelineRef{app, other, other, other} {
		must(st.RecordAudit(ctx, store.AuditEntry{Actor: "alice", Action: store.AuditTrigger, Pipeline: ref, BuildID: int64(i + 1)}))
	}
	got := must(Audit(ctx, st, store.AuditFilter{}, func(r store.PipelineRef) bool { return r == app }, 1))
	if len(got) != 1 || got[0].Repository != "app" || got[0].Actor != "alice" {
		t.Fatalf("audit %+v", got)
	}
	if got := must(Audit(ctx, st, store.AuditFilter{}, nil, 2)); len(got) != 2 || got[0].BuildID != 4 {
		t.Fatalf("newest two: %+v", got)
	}
}

func TestDriftEventsShowWhoChangedWhat(t *testing.T) {
	st, _ := open(t)
	ctx := ctxOf(t)
	run := newRun(t, st, app, store.TriggerPush, 0)
	rev := deploy(t, st, run, "web", "")
	must(st.RecordDriftEvent(ctx, store.NewDriftEvent{Pipeline: app, BuildID: run.BuildID, Task: "web", Cluster: "kind",
		Object: rev.Inventory[0], Action: store.DriftCorrected, Patch: `[{"op":"replace","path":"/spec/replicas","value":2}]`,
		Manager: "kubectl-edit", DetectedAt: time.Now()}))
	ev := must(DriftEvents(ctx, st, app, 10))
	if len(ev) != 1 || ev[0].Manager != "kubectl-edit" || ev[0].Object.Kind != "Deployment" || ev[0].Action != "corrected" {
		t.Fatalf("events %+v", ev)
	}
}
