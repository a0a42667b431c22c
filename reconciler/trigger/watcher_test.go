package trigger

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"weak"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/store"
)

func (r *rig) polls(result string) float64 {
	return testutil.ToFloat64(r.metrics.polls.WithLabelValues(testRepo.Name, result))
}

func (r *rig) skips(reason string) float64 {
	return testutil.ToFloat64(r.metrics.skipped.WithLabelValues(testRepo.Name, reason))
}

func (r *rig) look(t *testing.T, last string, hints ...Hint) string {
	t.Helper()
	got, err := r.w.look(context.Background(), last, hints)
	if err != nil {
		t.Fatalf("look: %v", err)
	}
	return got
}

func TestLookAtUnchangedBranchReadsNothingAgain(t *testing.T) {
	r := newRig(t, time.Minute, commitOf("c1", "first"))
	r.files.files[sha("c1")] = []*pipeline.Pipeline{pl("web", nil)}
	r.git.setHead(sha("c1"))

	// The first look of a process reads the head's file once (the scheduler needs its
	// schedules) but starts nothing: the head is the one handled last.
	if got := r.look(t, sha("c1")); got != sha("c1") {
		t.Fatalf("look returned %s, want the unchanged head", got)
	}
	if n := len(r.files.prepared()); n != 1 {
		t.Fatalf("first look prepared %d times, want 1", n)
	}
	if got := r.schedules.got(); !slices.Equal(got, []string{"app: web"}) {
		t.Fatalf("schedules set %v, want the head's pipelines once", got)
	}

	if got := r.look(t, sha("c1")); got != sha("c1") {
		t.Fatalf("second look returned %s", got)
	}
	syncs, commits, changed := r.git.counts()
	if syncs != 2 || len(r.files.prepared()) != 1 || len(commits) != 0 || len(changed) != 0 {
		t.Fatalf("a look at an unchanged branch: %d syncs, %d prepares, commits %v, diffs %v; want one sync per look and nothing else",
			syncs, len(r.files.prepared()), commits, changed)
	}
	if submitted, sup, _ := r.runs.jobs(); len(submitted)+len(sup) != 0 {
		t.Fatalf("unchanged branch started %v, recorded %v", describe(submitted), describe(sup))
	}
	if heads := r.records.handledHeads(); len(heads) != 0 {
		t.Fatalf("unchanged branch recorded handled heads %v", heads)
	}
	if r.polls("unchanged") != 2 || r.polls("changed") != 0 {
		t.Fatalf("polls unchanged=%v changed=%v, want 2 and 0", r.polls("unchanged"), r.polls("changed"))
	}
	if n := testutil.ToFloat64(r.metrics.received.WithLabelValues("app", "poll")); n != 0 {
		t.Fatalf("an unchanged branch counted %v poll triggers", n)
	}
	if len(r.schedules.got()) != 1 {
		t.Fatalf("schedules set again for the same head: %v", r.schedules.got())
	}
}

