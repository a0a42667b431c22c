package reconciler

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/internal/mask"
	"github.com/slipwayhq/slipway/internal/repofs"
	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/policy"
	"github.com/slipwayhq/slipway/render"
	"github.com/slipwayhq/slipway/store"
)

// runContext is everything the tasks of one run share.
type runContext struct {
	run      store.Run
	pipeline *pipeline.Pipeline
	checkout *Checkout
	// The checkout the tasks read: the commit's, shared with its other readers, until the
	// run's first script makes the run's own (ownWorkspace); wsMu serialises that.
	wsMu      sync.Mutex
	repo      *repofs.Repo   // read only through it; guarded by mu
	workspace string         // the run's own checkout once made, else ""
	replaced  []*repofs.Repo // the shared checkout's, once replaced; guarded by mu
	// releaseCheckout gives back a checkout shared with the commit's other runs.
	releaseCheckout func()
	limits          pipeline.Limits // what the repository's files may cost
	log             *logrus.Entry
	store           store.Store
	state           *RunState     // what the dispatcher sees: whether the run only waits for health
	artifact        *artifactVars // a promotion's: what the artifact run rendered with
	// preview: nothing of it is recorded (task logs go to the daemon's log only).
	preview bool

	mu      sync.Mutex
	vars    render.Map
	secrets []string                    // values to mask, longest first
	after   []func(ctx context.Context) // work for the end of a successful run

	maskMu sync.RWMutex
	masks  []string     // secrets, and those of revisions a rollback restores
	masker *mask.Masker // masks every form of masks
}

// afterSuccess registers work to do once every stage has succeeded.
func (rc *runContext) afterSuccess(f func(ctx context.Context)) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.after = append(rc.after, f)
}

// hasAfterSuccess tells whether work waits for the run's success (runAfterSuccess).
func (rc *runContext) hasAfterSuccess() bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.after) > 0
}

func (rc *runContext) runAfterSuccess(ctx context.Context) {
	rc.mu.Lock()
	fs := rc.after
	rc.mu.Unlock()
	for _, f := range fs {
		f(ctx)
	}
}

// newRunContext sets up what the run's tasks share: for a pipeline run the checkout of
// its commit, the variables and the secrets; a rollback re-applies stored objects and needs
// none of these.
func (r *Runner) newRunContext(ctx context.Context, job Job, run store.Run, state *RunState, log *logrus.Entry) (*runContext, error) {
	if state == nil {
		state = &RunState{}
	}
	rc := &runContext{run: run, pipeline: job.pipeline, checkout: job.checkout, log: log, store: r.store, state: state}
	if job.IsRollback() {
		// What a rollback re-applies holds the secret values of the runs that stored it.
		revs, err := r.store.ListRevisions(ctx, job.Ref, job.Parent)
		if err != nil {
			return nil, fmt.Errorf("rollback %s to BUILD_ID %d: %w", job.Ref.Name, job.Parent, err)
		}
		for _, rev := range revs {
			rc.addMasks(rev.Masks)
		}
		return rc, nil
	}
	co, p := job.checkout, job.pipeline
	// Shared even when a script will write: the run's own copy is made by its first script
	// once that has a build slot, so a run waiting for one keeps no copy of the commit's
	// files, and a run without scripts never makes one (image builds only read).
	sc, release, err := r.checkouts.acquire(ctx, co.Repo, co.Commit.Hash)
	if err != nil {
		return nil, err
	}
	rc.releaseCheckout = release
	if rc.repo, err = repofs.Open(sc.dir); err != nil {
		rc.close()
		return nil, err
	}
	rc.limits = r.limitsOf(co.Repo.Name)
	if job.promote != nil {
		if rc.artifact, err = r.loadArtifact(ctx, job.Ref, job.promote.artifact); err != nil {
			rc.close()
			return nil, err
		}
	}
	if err := r.resolveVars(ctx, rc, co, p); err != nil {
		rc.close()
		return nil, err
	}
	return rc, nil
}

