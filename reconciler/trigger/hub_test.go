package trigger

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/reconciler/schedule"
	"github.com/slipwayhq/slipway/sources"
	"github.com/slipwayhq/slipway/store"
)

var (
	webRef    = store.PipelineRef{Repository: "app", Name: "web"}
	otherRepo = sources.Repo{Name: "other", URL: "https://git.example/team/other.git"}
)

// newHubRig is a hub with testRepo's watcher; c1 is the tracked branch's head and holds
// pipelines web and api.
func newHubRig(t *testing.T) (*rig, *Hub) {
	t.Helper()
	r := newRig(t, time.Minute, commitOf("c0", ""), commitOf("c1", ""))
	r.files.files[sha("c0")] = []*pipeline.Pipeline{pl("web", nil), pl("api", nil)}
	r.files.files[sha("c1")] = []*pipeline.Pipeline{pl("web", nil), pl("api", nil)}
	r.git.setHead(sha("c1"))
	audit, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = audit.Close() })
	r.audit = audit
	h := NewHub(HubOptions{Pipelines: r.files, Dispatcher: r.runs, Records: r.records, Metrics: r.metrics, Audit: audit})
	h.Add(r.w)
	return r, h
}

func addOtherRepo(h *Hub, r *rig) {
	h.Add(NewBranchWatcher(BranchWatcherOptions{Git: r.git, Pipelines: r.files, Runs: r.runs, Records: r.records,
		Repo: otherRepo, Branch: testBranch, Log: quietLog()}))
}

func TestHubTrigger(t *testing.T) {
	r, h := newHubRig(t)
	ctx := context.Background()
	if _, err := h.Trigger(ctx, webRef, "", "", "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Trigger(ctx, webRef, "", sha("c0"), "alice"); err != nil {
		t.Fatal(err)
	}
	submitted, _, _ := r.runs.jobs()
	if want := []string{"web@c1/manual", "web@c0/manual"}; !slices.Equal(describe(submitted), want) {
		t.Fatalf("started %v, want %v", describe(submitted), want)
	}
	req := r.files.prepared()[0]
	if req.Repo.Name != "app" || req.Branch != testBranch || req.Commit != "" || !slices.Equal(req.Pipelines, []string{"web"}) {
		t.Fatalf("prepared %+v: want the tracked branch's head, pipeline web only", req)
	}
	if submitted[0].Parent != 0 {
		t.Fatalf("a manual run has parent %d", submitted[0].Parent)
	}
}

func TestHubTriggerErrors(t *testing.T) {
	ctx := context.Background()
	r, h := newHubRig(t)
	if _, err := h.Trigger(ctx, store.PipelineRef{Repository: "nope", Name: "web"}, "", "", "alice"); !errors.Is(err, ErrRequest) {
		t.Fatalf("unknown repository: %v, want ErrRequest", err)
	}
	if _, err := h.Trigger(ctx, webRef, "feature/x", "", "alice"); !errors.Is(err, ErrRequest) || !strings.Contains(err.Error(), "not tracked") {
		t.Fatalf("an untracked branch: %v, want ErrRequest naming it", err)
	}
	if n := len(r.files.prepared()); n != 0 {
		t.Fatalf("an unknown repository was prepared %d times", n)
	}
	if _, err := h.Trigger(ctx, store.PipelineRef{Repository: "app", Name: "nope"}, "", "", "alice"); !errors.Is(err, ErrRequest) || !errors.Is(err, reconciler.ErrNoSuchPipeline) {
		t.Fatalf("pipeline not in the file: %v, want ErrRequest wrapping ErrNoSuchPipeline", err)
	}
	if _, err := h.Trigger(ctx, webRef, "", sha("c9"), "alice"); !errors.Is(err, ErrRequest) || !errors.Is(err, sources.ErrCommitNotFound) {
		t.Fatalf("unknown commit: %v, want ErrRequest wrapping ErrCommitNotFound", err)
	}
	r.files.errs[sha("c0")] = &reconciler.PrepareError{Commit: sha("c0"), Err: errors.New(".pipeline.yaml:1: bad")}
	var notPrepared *reconciler.PrepareError
	if _, err := h.Trigger(ctx, webRef, "", sha("c0"), "alice"); !errors.Is(err, ErrRequest) || !errors.As(err, &notPrepared) {
		t.Fatalf("invalid file: %v, want ErrRequest wrapping the PrepareError", err)
	}
	transient := errors.New("connection reset")
	r.files.errs[sha("c1")] = transient
	if _, err := h.Trigger(ctx, webRef, "", "", "alice"); !errors.Is(err, transient) || errors.Is(err, ErrRequest) {
		t.Fatalf("transient failure: %v, want it unwrapped and not ErrRequest", err)
	}
	if submitted, _, _ := r.runs.jobs(); len(submitted) != 0 {
		t.Fatalf("failed triggers started %v", describe(submitted))
	}
}