func TestLookAtNewHeadStartsMatchingPipelines(t *testing.T) {
	r := newRig(t, time.Minute, commitOf("c1", "before"), commitOf("c2", "change the app"))
	r.files.files[sha("c2")] = []*pipeline.Pipeline{
		pl("web", nil), // no triggers: every push to the tracked branch
		pl("docs", &pipeline.PushTrigger{Paths: []string{"docs/**"}}),
		pl("api", &pipeline.PushTrigger{Paths: []string{"app/**"}}),
		pl("release", &pipeline.PushTrigger{Branches: []string{"release/*"}}),
		{Name: "nightly", Triggers: &pipeline.Triggers{Schedules: []pipeline.Schedule{{Cron: "@daily"}}}},
		pl("main-only", &pipeline.PushTrigger{Branches: []string{"ma*"}}),
		pl("site", &pipeline.PushTrigger{Paths: []string{"site/**"}}),
	}
	// api deployed c0 last; the newer rollback and the failed run at c1 do not count, so
	// its paths are those changed since c0. docs never deployed: since the head handled last.
	api := store.PipelineRef{Repository: "app", Name: "api"}
	r.records.runs[api] = []store.Run{
		{Commit: sha("cR"), Trigger: store.TriggerRollback, Status: store.RunSucceeded},
		{Commit: sha("c1"), Trigger: store.TriggerPush, Status: store.RunFailed},
		{Commit: sha("c0"), Trigger: store.TriggerPush, Status: store.RunSucceeded},
	}
	r.git.changed["c0..c2"] = []string{"app/main.go", "README.md"}
	r.git.changed["c1..c2"] = []string{"README.md"}
	r.git.setHead(sha("c2"))

	if got := r.look(t, sha("c1")); got != sha("c2") {
		t.Fatalf("look returned %s, want the new head", got)
	}
	submitted, sup, _ := r.runs.jobs()
	if want := []string{"web@c2/push", "api@c2/push", "main-only@c2/push"}; !slices.Equal(describe(submitted), want) {
		t.Fatalf("started %v, want %v", describe(submitted), want)
	}
	if len(sup) != 0 {
		t.Fatalf("recorded superseded %v without hints", describe(sup))
	}
	for _, j := range submitted {
		if j.Checkout().Branch != testBranch || j.Parent != 0 || j.Checkout().Repo.Name != "app" {
			t.Fatalf("job %+v: want the tracked branch, no parent", j)
		}
	}
	_, _, changed := r.git.counts()
	if slices.Contains(changed, "cR..c2") || !slices.Contains(changed, "c0..c2") || !slices.Contains(changed, "c1..c2") {
		t.Fatalf("diffs asked %v: want api's since its last successful deploy (c0) and docs' since the handled head (c1)", changed)
	}
	// Only pipelines with path filters need a diff, and docs and site (both never deployed)
	// share theirs.
	if len(changed) != 2 {
		t.Fatalf("diffs asked %v: want c0..c2 and c1..c2 once each", changed)
	}
	if heads := r.records.handledHeads(); !slices.Equal(heads, []string{sha("c2")}) {
		t.Fatalf("handled heads %v, want c2", heads)
	}
	if got := r.schedules.got(); !slices.Equal(got, []string{"app: web, docs, api, release, nightly, main-only, site"}) {
		t.Fatalf("schedules set %v, want the head's pipelines", got)
	}
	if r.polls("changed") != 1 || testutil.ToFloat64(r.metrics.received.WithLabelValues("app", "poll")) != 1 || r.skips("no_match") != 0 {
		t.Fatal("a new head found by polling: want one changed poll, one poll trigger, no no_match skip")
	}
	if req := r.files.prepared(); len(req) != 1 || req[0].Commit != sha("c2") || req[0].Repo.Name != "app" {
		t.Fatalf("prepared %+v, want c2 once", req)
	}

	// The same head again: cached, nothing read, nothing started.
	if got := r.look(t, sha("c2")); got != sha("c2") {
		t.Fatalf("second look returned %s", got)
	}
	if n := len(r.files.prepared()); n != 1 {
		t.Fatalf("the same head was prepared %d times, want 1", n)
	}
	if submitted, _, _ := r.runs.jobs(); len(submitted) != 3 {
		t.Fatalf("the same head started runs again: %v", describe(submitted))
	}
	if len(r.schedules.got()) != 1 {
		t.Fatalf("schedules set again for the same head: %v", r.schedules.got())
	}
}

func TestLookLetsPathFiltersThroughWhenChangesAreUnknown(t *testing.T) {
	r := newRig(t, time.Minute, commitOf("c1", ""), commitOf("c2", ""))
	r.files.files[sha("c2")] = []*pipeline.Pipeline{pl("docs", &pipeline.PushTrigger{Paths: []string{"docs/**"}})}
	r.git.changedErr = errors.New("shallow mirror")
	r.git.setHead(sha("c2"))
	r.look(t, sha("c1"))
	if submitted, _, _ := r.runs.jobs(); !slices.Equal(describe(submitted), []string{"docs@c2/push"}) {
		t.Fatalf("started %v: a failed diff must let path filters through", describe(submitted))
	}

	// No head handled before (a first start): the changes are unknown too, and nothing is diffed.
	r = newRig(t, time.Minute, commitOf("c2", ""))
	r.files.files[sha("c2")] = []*pipeline.Pipeline{pl("docs", &pipeline.PushTrigger{Paths: []string{"docs/**"}})}
	r.git.setHead(sha("c2"))
	r.look(t, "")
	if submitted, _, _ := r.runs.jobs(); !slices.Equal(describe(submitted), []string{"docs@c2/push"}) {
		t.Fatalf("first look started %v, want docs", describe(submitted))
	}
	if _, _, changed := r.git.counts(); len(changed) != 0 {
		t.Fatalf("diffs asked %v with no base", changed)
	}
}

func TestLookWithNothingMatchingHandlesTheHead(t *testing.T) {
	r := newRig(t, time.Minute, commitOf("c1", ""), commitOf("c2", ""))
	r.files.files[sha("c2")] = []*pipeline.Pipeline{pl("docs", &pipeline.PushTrigger{Paths: []string{"docs/**"}})}
	r.git.changed["c1..c2"] = []string{"app/main.go"}
	r.git.setHead(sha("c2"))
	if got := r.look(t, sha("c1")); got != sha("c2") {
		t.Fatalf("look returned %s", got)
	}
	if submitted, _, _ := r.runs.jobs(); len(submitted) != 0 {
		t.Fatalf("started %v, want nothing", describe(submitted))
	}
	if heads := r.records.handledHeads(); !slices.Equal(heads, []string{sha("c2")}) {
		t.Fatalf("handled heads %v, want c2", heads)
	}
	if r.skips("no_match") != 1 {
		t.Fatalf("no_match skips %v, want 1", r.skips("no_match"))
	}
}

