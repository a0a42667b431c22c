package trigger

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/policy"
	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/sources"
	"github.com/slipwayhq/slipway/store"
)

// Fakes of the interfaces the package defines, for unit tests of the watcher's and the
// hub's decisions. Each records what it was asked; the tests own their answers.

const testBranch = "main"

var testRepo = sources.Repo{Name: "app", URL: "https://git.example/team/app.git"}

// sha makes a recognisable full hash: sha("c2") is "c2" padded with zeros to 40 characters.
func sha(name string) string { return name + strings.Repeat("0", 40-len(name)) }

func commitOf(name, message string) sources.Commit {
	h := sha(name)
	return sources.Commit{Hash: h, ShortHash: h[:7], Message: message}
}

// fakeGit is a branch whose head the test moves.
type fakeGit struct {
	t       *testing.T
	mu      sync.Mutex
	head    string
	syncErr error
	commits map[string]sources.Commit
	// commitErr answers Commit for a hash with an error other than not found.
	commitErr map[string]error
	// changed answers ChangedPaths by "from..to"; a pair the test did not give fails it.
	changed    map[string][]string
	changedErr error

	syncs        int
	commitAsked  []string
	changedAsked []string

	// tags are the remote tags (tag → commit); others the heads of branches besides
	// testBranch; refsErr fails Refs.
	tags    map[string]string
	others  map[string]string
	refsErr error
	refs    int
	// beforeRefs, when set, is called (without the lock) as Refs begins.
	beforeRefs func()
	tagFetches []string
	// prefetches are the commits Prefetch was asked for; prefetchErr fails it.
	prefetches  []string
	prefetchErr error
	// history are the commits InHistory finds below any head.
	history map[string]bool
}

func newFakeGit(t *testing.T, commits ...sources.Commit) *fakeGit {
	g := &fakeGit{t: t, commits: map[string]sources.Commit{}, commitErr: map[string]error{}, changed: map[string][]string{},
		tags: map[string]string{}, others: map[string]string{}, history: map[string]bool{}}
	for _, c := range commits {
		g.commits[c.Hash] = c
	}
	return g
}

func (g *fakeGit) setHead(h string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.head = h
}

func (g *fakeGit) SyncListed(_ context.Context, repo sources.Repo, branch string, _ sources.Refs) (sources.SyncResult, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.syncs++
	if other, ok := g.others[branch]; ok && repo.Name == testRepo.Name {
		return sources.SyncResult{Commit: other, Fetched: true}, nil
	}
	if repo.Name != testRepo.Name || branch != testBranch {
		g.t.Errorf("Sync(%s, %s), want the watched repository's tracked branch", repo.Name, branch)
	}
	if g.syncErr != nil {
		return sources.SyncResult{}, g.syncErr
	}
	return sources.SyncResult{Commit: g.head, Fetched: true}, nil
}

func (g *fakeGit) Refs(_ context.Context, repo sources.Repo) (sources.Refs, error) {
	if g.beforeRefs != nil {
		g.beforeRefs()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refs++
	if g.refsErr != nil {
		return sources.Refs{}, g.refsErr
	}
	refs := sources.Refs{Heads: maps.Clone(g.others), Tags: maps.Clone(g.tags)}
	if g.head != "" {
		refs.Heads[testBranch] = g.head
	}
	return refs, nil
}

func (g *fakeGit) Prefetch(_ context.Context, repo sources.Repo, commit string) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if repo.Name != testRepo.Name {
		g.t.Errorf("Prefetch(%s), want the watched repository", repo.Name)
	}
	g.prefetches = append(g.prefetches, commit)
	return g.prefetchErr == nil, g.prefetchErr
}

func (g *fakeGit) InHistory(_ context.Context, _ sources.Repo, head, commit string) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return head == commit || g.history[commit], nil
}

func (g *fakeGit) FetchTag(_ context.Context, _ sources.Repo, tag string) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.tagFetches = append(g.tagFetches, tag)
	c, ok := g.tags[tag]
	if !ok {
		return "", fmt.Errorf("tag %s: %w", tag, sources.ErrCommitNotFound)
	}
	return c, nil
}

func (g *fakeGit) Commit(_ context.Context, _ sources.Repo, hash string) (sources.Commit, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.commitAsked = append(g.commitAsked, hash)
	if err := g.commitErr[hash]; err != nil {
		return sources.Commit{}, err
	}
	c, ok := g.commits[hash]
	if !ok {
		return sources.Commit{}, fmt.Errorf("commit %s: %w", hash, sources.ErrCommitNotFound)
	}
	return c, nil
}

