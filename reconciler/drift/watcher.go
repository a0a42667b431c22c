package drift

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/util/workqueue"

	"github.com/slipwayhq/slipway/internal/mask"
	"github.com/slipwayhq/slipway/reconciler/kube"
	"github.com/slipwayhq/slipway/store"
)

// Store is what the watcher needs from the store.
type Store interface {
	currentReader
	ListRuns(ctx context.Context, ref store.PipelineRef, limit int) ([]store.Run, error)
	RecordDriftEvent(ctx context.Context, e store.NewDriftEvent) (store.DriftEvent, error)
	// GetPipeline says whether the pipeline is suspended: its drift is then only reported.
	GetPipeline(ctx context.Context, ref store.PipelineRef) (store.Pipeline, error)
}

// Clusters hands out connected clusters by name (*kube.Clusters).
type Clusters interface {
	Get(ctx context.Context, name string) (*kube.Cluster, error)
}

// DefaultSweep is how often the sweep checks watched objects even without a watch event.
const DefaultSweep = 10 * time.Minute

// Watcher detects and reports or corrects drift of the objects of current revisions: YAML
// deploys' objects and chart releases' objects alike.
type Watcher struct {
	Store    Store
	Clusters Clusters
	Metrics  *Metrics // optional
	Log      *logrus.Entry
	Sweep    time.Duration // 0: DefaultSweep
	Workers  int           // concurrent checks; 0: 4
	// Parsed is the parsed-objects cache shared with the health watch; nil: one of its own.
	Parsed *Parsed

	mu   sync.Mutex
	idle *sync.Cond
	// running is set while Run runs; reload asks it to reload the current revisions and
	// then queue the objects in pending (events a paused task missed). It reloads those of
	// the pipelines in ended (their tasks ended since the last reload), or all of them when
	// reloadAll is set.
	running   bool
	reload    chan struct{}
	pending   map[string]bool
	ended     map[store.PipelineRef]bool
	reloadAll bool
	// loaded is set once a reload of all current revisions has read them: until then every
	// reload reads all of them.
	loaded bool
	// objects are the current revisions' objects by cluster and object key.
	objects  map[string]*Object
	watches  map[string]*clusterWatch
	queue    workqueue.TypedInterface[string]
	paused   map[store.TaskRef]int             // deploys in progress
	inflight map[store.TaskRef]int             // checks or corrections in progress
	dropped  map[store.TaskRef]map[string]bool // events seen while paused
	drifted  map[string]string                 // what was last recorded for a drifted object
	verified map[string]verified               // objects last found matching, for sweeps
	own      Parsed                            // the cache when Parsed is nil
	// refreshing makes reloads one at a time: a reload reads only the revisions parsed
	// lacks, and another reload must not make parsed forget them in between.
	refreshing sync.Mutex
}

// reloadGap is the least time between two reloads asked for by tasks' ends: the runs of a
// push that deploys many applications end one after another, and the ends during the gap
// share one read of the store. The first end after a quiet spell reloads at once.
const reloadGap = time.Second

func (w *Watcher) init() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.idle = sync.NewCond(&w.mu)
	w.running = true
	w.reload = make(chan struct{}, 1)
	w.pending = map[string]bool{}
	w.ended = map[store.PipelineRef]bool{}
	w.objects = map[string]*Object{}
	w.watches = map[string]*clusterWatch{}
	w.queue = workqueue.NewTyped[string]()
	if w.paused == nil {
		w.paused = map[store.TaskRef]int{}
	}
	w.inflight = map[store.TaskRef]int{}
	w.dropped = map[store.TaskRef]map[string]bool{}
	w.drifted = map[string]string{}
	w.verified = map[string]verified{}
}