func TestLookKeepsTheHeadHandledWhenASubmitFails(t *testing.T) {
	r := newRig(t, time.Minute, commitOf("c1", ""), commitOf("c2", ""))
	r.files.files[sha("c2")] = []*pipeline.Pipeline{pl("web", nil), pl("api", nil)}
	r.runs.submitErr["web"] = errors.New("store is read-only")
	r.git.changed["c1..c2"] = []string{"README.md"}
	r.git.setHead(sha("c2"))
	if got := r.look(t, sha("c1")); got != sha("c2") {
		t.Fatalf("look returned %s", got)
	}
	if submitted, _, _ := r.runs.jobs(); !slices.Equal(describe(submitted), []string{"api@c2/push"}) {
		t.Fatalf("started %v, want api (web's submit failed)", describe(submitted))
	}
	// Looking again would start api a second time.
	if heads := r.records.handledHeads(); !slices.Equal(heads, []string{sha("c2")}) {
		t.Fatalf("handled heads %v, want c2", heads)
	}
}

func TestLookSkipMarkerStartsNothing(t *testing.T) {
	for _, msg := range []string{"docs: typo [skip ci]", "wip [ci skip]", "[no ci] bump", "Tidy [SKIP CI]", "notes\n\n[skip slipway]"} {
		t.Run(msg, func(t *testing.T) {
			r := newRig(t, time.Minute, commitOf("c1", ""), commitOf("c2", msg))
			r.files.files[sha("c2")] = []*pipeline.Pipeline{pl("web", nil)}
			r.git.setHead(sha("c2"))
			if got := r.look(t, sha("c1")); got != sha("c2") {
				t.Fatalf("look returned %s, want the head handled", got)
			}
			if submitted, _, _ := r.runs.jobs(); len(submitted) != 0 {
				t.Fatalf("started %v for a commit asking to skip", describe(submitted))
			}
			if heads := r.records.handledHeads(); !slices.Equal(heads, []string{sha("c2")}) {
				t.Fatalf("handled heads %v, want c2", heads)
			}
			if r.skips("skip_ci") != 1 || r.skips("no_match") != 0 {
				t.Fatalf("skips skip_ci=%v no_match=%v, want 1 and 0", r.skips("skip_ci"), r.skips("no_match"))
			}
			// Schedules still follow the file: a skip marker is about push triggers.
			if len(r.schedules.got()) != 1 {
				t.Fatalf("schedules set %v, want once", r.schedules.got())
			}
		})
	}
}

func TestLookSkipMarkerOnHeadRecordsOvertakenPushWithReason(t *testing.T) {
	r := newRig(t, time.Minute, commitOf("c1", ""), commitOf("c2", "feature"), commitOf("c3", "fixup [skip ci]"))
	r.files.files[sha("c3")] = []*pipeline.Pipeline{pl("web", nil)}
	r.git.changed["c1..c2"] = []string{"README.md"}
	r.git.setHead(sha("c3"))
	r.look(t, sha("c1"), Hint{DeliveryID: "d2", Branch: testBranch, Commit: sha("c2")})
	submitted, sup, reasons := r.runs.jobs()
	if len(submitted) != 0 || !slices.Equal(describe(sup), []string{"web@c2/push"}) {
		t.Fatalf("started %v, superseded %v; want only web@c2 recorded", describe(submitted), describe(sup))
	}
	if !strings.Contains(reasons[0], "c300000") || !strings.Contains(reasons[0], "skip CI") {
		t.Fatalf("reason %q should name the head and its skip", reasons[0])
	}
}

func TestLookInvalidPipelineFileHandlesTheHead(t *testing.T) {
	r := newRig(t, time.Minute, commitOf("c1", ""), commitOf("c2", ""), commitOf("c3", ""))
	r.files.files[sha("c1")] = []*pipeline.Pipeline{pl("web", nil)}
	r.files.files[sha("c3")] = []*pipeline.Pipeline{pl("web", nil)}
	r.git.changed["c2..c3"] = []string{"README.md"}
	r.files.errs[sha("c2")] = &reconciler.PrepareError{Commit: sha("c2"), Err: errors.New(".pipeline.yaml:3: stages: required")}
	r.git.setHead(sha("c1"))
	r.look(t, sha("c1"))

	r.git.setHead(sha("c2"))
	got, err := r.w.look(context.Background(), sha("c1"), nil)
	if err != nil || got != sha("c2") {
		t.Fatalf("look at an invalid file = %s, %v; want the head handled without error", got, err)
	}
	if submitted, sup, _ := r.runs.jobs(); len(submitted)+len(sup) != 0 {
		t.Fatalf("an invalid file started %v, recorded %v", describe(submitted), describe(sup))
	}
	if heads := r.records.handledHeads(); !slices.Equal(heads, []string{sha("c2")}) {
		t.Fatalf("handled heads %v, want c2 (not retried after a restart)", heads)
	}
	if len(r.schedules.got()) != 1 {
		t.Fatalf("schedules %v: an invalid file must leave the last valid ones", r.schedules.got())
	}

	// Later looks at the same head neither read the file again nor log it again.
	for range 2 {
		if got, err := r.w.look(context.Background(), sha("c2"), nil); err != nil || got != sha("c2") {
			t.Fatalf("look again at the invalid head = %s, %v", got, err)
		}
	}
	if n := len(r.files.prepared()); n != 2 {
		t.Fatalf("prepared %d times, want 2 (c1, then c2 once)", n)
	}
	if heads := r.records.handledHeads(); len(heads) != 1 {
		t.Fatalf("handled heads %v, want c2 recorded once", heads)
	}
	if r.polls("unchanged") != 3 {
		t.Fatalf("unchanged polls %v, want 3 (c1's first look, then c2 twice)", r.polls("unchanged"))
	}

	// The next valid commit runs.
	r.git.setHead(sha("c3"))
	r.look(t, sha("c2"))
	if submitted, _, _ := r.runs.jobs(); !slices.Equal(describe(submitted), []string{"web@c3/push"}) {
		t.Fatalf("started %v, want web@c3", describe(submitted))
	}
}