func (g *fakeGit) ChangedPaths(_ context.Context, _ sources.Repo, from, to string) ([]string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	key := from[:2] + ".." + to[:2]
	g.changedAsked = append(g.changedAsked, key)
	if g.changedErr != nil {
		return nil, g.changedErr
	}
	paths, ok := g.changed[key]
	if !ok {
		g.t.Errorf("ChangedPaths(%s) not expected", key)
	}
	return paths, nil
}

func (g *fakeGit) counts() (syncs int, commits, changed []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.syncs, slices.Clone(g.commitAsked), slices.Clone(g.changedAsked)
}

// fakeFiles is the pipeline file at each commit.
type fakeFiles struct {
	git   *fakeGit
	mu    sync.Mutex
	files map[string][]*pipeline.Pipeline
	errs  map[string]error
	asked []reconciler.Request
}

func newFakeFiles(g *fakeGit) *fakeFiles {
	return &fakeFiles{git: g, files: map[string][]*pipeline.Pipeline{}, errs: map[string]error{}}
}

func (f *fakeFiles) Prepare(_ context.Context, req reconciler.Request) (*reconciler.Checkout, error) {
	f.mu.Lock()
	f.asked = append(f.asked, req)
	f.mu.Unlock()
	commit := req.Commit
	if commit == "" {
		f.git.mu.Lock()
		commit = f.git.head
		f.git.mu.Unlock()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs[commit]; err != nil {
		return nil, err
	}
	f.git.mu.Lock()
	info, ok := f.git.commits[commit]
	f.git.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("commit %s: %w", commit, sources.ErrCommitNotFound)
	}
	// A fresh checkout each time, as the runner's is: the watcher sets its Branch.
	co := &reconciler.Checkout{Repo: req.Repo, Branch: req.Branch, Commit: info}
	for _, p := range f.files[commit] {
		if len(req.Pipelines) == 0 || slices.Contains(req.Pipelines, p.Name) {
			co.Pipelines = append(co.Pipelines, p)
		}
	}
	if len(req.Pipelines) > 0 && len(co.Pipelines) == 0 {
		return nil, fmt.Errorf("pipeline %q: %w", req.Pipelines[0], reconciler.ErrNoSuchPipeline)
	}
	return co, nil
}

func (f *fakeFiles) prepared() []reconciler.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.asked)
}

// prepareFunc adapts a function to PipelineReader, for tests that pace Run.
type prepareFunc func(ctx context.Context, req reconciler.Request) (*reconciler.Checkout, error)

func (f prepareFunc) Prepare(ctx context.Context, req reconciler.Request) (*reconciler.Checkout, error) {
	return f(ctx, req)
}

// fakeRuns is the run engine as the watcher and the hub see it (Runs and Dispatcher).
type fakeRuns struct {
	mu         sync.Mutex
	submitErr  map[string]error // by pipeline name
	idleErr    error
	submitted  []reconciler.Job
	idle       []reconciler.Job
	superseded []superseded
	cancelled  []string // "pipeline#id: reason"
	buildID    int64
	// onSubmit, when set, hears every Submit after it is recorded.
	onSubmit chan reconciler.Job
	// records, when set, is where SubmitAll records what its runs handled, with the store's
	// compare-and-set; allErr, when set, fails SubmitAll before anything is recorded (a
	// crash before the transaction).
	records *fakeRecords
	allErr  error
}

type superseded struct {
	job    reconciler.Job
	reason string
}

func (r *fakeRuns) Submit(_ context.Context, job reconciler.Job) (store.Run, error) {
	r.mu.Lock()
	if err := r.submitErr[job.Ref.Name]; err != nil {
		r.mu.Unlock()
		return store.Run{}, err
	}
	r.submitted = append(r.submitted, job)
	r.buildID++
	run := runOf(job, r.buildID)
	r.mu.Unlock()
	if r.onSubmit != nil {
		r.onSubmit <- job
	}
	return run, nil
}

// SubmitAll records h and the runs together, or nothing, as the store does.
func (r *fakeRuns) SubmitAll(ctx context.Context, jobs []reconciler.Job, h store.Handled) ([]reconciler.Queued, error) {
	r.mu.Lock()
	err := r.allErr
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if r.records != nil {
		if err := r.records.markHandled(h); err != nil {
			return nil, err
		}
	}
	out := make([]reconciler.Queued, len(jobs))
	for i, job := range jobs {
		out[i].Run, out[i].Err = r.Submit(ctx, job)
	}
	return out, nil
}

