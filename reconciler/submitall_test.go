package reconciler

import (
	"context"
	"errors"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/sources"
	"github.com/slipwayhq/slipway/store"
)

// SubmitAll records a push's runs, with their tasks, and the head they handle in one
// transaction: a suspended pipeline is refused on its own and the head is still recorded;
// the same head claimed again records nothing, and uses up no BUILD_ID.
func TestSubmitAllRecordsTheRunsWithTheHeadTheyHandle(t *testing.T) {
	ctx := context.Background()
	st := testStore(t)
	runner := NewRunner(RunnerOptions{Store: st, Sources: emptyCheckout{}, Config: &config.Config{DataDir: t.TempDir()},
		Log: logrus.NewEntry(logrus.New())})
	d, _ := startTestDispatcher(t, runner, st)
	web, api := gatedPipeline(t, "", ""), gatedPipeline(t, "", "")
	web.Name, api.Name = "web", "api"
	apiRef := store.PipelineRef{Repository: testRef.Repository, Name: "api"}
	if _, _, err := st.(*store.DB).SetSuspended(ctx, apiRef, true, "ops", "freeze"); err != nil {
		t.Fatal(err)
	}
	co := &Checkout{Repo: sources.Repo{Name: testRef.Repository}, Branch: "main", Commit: sources.Commit{Hash: "c2"}}
	jobs := []Job{RunJob(co, web, store.TriggerPush, 0), RunJob(co, api, store.TriggerPush, 0)}
	head := store.Handled{Head: &store.HeadClaim{Repository: testRef.Repository, Branch: "main", To: "c2"}}

	out, err := d.SubmitAll(ctx, jobs, head)
	if err != nil {
		t.Fatal(err)
	}
	var suspended *SuspendedError
	if out[0].Err != nil || out[0].Run.BuildID != 1 || !errors.As(out[1].Err, &suspended) {
		t.Fatalf("web %+v, api %+v; want web recorded as BUILD_ID 1, api refused as suspended", out[0], out[1])
	}
	webRef := store.PipelineRef{Repository: testRef.Repository, Name: "web"}
	if tasks, err := st.ListTasks(ctx, webRef, 1); err != nil || len(tasks) != 1 || tasks[0].Name != "smoke" {
		t.Fatalf("web's tasks: %+v, %v", tasks, err)
	}
	if got, err := st.(*store.DB).HandledHead(ctx, testRef.Repository, "main"); err != nil || got != "c2" {
		t.Fatalf("handled head %q, %v; want c2", got, err)
	}
	waitStatus(t, st, out[0].Run, store.RunAwaitingApproval)

	// Another process that read the head before c2 loses: nothing recorded.
	if _, err := d.SubmitAll(ctx, jobs[:1], head); !errors.Is(err, store.ErrHandledElsewhere) {
		t.Fatalf("the same head again: %v, want ErrHandledElsewhere", err)
	}
	if runs, _ := st.ListRuns(ctx, webRef, 0); len(runs) != 1 {
		t.Fatalf("%d runs of web, want 1", len(runs))
	}
	next := store.Handled{Head: &store.HeadClaim{Repository: testRef.Repository, Branch: "main", From: "c2", To: "c3"}}
	co3 := &Checkout{Repo: co.Repo, Branch: "main", Commit: sources.Commit{Hash: "c3"}}
	if out, err := d.SubmitAll(ctx, []Job{RunJob(co3, web, store.TriggerPush, 0)}, next); err != nil || out[0].Run.BuildID != 2 {
		t.Fatalf("the next head: %+v, %v; want BUILD_ID 2", out, err)
	}
}