func TestHubRerun(t *testing.T) {
	ctx := context.Background()
	r, h := newHubRig(t)
	r.records.runs[webRef] = []store.Run{
		{Pipeline: webRef, BuildID: 4, Trigger: store.TriggerRollback, Commit: sha("c0"), Status: store.RunSucceeded},
		{Pipeline: webRef, BuildID: 3, Trigger: store.TriggerPush, Commit: sha("c0"), Status: store.RunFailed},
	}
	if _, err := h.Rerun(ctx, webRef, 3, "alice"); err != nil {
		t.Fatal(err)
	}
	submitted, _, _ := r.runs.jobs()
	if !slices.Equal(describe(submitted), []string{"web@c0/manual"}) || submitted[0].Parent != 3 {
		t.Fatalf("re-run started %v (parent %d), want web@c0 with parent 3", describe(submitted), submitted[0].Parent)
	}

	_, err := h.Rerun(ctx, webRef, 4, "alice")
	if !errors.Is(err, ErrRequest) || !strings.Contains(err.Error(), "rollback") {
		t.Fatalf("re-run of a rollback: %v, want ErrRequest saying why", err)
	}
	if _, err := h.Rerun(ctx, webRef, 9, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("re-run of an unknown run: %v, want ErrNotFound", err)
	}
	if submitted, _, _ := r.runs.jobs(); len(submitted) != 1 || len(r.files.prepared()) != 1 {
		t.Fatalf("refused re-runs prepared or started something: %v", describe(submitted))
	}
}

func TestHubResolve(t *testing.T) {
	ctx := context.Background()
	r, h := newHubRig(t)
	r.records.listErr = errors.New("must not be asked with one repository")
	if ref, err := h.Resolve(ctx, "", "web"); err != nil || ref != webRef {
		t.Fatalf("one repository: %v, %v; want app/web", ref, err)
	}
	if ref, err := h.Resolve(ctx, "app", "web"); err != nil || ref != webRef {
		t.Fatalf("named repository: %v, %v", ref, err)
	}
	if _, err := h.Resolve(ctx, "nope", "web"); !errors.Is(err, ErrRequest) {
		t.Fatalf("unknown repository: %v, want ErrRequest", err)
	}
	if _, err := h.Resolve(ctx, "app", ""); !errors.Is(err, ErrRequest) {
		t.Fatalf("no name: %v, want ErrRequest", err)
	}

	addOtherRepo(h, r)
	r.records.listErr = nil
	r.records.pipelines = []store.Pipeline{
		{Ref: webRef}, {Ref: store.PipelineRef{Repository: "other", Name: "web"}},
		{Ref: store.PipelineRef{Repository: "other", Name: "worker"}},
		{Ref: store.PipelineRef{Repository: "gone", Name: "cron"}}, // recorded, no longer configured
	}
	_, err := h.Resolve(ctx, "", "web")
	if !errors.Is(err, ErrRequest) || !strings.Contains(err.Error(), "app, other") {
		t.Fatalf("a name in two repositories: %v, want ErrRequest naming both", err)
	}
	if ref, err := h.Resolve(ctx, "", "worker"); err != nil || ref != (store.PipelineRef{Repository: "other", Name: "worker"}) {
		t.Fatalf("a name in one repository: %v, %v; want other/worker", ref, err)
	}
	if _, err := h.Resolve(ctx, "", "cron"); !errors.Is(err, ErrRequest) {
		t.Fatalf("a name only in an unconfigured repository: %v, want ErrRequest", err)
	}
	if ref, err := h.Resolve(ctx, "other", "web"); err != nil || ref.Repository != "other" {
		t.Fatalf("named repository among several: %v, %v", ref, err)
	}
	r.records.listErr = errors.New("database is locked")
	if _, err := h.Resolve(ctx, "", "web"); !errors.Is(err, r.records.listErr) {
		t.Fatalf("store error: %v, want it passed on", err)
	}
}