// ownWorkspace makes the run's own checkout of its commit the one its tasks read from now
// on, once, and returns it: a script may write it, and what it writes is what later tasks
// read.
func (r *Runner) ownWorkspace(ctx context.Context, rc *runContext) (string, error) {
	rc.wsMu.Lock()
	defer rc.wsMu.Unlock()
	if rc.workspace != "" {
		return rc.workspace, nil
	}
	ws, err := os.MkdirTemp(r.workRoot(), "run-")
	if err != nil {
		return "", fmt.Errorf("workspace: %w", err)
	}
	if err := r.sources.Checkout(ctx, rc.checkout.Repo, rc.checkout.Commit.Hash, ws); err != nil {
		_ = os.RemoveAll(ws)
		return "", fmt.Errorf("workspace: %w", err)
	}
	repo, err := repofs.Open(ws)
	if err != nil {
		_ = os.RemoveAll(ws)
		return "", err
	}
	rc.mu.Lock()
	// A task of a parallel stage may still read the shared checkout: closed at the end.
	rc.replaced = append(rc.replaced, rc.repo)
	rc.workspace, rc.repo = ws, repo
	rc.mu.Unlock()
	return ws, nil
}

// files is the checkout the run's tasks read now.
func (rc *runContext) files() *repofs.Repo {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.repo
}

// resolveVars sets the run's variables (built-ins, declared ones) and reads its secrets.
// Runs and previews both come here.
func (r *Runner) resolveVars(ctx context.Context, rc *runContext, co *Checkout, p *pipeline.Pipeline) error {
	vars := builtinVars(co, p, rc.run)
	vars["ENVIRONMENT"] = "" // set per task for the tasks that deploy to an environment (varsFor)
	if rc.artifact != nil {
		rc.artifact.restore(vars)
	}
	// Declared variables may use built-ins (validation guarantees nothing else).
	for name, v := range p.Variables {
		s, err := render.Substitute(v, vars)
		if err != nil {
			return fmt.Errorf("variable %s: %w", name, err)
		}
		vars[name] = s
	}
	grants := policy.For(r.config, rc.run.Pipeline.Repository)
	for _, s := range p.Secrets {
		val, err := r.secretValue(ctx, grants, s)
		if err != nil {
			return fmt.Errorf("secret %s: %w", s.Name, err)
		}
		vars[s.Name] = val
		if val != "" {
			rc.secrets = append(rc.secrets, val)
		}
	}
	sort.Slice(rc.secrets, func(i, j int) bool { return len(rc.secrets[i]) > len(rc.secrets[j]) })
	rc.addMasks(rc.secrets)
	rc.vars = vars
	return nil
}

// builtinVars are the variables every run has, as docs/pipeline.md lists them. VERSION is
// the tag without a leading v for a run of a tag, else 0.0.0-BUILD_ID+SHORT_COMMIT: SemVer 2
// (a pre-release ordered by BUILD_ID, the commit as build metadata).
func builtinVars(co *Checkout, p *pipeline.Pipeline, run store.Run) render.Map {
	tag := run.Tag
	version := strings.TrimPrefix(tag, "v")
	if tag == "" {
		version = "0.0.0-" + buildIDString(run.BuildID) + "+" + co.Commit.ShortHash
	}
	return render.Map{
		"BUILD_ID":         buildIDString(run.BuildID),
		"PIPELINE":         p.Name,
		"GIT_COMMIT":       co.Commit.Hash,
		"GIT_SHORT_COMMIT": co.Commit.ShortHash,
		"GIT_BRANCH":       co.Branch,
		"GIT_TAG":          tag,
		"VERSION":          version,
		"TRIGGER":          string(run.Trigger),
	}
}