// Run watches until ctx ends. It loads the current revisions first; a task's end (and the
// sweep) makes it learn new ones. Errors are logged: a cluster that is down must not stop
// the daemon, and the sweep retries.
func (w *Watcher) Run(ctx context.Context) {
	w.init()
	if err := w.refresh(ctx, nil); err != nil {
		w.Log.WithError(err).Error("drift: load current revisions")
	}
	workers := w.Workers
	if workers <= 0 {
		workers = 4
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w.next(ctx) {
			}
		}()
	}
	t := time.NewTicker(sweepInterval(w.Sweep))
	defer t.Stop()
	sweeps := 0
	var lastReload time.Time
	for {
		select {
		case <-ctx.Done():
			w.mu.Lock()
			w.running = false
			w.mu.Unlock()
			w.queue.ShutDown()
			wg.Wait()
			w.mu.Lock()
			for _, cw := range w.watches {
				cw.stopAll()
			}
			w.mu.Unlock()
			return
		case <-w.reload:
			// A task ended: it may have stored a new revision. Ends that arrive during the
			// gap are taken by the one reload after it.
			if wait := reloadGap - time.Since(lastReload); wait > 0 {
				select {
				case <-ctx.Done():
					continue
				case <-time.After(wait):
				}
				select {
				case <-w.reload:
				default:
				}
			}
			lastReload = time.Now()
			if err := w.refresh(ctx, w.takeReload()); err != nil {
				w.Log.WithError(err).Error("drift: reload current revisions")
			}
			w.mu.Lock()
			for k := range w.pending {
				w.queue.Add(k)
			}
			clear(w.pending)
			w.mu.Unlock()
		case <-t.C:
			// Reload too: a revision stored by another process, or a cluster that was down.
			if err := w.refresh(ctx, nil); err != nil {
				w.Log.WithError(err).Error("drift: reload current revisions")
			}
			sweeps++
			w.sweep(sweeps%fullSweepEvery == 0)
		}
	}
}

// sweep queues a check of every object, or, unless full, of every object the watch caches
// do not show unchanged since it was last found matching.
func (w *Watcher) sweep(full bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	check, spared := sweepKeys(w.objects, w.verified, full, w.cachedVersionLocked)
	for _, k := range check {
		w.queue.Add(k)
	}
	w.Log.WithFields(logrus.Fields{"full": full, "checked": len(check), "unchanged": spared}).Debug("drift: sweep")
	if w.Metrics != nil {
		kind := "partial"
		if full {
			kind = "full"
		}
		w.Metrics.swept.WithLabelValues(kind, "checked").Add(float64(len(check)))
		w.Metrics.swept.WithLabelValues(kind, "unchanged").Add(float64(spared))
	}
}

// cachedVersionLocked is the resourceVersion the object's cluster's watch caches hold for
// it, or "" when they cannot tell; w.mu is held.
func (w *Watcher) cachedVersionLocked(_ string, o *Object) string {
	cw := w.watches[o.Revision.Cluster]
	if cw == nil {
		return ""
	}
	return cw.cachedVersion(o)
}

// markVerified records that o was found matching when its cache held resourceVersion (""
// records nothing), or forgets what was recorded when it was not found matching.
func (w *Watcher) markVerified(key string, o *Object, matched bool, resourceVersion string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !matched || resourceVersion == "" || w.objects[key] != o {
		delete(w.verified, key)
		return
	}
	w.verified[key] = verified{desired: o.desired, ignore: o.Ignore, resourceVersion: resourceVersion}
}

// The watches' names in the shared Parsed cache.
const (
	driftHolder  = "drift"
	healthHolder = "health"
)

// parsedCache is the shared cache, or the watcher's own.
func (w *Watcher) parsedCache() *Parsed {
	if w.Parsed != nil {
		return w.Parsed
	}
	return &w.own
}

// takeReload is the pipelines a reload asked for must read, nil for all, and clears the ask.
func (w *Watcher) takeReload() []store.PipelineRef {
	w.mu.Lock()
	defer w.mu.Unlock()
	all := w.reloadAll || !w.loaded
	ended := w.ended
	w.reloadAll, w.ended = false, map[store.PipelineRef]bool{}
	if all {
		return nil
	}
	return pipelineList(ended)
}

