package trigger

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/store"
)

func tagged(name string, globs ...string) *pipeline.Pipeline {
	return &pipeline.Pipeline{Name: name, Triggers: &pipeline.Triggers{Tags: globs}}
}

func (r *rig) lookAll(t *testing.T) {
	t.Helper()
	if err := r.w.lookAll(context.Background(), nil); err != nil {
		t.Fatalf("lookAll: %v", err)
	}
}

func TestTagsRunOnceAndChangesAreRecorded(t *testing.T) {
	r := newRig(t, time.Minute, commitOf("c1", ""), commitOf("c2", ""), commitOf("c3", ""))
	for _, c := range []string{"c1", "c2", "c3"} {
		r.files.files[sha(c)] = []*pipeline.Pipeline{pl("web", &pipeline.PushTrigger{}), tagged("release", "v*")}
	}
	r.records.head = sha("c1")
	r.git.setHead(sha("c1"))
	r.git.tags["v0.9.0"] = sha("c1")

	// The first look records the tags there are and runs none of them.
	r.lookAll(t)
	if submitted, _, _ := r.runs.jobs(); len(submitted) != 0 {
		t.Fatalf("the first look ran %v", describe(submitted))
	}
	if got := r.records.tagRefs["v0.9.0"]; got.State != store.TagBaseline {
		t.Fatalf("v0.9.0 recorded as %+v, want baseline", got)
	}

	// A new matching tag runs the tag's pipelines only, at the tagged commit, once, however
	// often it is seen.
	r.git.tags["v1.4.0"] = sha("c2")
	r.git.tags["nightly-1"] = sha("c2")
	r.lookAll(t)
	r.lookAll(t)
	submitted, _, _ := r.runs.jobs()
	if got := describe(submitted); !slices.Equal(got, []string{"release@c2/push"}) {
		t.Fatalf("started %v, want release at c2 once", got)
	}
	if co := submitted[0].Checkout(); co.Tag != "v1.4.0" || co.Branch != "" {
		t.Fatalf("the run's checkout: tag %q branch %q, want v1.4.0 and none", co.Tag, co.Branch)
	}
	if got := r.records.tagRefs["nightly-1"]; got.State != store.TagHandled {
		t.Fatalf("a tag matching no pipeline: %+v, want handled", got)
	}
	if fetched := r.git.tagFetches; !slices.Equal(fetched, []string{"nightly-1", "v1.4.0"}) {
		t.Fatalf("fetched tags %v, want each new tag once", fetched)
	}

	// Moved: recorded against its run, not run again; deleted: recorded too.
	ref := store.PipelineRef{Repository: "app", Name: "release"}
	r.records.runs[ref] = []store.Run{{Pipeline: ref, BuildID: 1, Commit: sha("c2"), Tag: "v1.4.0"}}
	r.git.tags["v1.4.0"] = sha("c3")
	r.lookAll(t)
	r.lookAll(t)
	delete(r.git.tags, "v1.4.0")
	r.lookAll(t)
	if submitted, _, _ := r.runs.jobs(); len(submitted) != 1 {
		t.Fatalf("a moved tag ran again: %v", describe(submitted))
	}
	if len(r.records.audit) != 2 {
		t.Fatalf("audit = %+v, want one moved and one deleted entry", r.records.audit)
	}
	moved, deleted := r.records.audit[0], r.records.audit[1]
	if moved.Action != store.AuditTagMoved || moved.Pipeline != ref || moved.BuildID != 1 || moved.Actor != "slipway" {
		t.Fatalf("moved entry %+v", moved)
	}
	if deleted.Action != store.AuditTagDeleted || deleted.BuildID != 1 {
		t.Fatalf("deleted entry %+v", deleted)
	}
	if got := r.records.tagRefs["v1.4.0"]; got.State != store.TagDeleted {
		t.Fatalf("v1.4.0 recorded as %+v, want deleted", got)
	}

	// Pushed again after the deletion: recorded, not run.
	r.git.tags["v1.4.0"] = sha("c3")
	r.lookAll(t)
	if submitted, _, _ := r.runs.jobs(); len(submitted) != 1 || len(r.records.audit) != 3 {
		t.Fatalf("a re-pushed tag: runs %v, audit %d entries", describe(submitted), len(r.records.audit))
	}
}

