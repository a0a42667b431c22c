package trigger

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/store"
)

// storeRuns records push runs in a real store, with the head or tag they handle, as the
// dispatcher does; at, when set, is where the process dies: "before" the transaction,
// "during" it (under a cancelled context it never commits) or "after" it committed.
type storeRuns struct {
	*fakeRuns
	st     *store.DB
	at     string
	cancel context.CancelFunc
}

func (r *storeRuns) SubmitAll(ctx context.Context, jobs []reconciler.Job, h store.Handled) ([]reconciler.Queued, error) {
	var nrs []store.NewRun
	for _, j := range jobs {
		co := j.Checkout()
		nrs = append(nrs, store.NewRun{Pipeline: j.Ref, Commit: co.Commit.Hash, Branch: co.Branch, Tag: co.Tag, Trigger: j.Trigger})
	}
	switch r.at {
	case "before":
		r.cancel()
		return nil, ctx.Err()
	case "during":
		r.cancel()
	}
	runs, err := r.st.CreateRuns(ctx, nrs, h)
	if err != nil {
		return nil, err
	}
	if r.at == "after" {
		r.cancel()
		return nil, ctx.Err()
	}
	out := make([]reconciler.Queued, len(runs))
	for i, run := range runs {
		out[i].Run = run
	}
	return out, nil
}

// Whichever step of starting a push's runs the watcher dies at, the watcher that carries
// on from the store (a restart, or the replica taking the repository over) leaves each
// matching pipeline with exactly one run of the pushed commit, and a pipeline whose path
// filter the push misses with none.
func TestACrashWhileStartingAPushLeavesExactlyOneRunEach(t *testing.T) {
	for _, at := range []string{"before", "during", "after"} {
		t.Run(at, func(t *testing.T) {
			ctx := context.Background()
			st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "slipway.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			if err := st.SetHandledHead(ctx, testRepo.Name, testBranch, sha("c1")); err != nil {
				t.Fatal(err)
			}
			r := newRig(t, 0, commitOf("c1", "first"), commitOf("c2", "second"))
			r.files.files[sha("c2")] = []*pipeline.Pipeline{pl("web", nil), pl("api", nil),
				pl("docs", &pipeline.PushTrigger{Paths: []string{"docs/**"}})}
			r.git.changed["c1..c2"] = []string{"src/main.go"}
			r.git.setHead(sha("c2"))
			watcher := func(runs Runs) *BranchWatcher {
				return NewBranchWatcher(BranchWatcherOptions{Git: r.git, Pipelines: r.files, Runs: runs, Records: st,
					Repo: testRepo, Branch: testBranch, Metrics: r.metrics, Audit: st, Log: quietLog()})
			}

			dyingCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			dying := watcher(&storeRuns{fakeRuns: r.runs, st: st, at: at, cancel: cancel})
			dying.states = map[string]*branchState{}
			if err := dying.lookAll(dyingCtx, nil); err == nil {
				t.Fatal("the dying look reported no error")
			}

			next := watcher(&storeRuns{fakeRuns: r.runs, st: st})
			for look := 1; look <= 2; look++ {
				next.states = map[string]*branchState{} // a fresh process each time
				if err := next.lookAll(ctx, nil); err != nil {
					t.Fatalf("look %d of the next owner: %v", look, err)
				}
			}
			for name, want := range map[string]int{"web": 1, "api": 1, "docs": 0} {
				runs, err := st.ListRuns(ctx, store.PipelineRef{Repository: testRepo.Name, Name: name}, 0)
				if err != nil || len(runs) != want {
					t.Fatalf("%s: %d runs (%v), want %d", name, len(runs), err, want)
				}
				if want == 1 && (runs[0].Commit != sha("c2") || runs[0].BuildID != 1) {
					t.Fatalf("%s: run %+v, want BUILD_ID 1 at c2", name, runs[0])
				}
			}
			if head, err := st.HandledHead(ctx, testRepo.Name, testBranch); err != nil || head != sha("c2") {
				t.Fatalf("handled head %q, %v; want c2", head, err)
			}
		})
	}
}