// pipelineList is the set's pipelines, never nil: nil would mean all of them.
func pipelineList(set map[store.PipelineRef]bool) []store.PipelineRef {
	out := make([]store.PipelineRef, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	return out
}

// currentReader is the store's reading of current revisions, for both watches:
// EachCurrentRevision leaves out the objects of revisions already parsed, and
// EachCurrentRevisionOf reads only some pipelines' (a reload after their tasks ended).
type currentReader interface {
	EachCurrentRevision(ctx context.Context, known func(*store.Revision) bool, fn func(*store.Revision) error) error
	EachCurrentRevisionOf(ctx context.Context, pipelines []store.PipelineRef, known func(*store.Revision) bool, fn func(*store.Revision) error) error
}

// eachCurrent hands fn the current revisions of the pipelines in only, or of all when only
// is nil, and returns only as a set (nil: all).
func eachCurrent(ctx context.Context, st currentReader, only []store.PipelineRef, known func(*store.Revision) bool, fn func(*store.Revision) error) (map[store.PipelineRef]bool, error) {
	if only == nil {
		return nil, st.EachCurrentRevision(ctx, known, fn)
	}
	reloaded := make(map[store.PipelineRef]bool, len(only))
	for _, p := range only {
		reloaded[p] = true
	}
	return reloaded, st.EachCurrentRevisionOf(ctx, only, known, fn)
}

// refresh reloads the current revisions and starts or stops watches to match: all of them
// when only is nil, else only those of the pipelines in only, whose runs are all that can
// have changed since (a thousand applications' runs ending one after another would
// otherwise read and copy every current revision again and again). The watches it starts
// live as long as ctx: Run's. Only a full reload stops watches of kinds no longer applied.
func (w *Watcher) refresh(ctx context.Context, only []store.PipelineRef) error {
	w.refreshing.Lock()
	defer w.refreshing.Unlock()
	parsed := w.parsedCache()
	objects := map[string]*Object{}
	kinds := map[string]map[schema.GroupVersionKind]bool{}
	current := map[parsedKey]bool{}
	var errs []error
	// Revisions with drift off are not watched: their objects need not be read either.
	known := func(rev *store.Revision) bool {
		return rev.Drift.EffectiveMode() == store.DriftOff || parsed.has(driftHolder, rev)
	}
	fn := func(rev *store.Revision) error {
		current[parsedKeyOf(rev)] = true
		if rev.Drift.EffectiveMode() == store.DriftOff {
			return nil
		}
		objs, err := parsed.objects(ctx, driftHolder, w.Clusters, rev)
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		if kinds[rev.Cluster] == nil {
			kinds[rev.Cluster] = map[schema.GroupVersionKind]bool{}
		}
		for _, o := range objs {
			objects[rev.Cluster+"|"+o.Key()] = o
			kinds[rev.Cluster][o.GroupVersionKind()] = true
		}
		return nil
	}
	reloaded, err := eachCurrent(ctx, w.Store, only, known, fn)
	if err != nil {
		if only != nil {
			// The pipelines asked for are not read: the next reload reads all of them.
			w.mu.Lock()
			w.loaded = false
			w.mu.Unlock()
		}
		return err
	}
	if reloaded == nil {
		parsed.retain(driftHolder, current)
	} else {
		parsed.retainOf(driftHolder, reloaded, current)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.running || ctx.Err() != nil {
		return errors.Join(errs...)
	}
	if reloaded == nil {
		w.objects, w.loaded = objects, true
	} else {
		for k, o := range w.objects {
			if reloaded[o.Revision.Pipeline] {
				delete(w.objects, k)
			}
		}
		for k, o := range objects {
			w.objects[k] = o
		}
	}
	for k := range w.drifted {
		if w.objects[k] == nil {
			delete(w.drifted, k)
		}
	}
	pruneMarks(w.verified, w.objects)
	if reloaded == nil {
		w.updateGauges()
	} else {
		watched := map[store.PipelineRef]bool{}
		for _, o := range objects {
			watched[o.Revision.Pipeline] = true
		}
		for p := range reloaded {
			w.setGaugeLocked(p, watched[p])
		}
	}
	if reloaded == nil {
		for name, cw := range w.watches {
			if kinds[name] == nil {
				cw.stopAll()
				delete(w.watches, name)
			}
		}
	}
	for name, gvks := range kinds {
		cw := w.watches[name]
		if cw == nil {
			cl, err := w.Clusters.Get(ctx, name)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			cw = newClusterWatch(cl, w)
			w.watches[name] = cw
		}
		if err := cw.sync(ctx, gvks, reloaded == nil); err != nil {
			errs = append(errs, err)
		}
	}
	w.Log.WithFields(logrus.Fields{"objects": len(w.objects), "reloaded": len(objects), "clusters": len(w.watches)}).Debug("drift: watching current revisions")
	return errors.Join(errs...)
}

// changed is called by the watches for a change or deletion of an owned object.
func (w *Watcher) changed(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	o := w.objects[key]
	if o == nil {
		return // an object of an older revision, or of a task with drift off
	}
	tk := writer(o.Revision)
	if w.paused[tk] > 0 {
		if w.dropped[tk] == nil {
			w.dropped[tk] = map[string]bool{}
		}
		w.dropped[tk][key] = true
		return
	}
	w.queue.Add(key)
}

// next handles one queued object; false once the queue is shut down.
func (w *Watcher) next(ctx context.Context) bool {
	key, shutdown := w.queue.Get()
	if shutdown {
		return false
	}
	defer w.queue.Done(key)
	w.mu.Lock()
	o := w.objects[key]
	if o == nil {
		w.mu.Unlock()
		return true
	}
	tk := writer(o.Revision)
	if w.paused[tk] > 0 {
		w.mu.Unlock()
		return true
	}
	w.inflight[tk]++
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.inflight[tk]--
		w.idle.Broadcast()
		w.mu.Unlock()
	}()
	w.handle(ctx, key, o)
	return true
}

func (w *Watcher) handle(ctx context.Context, key string, o *Object) {
	rev := o.Revision
	log := w.Log.WithFields(logrus.Fields{"repository": rev.Pipeline.Repository, "pipeline": rev.Pipeline.Name, "task": rev.Task, "build_id": rev.BuildID,
		"cluster": rev.Cluster, "object": o.String()})
	cl, err := w.Clusters.Get(ctx, rev.Cluster)
	if err != nil {
		log.WithError(err).Warn("drift: connect")
		return
	}
	detected := time.Now()
	// The run's secret values may be in any object (a ConfigMap, an env var), so whatever
	// shows an object's content is masked, not only Secrets.
	m := mask.New(rev.Masks...)
	// Read before the check: a write after this moves the cache's resourceVersion away
	// from the one recorded, so a sweep checks the object again.
	w.mu.Lock()
	cachedRV := w.cachedVersionLocked(key, o)
	w.mu.Unlock()
	f, err := Check(ctx, cl, o)
	w.markVerified(key, o, err == nil && f == nil, cachedRV)
	if err != nil {
		if ctx.Err() == nil {
			log.WithError(maskErr(m, err)).Warn("drift: check")
		}
		return
	}
	if f == nil {
		w.setDrifted(key, "")
		return
	}
	report := rev.Drift.EffectiveMode() == store.DriftReport || w.suspended(ctx, rev.Pipeline)
	sig := "gone"
	if !f.Gone {
		sig = f.Patch
	}
	if report && w.isDrifted(key, sig) {
		return // already recorded just so; spare the store the questions below
	}
	// Another process (slipway run, slipway rollback) may be deploying this pipeline or
	// have stored a newer revision: its applies are not drift, and the object must never be
	// set back to a revision that is no longer current.
	switch state, err := w.currency(ctx, o); {
	case err != nil:
		log.WithError(err).Warn("drift: check that the revision is still current")
		return
	case state == revisionBusy:
		time.AfterFunc(retryBusy, func() { w.changed(key) })
		return
	case state == revisionStale:
		if err := w.refresh(ctx, []store.PipelineRef{rev.Pipeline}); err != nil {
			log.WithError(err).Error("drift: reload current revisions")
		}
		w.changed(key)
		return
	}
	ev := store.NewDriftEvent{Pipeline: rev.Pipeline, BuildID: rev.BuildID, Task: rev.Task, Cluster: rev.Cluster,
		Object: o.Entry, Gone: f.Gone, Patch: f.Patch, Manager: f.Manager, ChangedAt: f.ChangedAt, DetectedAt: detected}
	if ev.ChangedAt.IsZero() {
		// No time in managedFields (a deletion, a scale): the watch event is the best witness.
		ev.ChangedAt = detected
	}
	log = log.WithFields(logrus.Fields{"gone": f.Gone, "manager": f.Manager, "patch": f.Patch})
	if report {
		if !w.setDrifted(key, sig) {
			return // already recorded just so
		}
		ev.Action = store.DriftReported
		log.Warn("drift detected")
	} else {
		ev.Action = store.DriftCorrected
		if err := Correct(ctx, cl, o); err != nil {
			err = maskErr(m, err)
			ev.Action, ev.Error = store.DriftCorrectionFailed, err.Error()
			w.setDrifted(key, "failed")
			log.WithError(err).Error("drift correction failed")
		} else {
			w.setDrifted(key, "")
			log.WithField("latency", time.Since(detected).Round(time.Millisecond)).Info("drift corrected")
		}
	}
	if _, err := w.Store.RecordDriftEvent(context.WithoutCancel(ctx), ev); err != nil {
		log.WithError(err).Error("drift: record event")
	}
	if w.Metrics != nil {
		w.Metrics.events.WithLabelValues(rev.Pipeline.Repository, rev.Pipeline.Name, string(ev.Action)).Inc()
	}
}

// maskErr is err with m's values masked in its text.
func maskErr(m *mask.Masker, err error) error {
	if m.Empty() {
		return err
	}
	return errors.New(m.String(err.Error()))
}

// retryBusy is how soon an object of a pipeline with a run under way is looked at again.
const retryBusy = 2 * time.Second

type revisionState int

const (
	revisionCurrent revisionState = iota
	revisionBusy                  // a run of the pipeline is queued or running
	revisionStale                 // the task has a newer current revision than the watcher holds
)

// currency asks the store whether o's revision is still the task's current one and no run
// of its pipeline is under way; it is asked only once drift is found, so it costs nothing
// while the cluster matches.
func (w *Watcher) currency(ctx context.Context, o *Object) (revisionState, error) {
	rev := o.Revision
	runs, err := w.Store.ListRuns(ctx, rev.Pipeline, 5)
	if err != nil {
		return 0, err
	}
	for _, r := range runs {
		if r.Status == store.RunQueued || r.Status == store.RunRunning {
			return revisionBusy, nil
		}
	}
	state := revisionStale
	err = w.Store.EachCurrentRevisionOf(ctx, []store.PipelineRef{rev.Pipeline}, func(*store.Revision) bool { return true }, func(r *store.Revision) error { // build IDs only
		if r.Task == rev.Task && r.BuildID == rev.BuildID {
			state = revisionCurrent
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return state, nil
}

// isDrifted tells whether sig is what was last recorded for the object.
func (w *Watcher) isDrifted(key, sig string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.drifted[key] == sig
}

// setDrifted records what was last seen drifted for the object ("" = matches) and tells
// whether that changed.
func (w *Watcher) setDrifted(key, sig string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.drifted[key] == sig {
		return false
	}
	if sig == "" {
		delete(w.drifted, key)
	} else {
		w.drifted[key] = sig
	}
	if o := w.objects[key]; o != nil {
		w.setGaugeLocked(o.Revision.Pipeline, true)
	}
	return true
}

// setGaugeLocked sets slipway_drift_objects of one pipeline from the drifted set, or drops
// it when the pipeline has no watched objects; w.mu is held. Counting one pipeline's
// objects only keeps a drift finding, or a reload after a task's end, from re-making every
// pipeline's gauge.
func (w *Watcher) setGaugeLocked(p store.PipelineRef, watched bool) {
	if w.Metrics == nil {
		return
	}
	if !watched {
		w.Metrics.objects.DeleteLabelValues(p.Repository, p.Name)
		return
	}
	n := 0
	for k := range w.drifted {
		if o := w.objects[k]; o != nil && o.Revision.Pipeline == p {
			n++
		}
	}
	w.Metrics.objects.WithLabelValues(p.Repository, p.Name).Set(float64(n))
}

// updateGauges sets slipway_drift_objects of every pipeline from the drifted set; w.mu is
// held.
func (w *Watcher) updateGauges() {
	if w.Metrics == nil {
		return
	}
	counts := map[store.PipelineRef]float64{}
	for _, o := range w.objects {
		counts[o.Revision.Pipeline] += 0
	}
	for k := range w.drifted {
		if o := w.objects[k]; o != nil {
			counts[o.Revision.Pipeline]++
		}
	}
	w.Metrics.objects.Reset()
	for p, n := range counts {
		w.Metrics.objects.WithLabelValues(p.Repository, p.Name).Set(n)
	}
}

// TaskStarted pauses drift handling of a deploy task while it runs (its own applies are not
// drift) and waits for checks or corrections of that task already under way. The task is
// named in full: equal pipeline and task names in another repository are another task; a
// rollback's "TASK.ENV" is the task's (pauseKey).
func (w *Watcher) TaskStarted(ref store.TaskRef) {
	ref = pauseKey(ref)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.paused == nil {
		w.paused = map[store.TaskRef]int{}
	}
	w.paused[ref]++
	for w.idle != nil && w.inflight[ref] > 0 {
		w.idle.Wait()
	}
}

// TaskEnded resumes the task: Run reloads the current revisions of its pipeline (the task
// may have stored a new one) and checks the objects that changed meanwhile.
func (w *Watcher) TaskEnded(ref store.TaskRef) {
	ref = pauseKey(ref)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.paused[ref] == 0 {
		return
	}
	w.paused[ref]--
	if w.paused[ref] == 0 {
		delete(w.paused, ref)
		for k := range w.dropped[ref] {
			if w.pending != nil {
				w.pending[k] = true
			}
		}
		delete(w.dropped, ref)
	}
	if w.running {
		w.ended[ref.Pipeline] = true
	}
	w.askReloadLocked()
}

// Reload makes Run reload all current revisions soon: the set it may see changed (with
// several replicas, the repositories this one owns).
func (w *Watcher) Reload() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reloadAll = true
	w.askReloadLocked()
}

// askReloadLocked asks a running Run to reload the current revisions; w.mu is held.
func (w *Watcher) askReloadLocked() {
	if !w.running {
		return
	}
	select {
	case w.reload <- struct{}{}:
	default: // a reload is already asked for; it will see this change too
	}
}

// sweepInterval is d, or DefaultSweep when d is not set.
func sweepInterval(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultSweep
	}
	return d
}

// suspended reports whether the pipeline is suspended; one the store cannot answer for is
// taken as suspended, so nothing is changed on a guess.
func (w *Watcher) suspended(ctx context.Context, ref store.PipelineRef) bool {
	p, err := w.Store.GetPipeline(ctx, ref)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return false
		}
		w.Log.WithError(err).WithField("pipeline", ref.Name).Warn("drift: read whether the pipeline is suspended; reporting only")
		return true
	}
	return p.Suspended
}