func (r *fakeRuns) SubmitIfIdleWith(_ context.Context, job reconciler.Job, h store.Handled) (reconciler.Queued, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.idle = append(r.idle, job)
	if r.idleErr != nil {
		return reconciler.Queued{}, r.idleErr
	}
	r.buildID++
	return reconciler.Queued{Run: runOf(job, r.buildID)}, nil
}

func (r *fakeRuns) RecordSuperseded(_ context.Context, job reconciler.Job, reason string) (store.Run, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.superseded = append(r.superseded, superseded{job, reason})
	r.buildID++
	return runOf(job, r.buildID), nil
}

func (r *fakeRuns) Cancel(_ context.Context, ref store.PipelineRef, id int64, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cancelled = append(r.cancelled, fmt.Sprintf("%s#%d: %s", ref.Name, id, reason))
	return nil
}
func (r *fakeRuns) CancelActive(context.Context, store.PipelineRef, string)               {}
func (r *fakeRuns) Active(store.PipelineRef) bool                                         { return false }
func (r *fakeRuns) Answer(context.Context, store.PipelineRef, int64, policy.Answer) error { return nil }

func (r *fakeRuns) jobs() (submitted, supersededJobs []reconciler.Job, reasons []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.superseded {
		supersededJobs = append(supersededJobs, s.job)
		reasons = append(reasons, s.reason)
	}
	return slices.Clone(r.submitted), supersededJobs, reasons
}

func runOf(job reconciler.Job, id int64) store.Run {
	run := store.Run{Pipeline: job.Ref, BuildID: id, Trigger: job.Trigger, ParentBuildID: job.Parent, Status: store.RunQueued}
	if co := job.Checkout(); co != nil {
		run.Commit = co.Commit.Hash
	}
	return run
}

// describe names jobs "pipeline@commit-prefix/trigger", in order, for comparisons.
func describe(jobs []reconciler.Job) []string {
	var out []string
	for _, j := range jobs {
		commit := "-"
		if co := j.Checkout(); co != nil {
			commit = co.Commit.Hash[:2]
		}
		out = append(out, fmt.Sprintf("%s@%s/%s", j.Ref.Name, commit, j.Trigger))
	}
	return out
}

// fakeRecords is the store as the watcher and the hub read it.
type fakeRecords struct {
	mu        sync.Mutex
	head      string // the handled head of testRepo's tracked branch
	headErr   error
	setHeads  []string
	runs      map[store.PipelineRef][]store.Run // newest first, as the store lists them
	pipelines []store.Pipeline
	listErr   error
	// scanned and tagRefs are the tags recorded; audit the audit entries.
	scanned bool
	tagRefs map[string]store.TagRef
	audit   []store.AuditEntry
}

func newFakeRecords() *fakeRecords {
	return &fakeRecords{runs: map[store.PipelineRef][]store.Run{}, tagRefs: map[string]store.TagRef{}}
}

func (r *fakeRecords) TagsScanned(context.Context, string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.scanned, nil
}

func (r *fakeRecords) RecordTagBaseline(_ context.Context, repository string, tags map[string]string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for t, c := range tags {
		r.tagRefs[t] = store.TagRef{Repository: repository, Tag: t, Commit: c, State: store.TagBaseline}
	}
	r.scanned = true
	return nil
}

func (r *fakeRecords) ListTagRefs(context.Context, string) (map[string]store.TagRef, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.tagRefs), nil
}

func (r *fakeRecords) SetTagRef(_ context.Context, t store.TagRef) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tagRefs[t.Tag] = t
	return nil
}

func (r *fakeRecords) RunsOfTag(_ context.Context, _, tag string) ([]store.Run, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []store.Run
	for _, runs := range r.runs {
		for _, run := range runs {
			if run.Tag == tag {
				out = append(out, run)
			}
		}
	}
	return out, nil
}

func (r *fakeRecords) RecordAudit(_ context.Context, e store.AuditEntry) (store.AuditEntry, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.audit = append(r.audit, e)
	return e, nil
}

func (r *fakeRecords) HandledHead(_ context.Context, repository, branch string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if repository != testRepo.Name || branch != testBranch {
		return "", nil
	}
	return r.head, r.headErr
}

func (r *fakeRecords) SetHandledHead(_ context.Context, repository, branch, head string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if repository == testRepo.Name && branch == testBranch {
		r.setHeads = append(r.setHeads, head)
		r.head = head
	}
	return nil
}