func TestHubStartForbidSubmitsOnlyIfIdle(t *testing.T) {
	ctx := context.Background()
	r, h := newHubRig(t)
	cron := func() float64 { return testutil.ToFloat64(r.metrics.received.WithLabelValues("app", "cron")) }
	fire := schedule.Fire{Pipeline: webRef, Schedule: "@daily", Concurrency: pipeline.ConcurrencyForbid}

	r.runs.idleErr = fmt.Errorf("start web: %w", reconciler.ErrBusy)
	claimed, err := h.Start(ctx, fire)
	if !errors.Is(err, schedule.ErrActive) || !errors.Is(err, reconciler.ErrBusy) || claimed {
		t.Fatalf("forbid while busy: %v (claimed %v), want schedule.ErrActive (wrapping ErrBusy), nothing claimed", err, claimed)
	}
	if cron() != 0 {
		t.Fatal("a refused tick counted as a cron trigger")
	}

	r.runs.idleErr = nil
	if claimed, err := h.Start(ctx, fire); err != nil || !claimed {
		t.Fatal(claimed, err)
	}
	submitted, _, _ := r.runs.jobs()
	if len(submitted) != 0 || !slices.Equal(describe(r.runs.idle), []string{"web@c1/cron", "web@c1/cron"}) {
		t.Fatalf("forbid: Submit got %v, SubmitIfIdle got %v; want only SubmitIfIdle", describe(submitted), describe(r.runs.idle))
	}
	if cron() != 1 {
		t.Fatalf("cron triggers %v, want 1", cron())
	}

	fire.Concurrency = pipeline.ConcurrencyAllow
	if claimed, err := h.Start(ctx, fire); err != nil || !claimed {
		t.Fatal(claimed, err)
	}
	if submitted, _, _ := r.runs.jobs(); !slices.Equal(describe(submitted), []string{"web@c1/cron"}) || len(r.runs.idle) != 2 {
		t.Fatalf("allow: Submit got %v, want web@c1/cron", describe(submitted))
	}

	if claimed, err := h.Start(ctx, schedule.Fire{Pipeline: store.PipelineRef{Repository: "nope", Name: "web"}}); !errors.Is(err, ErrRequest) || claimed {
		t.Fatalf("a fire for an unconfigured repository: %v (claimed %v), want ErrRequest, nothing claimed", err, claimed)
	}
}

func TestHubHint(t *testing.T) {
	_, h := newHubRig(t)
	if err := h.Hint(context.Background(), "nope", Hint{Commit: sha("c1")}); !errors.Is(err, ErrRequest) {
		t.Fatalf("hint for an unknown repository: %v, want ErrRequest", err)
	}
	if err := h.Hint(context.Background(), "app", Hint{DeliveryID: "d1", Commit: sha("c1")}); err != nil {
		t.Fatal(err)
	}
	if got := takeHints(h.watchers["app"]); len(got) != 1 || got[0].DeliveryID != "d1" {
		t.Fatalf("the watcher holds %v, want the hint", got)
	}

	// With several replicas, a hint for a repository another replica watches goes there.
	var handed []Hint
	owned := false
	h.handoff = func(_ context.Context, repo string, hint Hint) (bool, error) {
		if owned {
			return false, nil
		}
		handed = append(handed, hint)
		return true, nil
	}
	if err := h.Hint(context.Background(), "app", Hint{DeliveryID: "d2"}); err != nil {
		t.Fatal(err)
	}
	if got := takeHints(h.watchers["app"]); len(got) != 0 || len(handed) != 1 || handed[0].DeliveryID != "d2" {
		t.Fatalf("not owned: watcher %v, handed %v", got, handed)
	}
	owned = true
	if err := h.Hint(context.Background(), "app", Hint{DeliveryID: "d3"}); err != nil {
		t.Fatal(err)
	}
	if got := takeHints(h.watchers["app"]); len(got) != 1 || len(handed) != 1 {
		t.Fatalf("owned: watcher %v, handed %v", got, handed)
	}
}