func TestLookTransientPrepareErrorLeavesTheHeadUnhandled(t *testing.T) {
	r := newRig(t, time.Minute, commitOf("c1", ""), commitOf("c2", ""))
	r.files.files[sha("c2")] = []*pipeline.Pipeline{pl("web", nil)}
	r.files.errs[sha("c2")] = errors.New("checkout: no space left on device")
	r.git.changed["c1..c2"] = []string{"README.md"}
	r.git.setHead(sha("c2"))
	got, err := r.w.look(context.Background(), sha("c1"), nil)
	if err == nil || got != sha("c1") {
		t.Fatalf("look = %s, %v; want the error and the old head", got, err)
	}
	if heads := r.records.handledHeads(); len(heads) != 0 {
		t.Fatalf("handled heads %v after a transient error", heads)
	}
	if submitted, _, _ := r.runs.jobs(); len(submitted) != 0 {
		t.Fatalf("started %v", describe(submitted))
	}

	delete(r.files.errs, sha("c2"))
	r.look(t, sha("c1"))
	if submitted, _, _ := r.runs.jobs(); !slices.Equal(describe(submitted), []string{"web@c2/push"}) {
		t.Fatalf("retry started %v, want web@c2", describe(submitted))
	}

	// A failed ref listing is an error too, and reads nothing else.
	r.git.syncErr = errors.New("connection refused")
	if got, err := r.w.look(context.Background(), sha("c2"), nil); err == nil || got != sha("c2") {
		t.Fatalf("look with a failed sync = %s, %v", got, err)
	}
	if n := len(r.files.prepared()); n != 2 {
		t.Fatalf("prepared %d times, want 2", n)
	}
}

func TestLookRecordsOvertakenPushes(t *testing.T) {
	r := newRig(t, time.Minute, commitOf("c1", ""), commitOf("c2", "second"), commitOf("c3", "third"),
		commitOf("c4", "head"))
	r.files.files[sha("c4")] = []*pipeline.Pipeline{
		pl("web", nil),
		pl("api", &pipeline.PushTrigger{Paths: []string{"app/**"}}),
	}
	// c2 changed only the readme (api would not have run); c3 touched the app.
	r.git.changed["c1..c2"] = []string{"README.md"}
	r.git.changed["c1..c3"] = []string{"app/x.go"}
	r.git.changed["c1..c4"] = []string{"app/x.go"}
	r.git.setHead(sha("c4"))
	hints := []Hint{
		{DeliveryID: "d2", Branch: testBranch, Commit: sha("c2")},
		{DeliveryID: "d3", Commit: sha("c3")}, // the forge did not name the branch
		{DeliveryID: "d2-again", Branch: testBranch, Commit: sha("c2")},
		{DeliveryID: "d4", Branch: testBranch, Commit: sha("c4")},
		{DeliveryID: "d1", Branch: testBranch, Commit: sha("c1")}, // the head handled last
		{DeliveryID: "dx", Branch: testBranch},                    // no commit named
	}
	r.look(t, sha("c1"), hints...)
	submitted, sup, reasons := r.runs.jobs()
	if want := []string{"web@c2/push", "web@c3/push", "api@c3/push"}; !slices.Equal(describe(sup), want) {
		t.Fatalf("superseded %v, want %v", describe(sup), want)
	}
	for _, reason := range reasons {
		if reason != "superseded by commit c400000, pushed before this one could start" {
			t.Fatalf("reason %q should name the head", reason)
		}
	}
	if want := []string{"web@c4/push", "api@c4/push"}; !slices.Equal(describe(submitted), want) {
		t.Fatalf("started %v, want %v", describe(submitted), want)
	}
	if _, commits, _ := r.git.counts(); !slices.Equal(commits, []string{sha("c2"), sha("c3")}) {
		t.Fatalf("commits read %v, want c2 and c3 once each", commits)
	}

	// A late redelivery of the same push, after the head was handled, is recorded once only.
	r.look(t, sha("c4"), Hint{DeliveryID: "d2-late", Branch: testBranch, Commit: sha("c2")})
	if _, sup, _ := r.runs.jobs(); len(sup) != 3 {
		t.Fatalf("a late hint recorded again: %v", describe(sup))
	}
}