// secretValue reads a secret from its file or its Kubernetes Secret, once the repository's
// grants allow that source: the run checked the pipeline as written before it started,
// this checks what is on the host (symlinks resolved) right before reading.
func (r *Runner) secretValue(ctx context.Context, grants policy.Policy, s pipeline.Secret) (string, error) {
	if s.File != "" {
		root, rel, err := grants.SecretFile(s.Name, s.File)
		if err != nil {
			return "", err
		}
		dir, err := os.OpenRoot(root)
		if err != nil {
			return "", fmt.Errorf("read file: %w", err)
		}
		defer dir.Close()
		b, err := dir.ReadFile(rel)
		if err != nil {
			return "", fmt.Errorf("read file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	if s.Cluster == "" {
		return "", fmt.Errorf("Kubernetes Secret %s has no cluster: set cluster to a name from slipway.yaml", s.Secret)
	}
	if err := policy.DeniedFor("", policy.RuleSecrets, grants.KubernetesSecretDenied(s)); err != nil {
		return "", err
	}
	cl, err := r.clusters.Get(ctx, s.Cluster)
	if err != nil {
		return "", err
	}
	ns := policy.SecretNamespace(s)
	sec, err := cl.Clientset.CoreV1().Secrets(ns).Get(ctx, s.Secret, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("read Kubernetes Secret %s/%s on %s: %w", ns, s.Secret, s.Cluster, err)
	}
	v, ok := sec.Data[s.Key]
	if !ok {
		return "", fmt.Errorf("Kubernetes Secret %s/%s has no key %q", ns, s.Secret, s.Key)
	}
	return string(v), nil
}

// varsFor is the variables of a task deploying to environment env ("" for none): for an
// environment, ENVIRONMENT is its name, the pipeline's variables are resolved again with it,
// and the environment's own values replace theirs.
func (rc *runContext) varsFor(env string) (render.Map, error) {
	vars := rc.varsSnapshot()
	e := rc.pipeline.Environment(env)
	if e == nil {
		return vars, nil
	}
	vars["ENVIRONMENT"] = e.Name
	builtins := make(render.Map, len(pipeline.Builtins()))
	for _, name := range pipeline.Builtins() {
		builtins[name] = vars[name]
	}
	for name, raw := range rc.pipeline.Variables {
		if over, ok := e.Variables[name]; ok {
			raw = over
		}
		s, err := render.Substitute(raw, builtins)
		if err != nil {
			return nil, fmt.Errorf("environment %s: variable %s: %w", e.Name, name, err)
		}
		vars[name] = s
	}
	return vars, nil
}

// varsSnapshot is the variables as they are now, outputs of finished tasks included.
func (rc *runContext) varsSnapshot() render.Map {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make(render.Map, len(rc.vars))
	for k, v := range rc.vars {
		out[k] = v
	}
	return out
}

func (rc *runContext) setOutputs(task string, outputs map[string]string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for k, v := range outputs {
		rc.vars["tasks."+task+"."+k] = v
	}
}

// pinnedImages maps each image built in this run (repo:tag) to repo:tag@digest.
func (rc *runContext) pinnedImages() map[string]string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	pins := map[string]string{}
	for k, image := range rc.vars {
		task, ok := strings.CutPrefix(k, "tasks.")
		if !ok || !strings.HasSuffix(task, ".image") {
			continue
		}
		if digest := rc.vars[strings.TrimSuffix(k, ".image")+".digest"]; digest != "" {
			pins[image] = image + "@" + digest
		}
	}
	return pins
}

// mask hides secret values, in every form internal/mask knows, in text bound for logs,
// records and errors.
func (rc *runContext) mask(s string) string {
	rc.maskMu.RLock()
	defer rc.maskMu.RUnlock()
	return rc.masker.String(s)
}

// addMasks adds values to mask from now on (a restored revision's, say).
func (rc *runContext) addMasks(values []string) {
	rc.maskMu.Lock()
	defer rc.maskMu.Unlock()
	added := false
	for _, v := range values {
		if v != "" && !slices.Contains(rc.masks, v) {
			rc.masks = append(rc.masks, v)
			added = true
		}
	}
	if added || rc.masker == nil {
		rc.masker = mask.New(rc.masks...)
	}
}

// maskValues are the values the run masks, for a revision to keep.
func (rc *runContext) maskValues() []string {
	rc.maskMu.RLock()
	defer rc.maskMu.RUnlock()
	return slices.Clone(rc.masks)
}

func (rc *runContext) close() {
	for _, repo := range append(rc.replaced, rc.repo) {
		if repo != nil {
			_ = repo.Close()
		}
	}
	if rc.workspace != "" {
		_ = os.RemoveAll(rc.workspace)
	}
	if rc.releaseCheckout != nil {
		rc.releaseCheckout()
		rc.releaseCheckout = nil
	}
}

// taskLog collects a task's log lines: masked, echoed to the daemon's log, and stored in
// batches, since every store write is a transaction.
type taskLog struct {
	rc      *runContext
	task    string
	mu      sync.Mutex
	pending []store.LogLine
	// flushing is held from taking the pending lines to storing them, so two flushes
	// (a periodic one and a full buffer's) store lines in the order they were written.
	flushing sync.Mutex
}

func (rc *runContext) taskLog(task string) *taskLog { return &taskLog{rc: rc, task: task} }

// Printf records one line of Slipway's own about the task.
func (tl *taskLog) Printf(format string, args ...any) {
	line := tl.rc.mask(fmt.Sprintf(format, args...))
	tl.rc.log.WithField("task", tl.task).Info(line)
	tl.mu.Lock()
	tl.pending = append(tl.pending, store.LogLine{Time: time.Now(), Stream: store.StreamSystem, Text: line})
	full := len(tl.pending) >= 100
	tl.mu.Unlock()
	if full {
		tl.flush(context.Background())
	}
}

// output records one line a script printed (already masked).
func (tl *taskLog) output(stream store.LogStream, line string) {
	tl.rc.log.WithFields(logrus.Fields{"task": tl.task, "stream": stream}).Debug(line)
	tl.mu.Lock()
	tl.pending = append(tl.pending, store.LogLine{Time: time.Now(), Stream: stream, Text: line})
	full := len(tl.pending) >= 100
	tl.mu.Unlock()
	if full {
		tl.flush(context.Background())
	}
}

// liveLogFlush is how long a task's line may wait before it is stored: live views (`slipway
// logs -f`, the API's stream, the web console) show it that much later at most. A tick with
// no new line costs nothing.
const liveLogFlush = 100 * time.Millisecond

// flushEvery stores the lines gathered so far at each tick until stop is called, so that a
// build's, a deploy's or a script's lines are seen while the task runs.
func (tl *taskLog) flushEvery(ctx context.Context, every time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				tl.flush(context.WithoutCancel(ctx))
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// ending hands the lines not yet stored (none in a preview) to end, which stores them with
// the task's end in one write; flushes wait meanwhile, so lines keep the order they were
// written in.
func (tl *taskLog) ending(end func(lines []store.LogLine)) {
	tl.flushing.Lock()
	defer tl.flushing.Unlock()
	end(tl.takePending())
}

// riding hands the lines not yet stored to write, a store write of the task's own that
// stores them with what it records (a deploy's revision), so they cost no write of their
// own; flushes wait meanwhile. Lines write fails to store go back to the front of the
// queue, for the next flush or the task's end.
func (tl *taskLog) riding(write func(lines []store.LogLine) error) error {
	tl.flushing.Lock()
	defer tl.flushing.Unlock()
	lines := tl.takePending()
	err := write(lines)
	if err != nil && len(lines) > 0 {
		tl.mu.Lock()
		tl.pending = append(lines, tl.pending...)
		tl.mu.Unlock()
	}
	return err
}

// takePending takes the lines not yet stored (none in a preview, which stores no log); the
// caller holds flushing.
func (tl *taskLog) takePending() []store.LogLine {
	tl.mu.Lock()
	lines := tl.pending
	tl.pending = nil
	tl.mu.Unlock()
	if tl.rc.preview {
		return nil
	}
	return lines
}

func (tl *taskLog) flush(ctx context.Context) {
	tl.flushing.Lock()
	defer tl.flushing.Unlock()
	lines := tl.takePending()
	if len(lines) == 0 {
		return
	}
	if err := tl.rc.store.AppendLogs(ctx, tl.rc.run.Pipeline, tl.rc.run.BuildID, tl.task, lines); err != nil {
		tl.rc.log.WithError(err).WithField("task", tl.task).Error("store task log")
	}
}