// auditOf lists the audit log as "actor action pipeline#id", oldest first.
func auditOf(t *testing.T, r *rig) []string {
	t.Helper()
	entries, err := r.audit.ListAudit(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		out = append(out, fmt.Sprintf("%s %s %s#%d", e.Actor, e.Action, e.Pipeline.Name, e.BuildID))
	}
	return out
}

func TestHubAuditsWhoAskedForWhat(t *testing.T) {
	ctx := context.Background()
	r, h := newHubRig(t)
	r.records.runs[webRef] = []store.Run{{Pipeline: webRef, BuildID: 1, Trigger: store.TriggerPush, Commit: sha("c0"), Status: store.RunFailed}}
	if _, err := h.Trigger(ctx, webRef, "", "", "alice"); err != nil {
		t.Fatal(err)
	}
	rerun, err := h.Rerun(ctx, webRef, 1, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Cancel(ctx, webRef, rerun.BuildID, "carol"); err != nil {
		t.Fatal(err)
	}
	// The runs' entries go with their jobs, for the store to record in the runs'
	// transaction; the cancel's is recorded by the hub.
	submitted, _, _ := r.runs.jobs()
	if got, want := auditsOf(submitted), []string{"alice trigger manual run at " + sha("c1")[:12],
		"bob rerun re-run of #1 at " + sha("c0")[:12]}; !slices.Equal(got, want) {
		t.Fatalf("runs asked for with audit entries %v, want %v", got, want)
	}
	want := []string{fmt.Sprintf("carol cancel web#%d", rerun.BuildID)}
	if got := auditOf(t, r); !slices.Equal(got, want) {
		t.Fatalf("audit log %v, want %v", got, want)
	}
	if r.runs.cancelled[0] != fmt.Sprintf("web#%d: cancelled by request of carol", rerun.BuildID) {
		t.Fatalf("cancel reason %q does not name who cancelled", r.runs.cancelled)
	}
	// Refused requests and requests without an actor start nothing and record nothing.
	if _, err := h.Trigger(ctx, webRef, "", sha("c9"), "alice"); err == nil {
		t.Fatal("unknown commit triggered")
	}
	if _, err := h.Trigger(ctx, webRef, "", "", ""); err == nil {
		t.Fatal("a trigger without an actor went ahead")
	}
	if err := h.Cancel(ctx, webRef, 1, ""); err == nil {
		t.Fatal("a cancel without an actor went ahead")
	}
	if got := auditOf(t, r); len(got) != 1 {
		t.Fatalf("refused requests were audited: %v", got)
	}
	if submitted, _, _ := r.runs.jobs(); len(submitted) != 2 {
		t.Fatalf("refused requests started runs: %v", describe(submitted))
	}
}

// auditsOf lists the audit entries jobs carry as "actor action reason".
func auditsOf(jobs []reconciler.Job) []string {
	var out []string
	for _, j := range jobs {
		if e := j.Audit; e != nil {
			out = append(out, fmt.Sprintf("%s %s %s", e.Actor, e.Action, e.Reason))
		}
	}
	return out
}

// A run the engine cannot record is not audited either: the entry goes with the run.
func TestHubAuditsNoRunItCouldNotStart(t *testing.T) {
	ctx := context.Background()
	r, h := newHubRig(t)
	r.runs.submitErr = map[string]error{"web": errors.New("store unavailable")}
	if _, err := h.Trigger(ctx, webRef, "", "", "alice"); err == nil || !strings.Contains(err.Error(), "store unavailable") {
		t.Fatalf("trigger the engine could not record: %v", err)
	}
	if got := auditOf(t, r); len(got) != 0 || len(r.runs.cancelled) != 0 {
		t.Fatalf("audit log %v, cancelled %v: want nothing", got, r.runs.cancelled)
	}
}