func TestLookLeavesOvertakenCommitsThatRan(t *testing.T) {
	r := newRig(t, time.Minute, commitOf("c1", ""), commitOf("c2", ""), commitOf("c3", ""))
	r.files.files[sha("c3")] = []*pipeline.Pipeline{pl("web", nil), pl("api", nil)}
	// web ran c2 already (say, started by hand before the hint arrived after a restart).
	r.records.runs[store.PipelineRef{Repository: "app", Name: "web"}] = []store.Run{
		{Commit: sha("c2"), Trigger: store.TriggerManual, Status: store.RunRunning},
	}
	r.git.changed["c1..c2"] = []string{"README.md"}
	r.git.changed["c1..c3"] = []string{"README.md"}
	r.git.setHead(sha("c3"))
	r.look(t, sha("c1"), Hint{Branch: testBranch, Commit: sha("c2")})
	if _, sup, _ := r.runs.jobs(); !slices.Equal(describe(sup), []string{"api@c2/push"}) {
		t.Fatalf("superseded %v, want only api@c2", describe(sup))
	}
}

func TestLookOvertakenCommitAskingToSkipIsNotRecorded(t *testing.T) {
	r := newRig(t, time.Minute, commitOf("c1", ""), commitOf("c2", "wip [ci skip]"), commitOf("c3", ""))
	r.files.files[sha("c3")] = []*pipeline.Pipeline{pl("web", nil)}
	r.git.changed["c1..c3"] = []string{"README.md"}
	r.git.setHead(sha("c3"))
	r.look(t, sha("c1"), Hint{Branch: testBranch, Commit: sha("c2")})
	if submitted, sup, _ := r.runs.jobs(); len(sup) != 0 || len(submitted) != 1 {
		t.Fatalf("started %v, superseded %v; want the head only", describe(submitted), describe(sup))
	}
}

func TestLookIgnoresUnknownCommitsAndOtherBranches(t *testing.T) {
	r := newRig(t, time.Minute, commitOf("c1", ""), commitOf("c2", ""), commitOf("c3", ""))
	r.files.files[sha("c3")] = []*pipeline.Pipeline{pl("web", nil)}
	r.git.changed["c1..c3"] = []string{"README.md"}
	r.git.setHead(sha("c3"))
	unknown := Hint{DeliveryID: "forged", Branch: testBranch, Commit: sha("c9")}
	other := Hint{DeliveryID: "feature", Branch: "feature/x", Commit: sha("c2")}
	r.look(t, sha("c1"), unknown, other)
	if submitted, sup, _ := r.runs.jobs(); len(sup) != 0 || !slices.Equal(describe(submitted), []string{"web@c3/push"}) {
		t.Fatalf("started %v, superseded %v; want web@c3 only", describe(submitted), describe(sup))
	}
	if n := testutil.ToFloat64(r.metrics.rejected.WithLabelValues("app", "unknown_commit")); n != 1 {
		t.Fatalf("unknown_commit rejections %v, want 1", n)
	}
	// The unknown commit is remembered: a redelivery neither reads it again nor counts twice.
	r.look(t, sha("c3"), unknown)
	if _, commits, _ := r.git.counts(); !slices.Equal(commits, []string{sha("c9")}) {
		t.Fatalf("commits read %v, want c9 once (another branch's push is never read)", commits)
	}
	if n := testutil.ToFloat64(r.metrics.rejected.WithLabelValues("app", "unknown_commit")); n != 1 {
		t.Fatalf("unknown_commit rejections %v after a redelivery, want 1", n)
	}
}

func TestLookRetriesAnOvertakenCommitItCouldNotRead(t *testing.T) {
	r := newRig(t, time.Minute, commitOf("c1", ""), commitOf("c2", ""), commitOf("c3", ""))
	r.files.files[sha("c3")] = []*pipeline.Pipeline{pl("web", nil)}
	r.git.commitErr[sha("c2")] = errors.New("mirror locked")
	r.git.changed["c1..c3"] = []string{"README.md"}
	r.git.changed["c3..c2"] = []string{"README.md"}
	r.git.setHead(sha("c3"))
	h := Hint{Branch: testBranch, Commit: sha("c2")}
	r.look(t, sha("c1"), h)
	if _, sup, _ := r.runs.jobs(); len(sup) != 0 {
		t.Fatalf("superseded %v from an unreadable commit", describe(sup))
	}
	delete(r.git.commitErr, sha("c2"))
	r.look(t, sha("c3"), h)
	if _, sup, _ := r.runs.jobs(); !slices.Equal(describe(sup), []string{"web@c2/push"}) {
		t.Fatalf("superseded %v on the second look, want web@c2", describe(sup))
	}
}