// markHandled records h's head and tag with the store's compare-and-set.
func (r *fakeRecords) markHandled(h store.Handled) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if hd := h.Head; hd != nil && hd.Repository == testRepo.Name && hd.Branch == testBranch {
		if r.head != hd.From {
			return fmt.Errorf("head %s: %w", hd.To, store.ErrHandledElsewhere)
		}
	}
	if t := h.Tag; t != nil {
		if _, ok := r.tagRefs[t.Tag]; ok {
			return fmt.Errorf("tag %s: %w", t.Tag, store.ErrHandledElsewhere)
		}
		r.tagRefs[t.Tag] = *t
	}
	if hd := h.Head; hd != nil && hd.Repository == testRepo.Name && hd.Branch == testBranch {
		r.setHeads = append(r.setHeads, hd.To)
		r.head = hd.To
	}
	return nil
}

func (r *fakeRecords) ListRuns(_ context.Context, ref store.PipelineRef, limit int) ([]store.Run, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.listErr != nil {
		return nil, r.listErr
	}
	runs := r.runs[ref]
	if limit > 0 && len(runs) > limit {
		runs = runs[:limit]
	}
	return slices.Clone(runs), nil
}

func (r *fakeRecords) ListPipelines(context.Context) ([]store.Pipeline, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pipelines), r.listErr
}

func (r *fakeRecords) GetRun(_ context.Context, ref store.PipelineRef, buildID int64) (store.Run, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, run := range r.runs[ref] {
		if run.BuildID == buildID {
			return run, nil
		}
	}
	return store.Run{}, fmt.Errorf("run %s #%d: %w", ref.Name, buildID, store.ErrNotFound)
}

func (r *fakeRecords) handledHeads() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.setHeads)
}

// fakeSchedules records what the watcher tells the scheduler; signal, when set, hears each call.
type fakeSchedules struct {
	mu     sync.Mutex
	calls  []string // "repository: pipeline, pipeline"
	signal chan struct{}
}

func (s *fakeSchedules) SetSchedules(_ context.Context, repository string, pls []*pipeline.Pipeline) error {
	var names []string
	for _, p := range pls {
		names = append(names, p.Name)
	}
	s.mu.Lock()
	s.calls = append(s.calls, repository+": "+strings.Join(names, ", "))
	s.mu.Unlock()
	if s.signal != nil {
		s.signal <- struct{}{}
	}
	return nil
}

func (s *fakeSchedules) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// rig is a watcher of testRepo's main branch with fakes around it.
type rig struct {
	git       *fakeGit
	files     *fakeFiles
	runs      *fakeRuns
	records   *fakeRecords
	schedules *fakeSchedules
	metrics   *Metrics
	w         *BranchWatcher
	audit     *store.DB // the hub's audit log (a real store); nil for watcher tests
	log       *logrus.Entry
	logs      *logtest.Hook // what the rig's watchers logged
	looks     *LookQueue    // the queue r.watcher's watchers share; nil: none
}

func newRig(t *testing.T, interval time.Duration, commits ...sources.Commit) *rig {
	t.Helper()
	g := newFakeGit(t, commits...)
	records := newFakeRecords()
	r := &rig{git: g, files: newFakeFiles(g), runs: &fakeRuns{submitErr: map[string]error{}, records: records}, records: records,
		schedules: &fakeSchedules{}, metrics: newTestMetrics(t)}
	logger, hook := logtest.NewNullLogger()
	r.log, r.logs = logrus.NewEntry(logger), hook
	r.w = r.watcher(interval, r.files)
	return r
}

// watcher builds the rig's watcher around another PipelineReader.
func (r *rig) watcher(interval time.Duration, files PipelineReader) *BranchWatcher {
	return NewBranchWatcher(BranchWatcherOptions{Git: r.git, Pipelines: files, Runs: r.runs, Records: r.records,
		Repo: testRepo, Branch: testBranch, Interval: interval, Schedules: r.schedules, Metrics: r.metrics,
		Audit: r.records, Log: r.log, Looks: r.looks})
}

func newTestMetrics(t *testing.T) *Metrics {
	t.Helper()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// pl is a pipeline with the given push trigger; nil means no triggers at all (every push
// to the tracked branch).
func pl(name string, push *pipeline.PushTrigger) *pipeline.Pipeline {
	p := &pipeline.Pipeline{Name: name}
	if push != nil {
		p.Triggers = &pipeline.Triggers{Push: push}
	}
	return p
}

// recv waits for one value; the deadline only turns a hang into a clear failure.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// takeHints takes the hints queued on w, as its next look would.
func takeHints(w *BranchWatcher) []Hint {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.takeHintsLocked()
}