func TestLookAllListsOnceForAnUnchangedRepository(t *testing.T) {
	r := newRig(t, time.Minute, commitOf("c1", ""))
	r.files.files[sha("c1")] = []*pipeline.Pipeline{pl("web", nil)}
	r.records.head = sha("c1")
	r.git.setHead(sha("c1"))
	r.lookAll(t) // reads the head's file once, for the schedules
	r.lookAll(t)
	r.lookAll(t)
	syncs, _, _ := r.git.counts()
	if r.git.refs != 3 || syncs != 1 || len(r.files.prepared()) != 1 {
		t.Fatalf("three looks: %d listings, %d syncs, %d prepares; want 3, 1, 1", r.git.refs, syncs, len(r.files.prepared()))
	}
}

func TestSeveralBranchesRunWithTheirBranch(t *testing.T) {
	r := newRig(t, time.Minute, commitOf("c1", ""), commitOf("c2", ""), commitOf("c3", ""))
	r.w = NewBranchWatcher(BranchWatcherOptions{Git: r.git, Pipelines: r.files, Runs: r.runs, Records: r.records,
		Repo: testRepo, Branch: testBranch, Branches: []string{testBranch, "release/*"}, Interval: time.Minute,
		Schedules: r.schedules, Metrics: r.metrics, Audit: r.records, Log: quietLog()})
	for _, c := range []string{"c1", "c2", "c3"} {
		r.files.files[sha(c)] = []*pipeline.Pipeline{pl("web", nil)}
	}
	r.records.head = sha("c1") // main is handled
	r.git.setHead(sha("c1"))
	r.git.others["release/1.4"] = sha("c2")
	r.git.others["feature/x"] = sha("c3")
	r.lookAll(t)
	submitted, _, _ := r.runs.jobs()
	if got := describe(submitted); !slices.Equal(got, []string{"web@c2/push"}) {
		t.Fatalf("started %v, want web at release/1.4's head only", got)
	}
	if b := submitted[0].Checkout().Branch; b != "release/1.4" {
		t.Fatalf("the run's branch %q, want release/1.4", b)
	}
	if got := r.schedules.got(); !slices.Equal(got, []string{"app: web"}) {
		t.Fatalf("schedules set %v, want the default branch's once", got)
	}
	if !r.w.Tracks("release/2") || r.w.Tracks("feature/x") {
		t.Fatal("Tracks does not follow the branch globs")
	}
}

// A new tag at a commit without a pipeline file is handled, with a warning, not an error.
func TestTagAtACommitWithoutPipelineFile(t *testing.T) {
	r := newRig(t, time.Minute, commitOf("c1", ""), commitOf("c2", ""))
	r.files.files[sha("c1")] = []*pipeline.Pipeline{tagged("release", "v*")}
	r.files.errs[sha("c2")] = &reconciler.PrepareError{Commit: sha("c2"), Err: pipeline.ErrNoFile}
	r.records.head = sha("c1")
	r.git.setHead(sha("c1"))
	r.lookAll(t)
	r.logs.Reset()

	r.git.tags["v2.0.0"] = sha("c2")
	r.lookAll(t)
	if got := r.records.tagRefs["v2.0.0"]; got.State != store.TagHandled {
		t.Fatalf("v2.0.0 recorded as %+v, want handled", got)
	}
	if entries := r.logs.AllEntries(); len(entries) != 1 || entries[0].Level != logrus.WarnLevel || entries[0].Data["tag"] != "v2.0.0" {
		t.Fatalf("logged %v, want one warning for the tag", levels(entries))
	}
}