func TestHandledHeadAtStart(t *testing.T) {
	at := func(m int) time.Time { return time.Date(2025, 1, 1, 10, m, 0, 0, time.UTC) }
	web := store.PipelineRef{Repository: "app", Name: "web"}
	api := store.PipelineRef{Repository: "app", Name: "api"}
	other := store.PipelineRef{Repository: "other", Name: "web"}
	seed := func(r *rig) {
		r.records.pipelines = []store.Pipeline{{Ref: web}, {Ref: api}, {Ref: other}}
		r.records.runs[web] = []store.Run{
			{Commit: sha("c9"), Trigger: store.TriggerRollback, CreatedAt: at(9)}, // rolled back to an old commit
			{Commit: sha("c3"), Trigger: store.TriggerPush, CreatedAt: at(3)},
		}
		r.records.runs[api] = []store.Run{{Commit: sha("c4"), Trigger: store.TriggerManual, CreatedAt: at(4)}}
		r.records.runs[other] = []store.Run{{Commit: sha("c8"), Trigger: store.TriggerPush, CreatedAt: at(8)}}
	}

	r := newRig(t, time.Minute)
	seed(r)
	r.records.head = sha("c2")
	if got, err := r.w.handledHead(context.Background()); err != nil || got != sha("c2") {
		t.Fatalf("handledHead = %s, %v; want the stored c2 over any run", got, err)
	}

	r = newRig(t, time.Minute)
	seed(r)
	if got, err := r.w.handledHead(context.Background()); err != nil || got != sha("c4") {
		t.Fatalf("handledHead = %s, %v; want c4, the newest non-rollback run of this repository", got, err)
	}

	r = newRig(t, time.Minute)
	if got, err := r.w.handledHead(context.Background()); err != nil || got != "" {
		t.Fatalf("handledHead with no records = %q, %v; want none", got, err)
	}

	r = newRig(t, time.Minute)
	r.records.headErr = errors.New("database is locked")
	if _, err := r.w.handledHead(context.Background()); err == nil {
		t.Fatal("handledHead hid the store's error")
	}
}

func TestRunStartsFromTheHandledHead(t *testing.T) {
	r := newRig(t, 0, commitOf("c1", ""))
	r.files.files[sha("c1")] = []*pipeline.Pipeline{pl("web", nil)}
	r.records.head = sha("c1")
	r.git.setHead(sha("c1"))
	r.schedules.signal = make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { <-r.w.Start(ctx, nil); close(done) }()
	recv(t, r.schedules.signal, "the first look")
	cancel()
	recv(t, done, "Run to return")
	if submitted, _, _ := r.runs.jobs(); len(submitted) != 0 {
		t.Fatalf("a restart ran the handled head again: %v", describe(submitted))
	}
	if r.polls("unchanged") != 1 {
		t.Fatalf("unchanged polls %v, want 1", r.polls("unchanged"))
	}
}

func TestRunPutsBackHintsOfAFailedLook(t *testing.T) {
	r := newRig(t, 0, commitOf("c1", ""), commitOf("c2", ""), commitOf("c3", ""))
	r.files.files[sha("c3")] = []*pipeline.Pipeline{pl("web", nil)}
	r.records.head = sha("c1")
	r.git.setHead(sha("c3"))
	r.runs.onSubmit = make(chan reconciler.Job, 1)
	r.git.changed["c1..c2"] = []string{"README.md"}
	r.git.changed["c1..c3"] = []string{"README.md"}
	// The first Prepare waits for the test and fails; later ones read the file.
	entered, release := make(chan struct{}), make(chan struct{})
	calls := 0
	r.w = r.watcher(0, prepareFunc(func(ctx context.Context, req reconciler.Request) (*reconciler.Checkout, error) {
		calls++ // only the look in flight calls it, one look at a time
		if calls == 1 {
			entered <- struct{}{}
			<-release
			return nil, errors.New("checkout: i/o timeout")
		}
		return r.files.Prepare(ctx, req)
	}))

	r.w.Hint(Hint{DeliveryID: "d2", Branch: testBranch, Commit: sha("c2")})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { <-r.w.Start(ctx, nil); close(done) }()
	recv(t, entered, "the first look")
	r.w.Hint(Hint{DeliveryID: "d3", Branch: testBranch, Commit: sha("c3")}) // arrives during the failing look
	close(release)
	// The retry follows at once: a hint is waiting, whatever the backoff.
	job := recv(t, r.runs.onSubmit, "the retry's run")
	cancel()
	recv(t, done, "Run to return")

	if got := describe([]reconciler.Job{job}); got[0] != "web@c3/push" {
		t.Fatalf("started %v, want web@c3", got)
	}
	if _, sup, _ := r.runs.jobs(); !slices.Equal(describe(sup), []string{"web@c2/push"}) {
		t.Fatalf("superseded %v: the failed look's hint must be answered by the retry", describe(sup))
	}
	if r.polls("error") != 1 || r.polls("changed") != 1 {
		t.Fatalf("polls error=%v changed=%v, want 1 and 1", r.polls("error"), r.polls("changed"))
	}
	if heads := r.records.handledHeads(); !slices.Equal(heads, []string{sha("c3")}) {
		t.Fatalf("handled heads %v, want c3", heads)
	}
}

func TestRunStopsWhenItsContextEndsMidLook(t *testing.T) {
	r := newRig(t, time.Hour, commitOf("c1", ""))
	entered := make(chan struct{})
	r.w = r.watcher(time.Hour, prepareFunc(func(ctx context.Context, req reconciler.Request) (*reconciler.Checkout, error) {
		close(entered)
		<-ctx.Done()
		return nil, ctx.Err()
	}))
	r.git.setHead(sha("c1"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { <-r.w.Start(ctx, nil); close(done) }()
	recv(t, entered, "the first look")
	cancel()
	recv(t, done, "Run to return")
	if r.polls("error") != 0 {
		t.Fatal("a look ended by shutdown counted as an error")
	}
}

func TestWatchersAtRestHoldNoGoroutine(t *testing.T) {
	const n = 200
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	looked := make(chan error, n)
	var stopped []<-chan struct{}
	for range n {
		r := newRig(t, time.Hour, commitOf("c1", ""))
		r.git.setHead(sha("c1"))
		stopped = append(stopped, r.w.Start(ctx, func(err error) { looked <- err }))
	}
	for range n {
		if err := recv(t, looked, "a first look"); err != nil {
			t.Fatal(err)
		}
	}
	// The first looks' goroutines end just after reporting.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+n/20 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := runtime.NumGoroutine() - before; got > n/20 {
		t.Fatalf("%d watchers at rest hold %d goroutines; a poll timer needs none", n, got)
	}
	cancel()
	for _, s := range stopped {
		recv(t, s, "a watcher to stop")
	}
}

func TestStartPollsEveryIntervalUntilItsContextEnds(t *testing.T) {
	r := newRig(t, 20*time.Millisecond, commitOf("c1", ""))
	r.git.setHead(sha("c1"))
	ctx, cancel := context.WithCancel(context.Background())
	stopped := r.w.Start(ctx, nil)
	deadline := time.Now().Add(5 * time.Second)
	for r.polls("unchanged") < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := r.polls("unchanged"); got < 3 {
		t.Fatalf("%v unchanged polls after 5 s at a 20 ms interval", got)
	}
	cancel()
	recv(t, stopped, "the watcher to stop")
	at := r.polls("unchanged")
	time.Sleep(100 * time.Millisecond)
	if got := r.polls("unchanged"); got != at {
		t.Fatalf("the watcher polled %v times after it stopped", got-at)
	}
	// Started again (a replica owning the repository again), it looks at once.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	looked := make(chan error, 1)
	r.w.Start(ctx, func(err error) { looked <- err })
	if err := recv(t, looked, "the restarted watcher's first look"); err != nil {
		t.Fatal(err)
	}
}

func TestAHintAtRestStartsALookAtOnce(t *testing.T) {
	r := newRig(t, time.Hour, commitOf("c1", ""), commitOf("c2", ""))
	r.files.files[sha("c2")] = []*pipeline.Pipeline{pl("web", nil)}
	r.records.head = sha("c1")
	r.git.setHead(sha("c1"))
	r.runs.onSubmit = make(chan reconciler.Job, 1)
	ctx, cancel := context.WithCancel(context.Background())
	looked := make(chan error, 1)
	stopped := r.w.Start(ctx, func(err error) { looked <- err })
	recv(t, looked, "the first look")
	// At rest: the first look has ended and set its poll timer (an hour away), so the hint
	// below starts a look of its own rather than asking the one in flight for another.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.w.mu.Lock()
		atRest := r.w.following != nil && !r.w.following.looking && r.w.following.timer != nil
		r.w.mu.Unlock()
		if atRest {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the watcher did not come to rest after its first look")
		}
		time.Sleep(time.Millisecond)
	}
	r.git.setHead(sha("c2"))
	r.w.Hint(Hint{DeliveryID: "d2", Branch: testBranch, Commit: sha("c2")})
	if job := recv(t, r.runs.onSubmit, "the hinted look's run"); describe([]reconciler.Job{job})[0] != "web@c2/push" {
		t.Fatalf("started %v, want web@c2", describe([]reconciler.Job{job}))
	}
	cancel()
	recv(t, stopped, "the watcher to stop")
}

func TestBackoff(t *testing.T) {
	if got := maxBackoff(0); got != 10*time.Minute {
		t.Fatalf("maxBackoff(0) = %v, want 10m for a webhook-only repository", got)
	}
	if got := maxBackoff(30 * time.Second); got != 5*time.Minute {
		t.Fatalf("maxBackoff(30s) = %v, want ten intervals", got)
	}
	for _, tc := range []struct {
		interval time.Duration
		want     []time.Duration
	}{
		{0, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}},
		{time.Minute, []time.Duration{2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute, 10 * time.Minute}},
		{100 * time.Millisecond, []time.Duration{time.Second, 1 * time.Second}},
	} {
		b := tc.interval
		for i, want := range tc.want {
			if b = nextBackoff(b, tc.interval); b != want {
				t.Fatalf("interval %v: error %d waits %v, want %v", tc.interval, i+1, b, want)
			}
		}
	}
	b := time.Duration(0)
	for range 20 {
		b = nextBackoff(b, 0)
	}
	if b != 10*time.Minute {
		t.Fatalf("webhook-only backoff after many errors %v, want capped at 10m", b)
	}
	for _, d := range []time.Duration{time.Second, time.Minute, 7 * time.Minute} {
		for range 100 {
			if j := jittered(d); j < d || j > d+d/10 {
				t.Fatalf("jittered(%v) = %v, want within a tenth above", d, j)
			}
		}
	}
}

// A commit without a pipeline file is handled like an invalid one, but said once as a
// warning naming the file looked for: many repositories have none, and each is no error.
func TestLookMissingPipelineFileIsAWarning(t *testing.T) {
	r := newRig(t, time.Minute, commitOf("c1", ""), commitOf("c2", ""))
	r.files.errs[sha("c1")] = &reconciler.PrepareError{Commit: sha("c1"),
		Err: fmt.Errorf("%w: app@c100000:.pipeline.yaml does not exist", pipeline.ErrNoFile)}
	r.files.errs[sha("c2")] = &reconciler.PrepareError{Commit: sha("c2"), Err: errors.New(".pipeline.yaml:3: stages: required")}
	r.git.setHead(sha("c1"))
	for range 3 {
		if got, err := r.w.look(context.Background(), sha("c1"), nil); err != nil || got != sha("c1") {
			t.Fatalf("look at a commit without a pipeline file = %s, %v; want it handled without error", got, err)
		}
	}
	if heads := r.records.handledHeads(); !slices.Equal(heads, []string{sha("c1")}) {
		t.Fatalf("handled heads %v, want c1 once", heads)
	}
	entries := r.logs.AllEntries()
	if len(entries) != 1 || entries[0].Level != logrus.WarnLevel ||
		entries[0].Data["file"] != pipeline.DefaultFile || entries[0].Data["commit"] != sha("c1") {
		t.Fatalf("logged %v, want one warning naming %s and the commit", levels(entries), pipeline.DefaultFile)
	}

	// A file that is there but invalid stays an error.
	r.logs.Reset()
	r.git.setHead(sha("c2"))
	if got, err := r.w.look(context.Background(), sha("c1"), nil); err != nil || got != sha("c2") {
		t.Fatalf("look at an invalid file = %s, %v", got, err)
	}
	if entries := r.logs.AllEntries(); len(entries) != 1 || entries[0].Level != logrus.ErrorLevel {
		t.Fatalf("logged %v for an invalid file, want one error", levels(entries))
	}
}

func levels(entries []*logrus.Entry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Level.String()+": "+e.Message)
	}
	return out
}

// TestWatcherKeepsNoPipelineFileBetweenLooks: between looks the watcher keeps the head it
// read, not its parsed pipeline file (a thousand repositories' files were megabytes of
// the heap at rest); a look at the unchanged head still reads nothing.
func TestWatcherKeepsNoPipelineFileBetweenLooks(t *testing.T) {
	r := newRig(t, time.Minute, commitOf("c1", "first"))
	r.git.setHead(sha("c1"))
	var made []weak.Pointer[pipeline.Pipeline]
	r.w = r.watcher(time.Minute, prepareFunc(func(ctx context.Context, req reconciler.Request) (*reconciler.Checkout, error) {
		co := &reconciler.Checkout{Repo: req.Repo, Commit: commitOf("c1", "first")}
		p := pl("web", nil) // a fresh file, as the runner parses one
		made = append(made, weak.Make(p))
		co.Pipelines = []*pipeline.Pipeline{p}
		return co, nil
	}))
	r.look(t, sha("c1"))
	r.look(t, sha("c1"))
	if len(made) != 1 {
		t.Fatalf("the unchanged head was read %d times, want once", len(made))
	}
	runtime.GC()
	if made[0].Value() != nil {
		t.Fatal("the watcher still holds the head's parsed pipeline file after its look")
	}
	runtime.KeepAlive(r.w) // the watcher lives on, as the daemon's do
}

// TestLookAtAHeadReadBeforeThatFailsToReadIsTriedAgain: a hint for the head already
// handled reads its file again; failing now, after it read fine, is passing (an I/O
// error), not an invalid file: the look fails so its hints are answered by the next.
func TestLookAtAHeadReadBeforeThatFailsToReadIsTriedAgain(t *testing.T) {
	r := newRig(t, time.Minute, commitOf("c1", "first"))
	r.files.files[sha("c1")] = []*pipeline.Pipeline{pl("web", nil)}
	r.git.setHead(sha("c1"))
	r.look(t, sha("c1"))
	r.files.mu.Lock()
	r.files.errs[sha("c1")] = &reconciler.PrepareError{Commit: sha("c1"), Err: errors.New("read .pipeline.yaml: input/output error")}
	r.files.mu.Unlock()
	hint := Hint{DeliveryID: "d2", Branch: testBranch, Commit: sha("c1"), Resumed: "web"}
	if _, err := r.w.look(context.Background(), sha("c1"), []Hint{hint}); err == nil {
		t.Fatal("a passing failure to read a head read before was not returned; its hint would be lost")
	}
	if st := r.w.stateOf(testBranch); st.invalid == sha("c1") {
		t.Fatal("a head whose file read fine before was recorded invalid")
	}
	if heads := r.records.handledHeads(); len(heads) != 0 {
		t.Fatalf("recorded handled heads %v for a look that failed", heads)
	}
}
