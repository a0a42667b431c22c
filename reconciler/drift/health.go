package drift

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/slipwayhq/slipway/internal/mask"
	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/reconciler/apply"
	"github.com/slipwayhq/slipway/store"
)

// HealthStore is what the health watch needs from the store.
type HealthStore interface {
	currentReader
	GetRevision(ctx context.Context, ref store.PipelineRef, buildID int64, task string) (store.Revision, error)
	TransitionRevision(ctx context.Context, ref store.PipelineRef, buildID int64, task string, from, to store.RevisionStatus, reason string) (store.Revision, error)
	GetRun(ctx context.Context, ref store.PipelineRef, buildID int64) (store.Run, error)
	ListRuns(ctx context.Context, ref store.PipelineRef, limit int) ([]store.Run, error)
	RecordDriftEvent(ctx context.Context, e store.NewDriftEvent) (store.DriftEvent, error)
}

// Rollbacks starts rollback runs (*reconciler.Dispatcher): only when the pipeline is idle,
// so a health finding never queues behind, or supersedes, a deploy.
type Rollbacks interface {
	SubmitIfIdle(ctx context.Context, job reconciler.Job) (store.Run, error)
}

// HealthWatch keeps an eye on the workloads of current revisions after their deploy: the
// stability window ends, crashes may start later. A pod that fails, restarts or turns
// unready is recorded as a health event (action unhealthy) on the revision, which is marked
// failed so it is never a rollback target; with healthWatch: rollback one rollback run
// goes back to the task's previous healthy revision. The healthy -> failed move happens
// once per revision (a compare-and-set in the store), so each revision starts at most one
// automatic rollback, also across restarts; a revision a rollback run deployed is never
// rolled back automatically, so two bad revisions cannot take turns.
type HealthWatch struct {
	Store     HealthStore
	Clusters  Clusters
	Rollbacks Rollbacks // nil: report only
	Log       *logrus.Entry
	Sweep     time.Duration // how often current revisions are reloaded without a task event; 0: DefaultSweep
	// Parsed is the parsed-objects cache shared with the drift watch; nil: one of its own.
	Parsed *Parsed

	mu        sync.Mutex
	ctx       context.Context
	workloads map[string][]*healthTarget                     // by cluster|namespace
	informers map[string]context.CancelFunc                  // pod informers, by cluster|namespace
	paused    map[store.TaskRef]int                          // deploys in progress
	seen      map[string]time.Time                           // last trouble, by workload of a revision (healthTarget.key)
	handled   map[string]store.PipelineRef                   // revisions whose first trouble is being or was acted on, by revKey
	pipelines map[store.PipelineRef]map[string]*healthTarget // current workloads, by pipeline and healthTarget.key
	own       Parsed                                         // the cache when Parsed is nil
	// refreshing makes reloads one at a time: a reload reads only the revisions parsed
	// lacks, and another reload must not make parsed forget them in between.
	refreshing sync.Mutex
	// A reload after a task's end runs one at a time and reads the pipelines whose tasks
	// ended before it (ended); ends meanwhile ask for one more, reloadGap after the last.
	reloading bool
	ended     map[store.PipelineRef]bool
	// loaded is set once a reload of all current revisions has read them: until then a
	// reload after a task's end reads all of them too.
	loaded bool
}

// healthTarget is one workload of a current revision and the pods it selects.
type healthTarget struct {
	rev   *store.Revision
	entry store.InventoryEntry
	sel   labels.Selector
}

func (t *healthTarget) key() string {
	return revKey(t.rev) + "|" + t.entry.Key()
}

func revKey(r *store.Revision) string {
	return fmt.Sprintf("%s|%s|%d", r.Pipeline, r.Task, r.BuildID)
}

// recentTrouble is how long a workload counts in slipway_unhealthy_objects after its last
// pod failure: long enough for a scrape to see it, short enough to clear once it recovers.
const recentTrouble = 5 * time.Minute

// Run watches until ctx ends.
func (h *HealthWatch) Run(ctx context.Context) {
	h.mu.Lock()
	h.ctx = ctx
	h.informers = map[string]context.CancelFunc{}
	if h.paused == nil {
		h.paused = map[store.TaskRef]int{}
	}
	h.seen, h.handled = map[string]time.Time{}, map[string]store.PipelineRef{}
	h.mu.Unlock()
	if err := h.Refresh(ctx); err != nil {
		h.Log.WithError(err).Error("health watch: load current revisions")
	}
	t := time.NewTicker(sweepInterval(h.Sweep))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			h.mu.Lock()
			for k, stop := range h.informers {
				stop()
				delete(h.informers, k)
			}
			h.mu.Unlock()
			return
		case <-t.C:
			if err := h.Refresh(ctx); err != nil {
				h.Log.WithError(err).Error("health watch: reload current revisions")
			}
		}
	}
}

// Refresh reloads the current revisions' workloads and starts or stops pod informers (one
// per namespace holding workloads) to match.
func (h *HealthWatch) Refresh(ctx context.Context) error {
	return h.refresh(ctx, nil)
}

// refresh is Refresh for all current revisions (only nil) or for those of the pipelines in
// only: their runs are all that can have changed since. Only a full reload stops informers
// of namespaces left without workloads.
func (h *HealthWatch) refresh(ctx context.Context, only []store.PipelineRef) error {
	h.refreshing.Lock()
	defer h.refreshing.Unlock()
	parsed := h.Parsed
	if parsed == nil {
		parsed = &h.own
	}
	workloads := map[string][]*healthTarget{}
	pipelines := map[store.PipelineRef]map[string]*healthTarget{}
	current := map[parsedKey]bool{}
	revKeys := map[string]bool{}
	var errs []error
	// Revisions with the health watch off are not watched: their objects need not be read.
	known := func(rev *store.Revision) bool {
		return rev.Drift.EffectiveHealth() == store.HealthOff || parsed.has(healthHolder, rev)
	}
	// The workloads' selectors are worked out after the read, which fn must keep short: it
	// holds one of the store's connections.
	var watched [][]*Object
	fn := func(rev *store.Revision) error {
		current[parsedKeyOf(rev)] = true
		revKeys[revKey(rev)] = true
		if pipelines[rev.Pipeline] == nil {
			pipelines[rev.Pipeline] = map[string]*healthTarget{}
		}
		if rev.Drift.EffectiveHealth() == store.HealthOff {
			return nil
		}
		objs, err := parsed.objects(ctx, healthHolder, h.Clusters, rev)
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		watched = append(watched, objs)
		return nil
	}
	reloaded, err := eachCurrent(ctx, h.Store, only, known, fn)
	if err != nil {
		if only != nil {
			// The pipelines asked for are not read: the next reload reads all of them.
			h.mu.Lock()
			h.loaded = false
			h.mu.Unlock()
		}
		return err
	}
	for _, objs := range watched {
		for _, o := range objs {
			sel, err := o.selector, o.selectorErr
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", o, err))
				continue
			}
			if sel == nil {
				continue
			}
			rev := o.Revision
			t := &healthTarget{rev: rev, entry: o.Entry, sel: sel}
			nk := rev.Cluster + "|" + o.Entry.Namespace
			workloads[nk] = append(workloads[nk], t)
			pipelines[rev.Pipeline][t.key()] = t
		}
	}
	if reloaded == nil {
		parsed.retain(healthHolder, current)
	} else {
		parsed.retainOf(healthHolder, reloaded, current)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx == nil || h.ctx.Err() != nil {
		return errors.Join(errs...)
	}
	if reloaded == nil {
		h.workloads, h.pipelines, h.loaded = workloads, pipelines, true
	} else {
		h.mergeLocked(reloaded, workloads, pipelines)
	}
	for k := range h.seen {
		if !currentKey(h.pipelines, k) {
			delete(h.seen, k)
		}
	}
	for k, p := range h.handled {
		if !revKeys[k] && (reloaded == nil || reloaded[p]) {
			delete(h.handled, k)
		}
	}
	if reloaded == nil {
		for nk, stop := range h.informers {
			if h.workloads[nk] == nil {
				stop()
				delete(h.informers, nk)
			}
		}
	}
	for nk, ts := range workloads {
		if h.informers[nk] != nil {
			continue
		}
		cl, err := h.Clusters.Get(ctx, ts[0].rev.Cluster)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		h.informers[nk] = h.watchPods(cl.Name, ts[0].entry.Namespace, cl.Clientset.CoreV1().Pods(ts[0].entry.Namespace))
	}
	return errors.Join(errs...)
}

// mergeLocked puts the reloaded pipelines' workloads in place of what was held for them;
// h.mu is held.
func (h *HealthWatch) mergeLocked(reloaded map[store.PipelineRef]bool, workloads map[string][]*healthTarget, pipelines map[store.PipelineRef]map[string]*healthTarget) {
	// The namespaces where a reloaded pipeline had workloads, and those where it has them now.
	touched := map[string]bool{}
	for p := range reloaded {
		for _, t := range h.pipelines[p] {
			touched[t.rev.Cluster+"|"+t.entry.Namespace] = true
		}
		delete(h.pipelines, p)
	}
	for nk := range workloads {
		touched[nk] = true
	}
	for nk := range touched {
		var kept []*healthTarget
		for _, t := range h.workloads[nk] {
			if !reloaded[t.rev.Pipeline] {
				kept = append(kept, t)
			}
		}
		kept = append(kept, workloads[nk]...)
		if len(kept) == 0 {
			delete(h.workloads, nk)
		} else {
			h.workloads[nk] = kept
		}
	}
	for p, ts := range pipelines {
		h.pipelines[p] = ts
	}
}

// podClient is the part of the clientset's pod client an informer needs.
type podClient interface {
	List(ctx context.Context, opts metav1.ListOptions) (*corev1.PodList, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

// watchPods runs an informer on the namespace's pods. The pods already there when it
// starts are the baseline: only what changes afterwards counts.
func (h *HealthWatch) watchPods(cluster, namespace string, pods podClient) context.CancelFunc {
	ctx, cancel := context.WithCancel(h.ctx)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return pods.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return pods.Watch(ctx, o)
		},
	}
	inf := cache.NewSharedIndexInformer(lw, &corev1.Pod{}, 0, cache.Indexers{})
	_ = inf.SetTransform(slimPod)
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, initial bool) {
			if p, ok := obj.(*corev1.Pod); ok && !initial {
				h.podChanged(cluster, namespace, nil, p)
			}
		},
		UpdateFunc: func(old, cur any) {
			o, ok1 := old.(*corev1.Pod)
			n, ok2 := cur.(*corev1.Pod)
			if ok1 && ok2 {
				h.podChanged(cluster, namespace, o, n)
			}
		},
	})
	go inf.RunWithContext(ctx)
	return cancel
}

// podChanged finds the workloads a troubled pod belongs to and acts on the first trouble
// of each revision.
func (h *HealthWatch) podChanged(cluster, namespace string, before, now *corev1.Pod) {
	reason := apply.PodTrouble(before, now)
	if reason == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range h.workloads[cluster+"|"+namespace] {
		if !t.sel.Matches(labels.Set(now.Labels)) || h.paused[writer(t.rev)] > 0 {
			continue
		}
		h.seen[t.key()] = time.Now()
		rk := revKey(t.rev)
		if _, handled := h.handled[rk]; handled || t.rev.Status != store.RevisionHealthy {
			continue // counted; only a healthy revision can turn unhealthy
		}
		h.handled[rk] = t.rev.Pipeline
		go h.unhealthy(h.ctx, t, fmt.Sprintf("pod %s: %s", now.Name, reason))
	}
}

// unhealthy acts on a revision's first trouble after its deploy: it marks the revision
// failed, records the health event, and with healthWatch: rollback starts a rollback run.
func (h *HealthWatch) unhealthy(ctx context.Context, t *healthTarget, reason string) {
	rev := t.rev
	log := h.Log.WithFields(logrus.Fields{"pipeline": rev.Pipeline.Name, "task": rev.Task, "build_id": rev.BuildID,
		"object": objectString(t.entry), "reason": reason})
	// A later trouble looks again, but not before retryBusy: pods of a crash loop fail
	// every few seconds, and each look asks the store.
	retry := func() {
		time.AfterFunc(retryBusy, func() {
			h.mu.Lock()
			delete(h.handled, revKey(rev))
			h.mu.Unlock()
		})
	}
	// A run of the pipeline under way (here or in another process) is deploying: its
	// rollout is not this revision's trouble, and it will store a newer revision.
	if busy, err := h.busy(ctx, rev); err != nil || busy {
		if err != nil {
			log.WithError(err).Warn("health watch: check that the revision is still current")
		}
		retry()
		return
	}
	// A pod's message may quote what it was given (an env var, an argument).
	reason = mask.New(rev.Masks...).String(reason)
	note := "unhealthy after its deploy: " + objectString(t.entry) + ": " + reason
	_, err := h.Store.TransitionRevision(ctx, rev.Pipeline, rev.BuildID, rev.Task, store.RevisionHealthy, store.RevisionFailed, note)
	first := err == nil
	if err != nil && !errors.Is(err, store.ErrStatusConflict) {
		log.WithError(err).Error("health watch: mark the revision failed")
		retry()
		return
	}
	action := ""
	if first && rev.Drift.EffectiveHealth() == store.HealthRollback {
		action = h.rollback(ctx, rev)
	}
	if !first {
		// Marked failed already (by this process before a restart, or another): recorded then.
		return
	}
	ev := store.NewDriftEvent{Pipeline: rev.Pipeline, BuildID: rev.BuildID, Task: rev.Task, Cluster: rev.Cluster,
		Object: t.entry, Action: store.HealthUnhealthy, DetectedAt: time.Now(), Error: reason + action}
	if _, err := h.Store.RecordDriftEvent(context.WithoutCancel(ctx), ev); err != nil {
		log.WithError(err).Error("health watch: record event")
	}
	log.WithField("action", action).Warn("workload unhealthy after its deploy")
}

// busy tells whether a run of the revision's pipeline is queued or running, or the
// revision is no longer its task's current one.
func (h *HealthWatch) busy(ctx context.Context, rev *store.Revision) (bool, error) {
	runs, err := h.Store.ListRuns(ctx, rev.Pipeline, 5)
	if err != nil {
		return false, err
	}
	for _, r := range runs {
		if r.Status == store.RunQueued || r.Status == store.RunRunning {
			return true, nil
		}
	}
	cur, err := h.Store.GetRevision(ctx, rev.Pipeline, rev.BuildID, rev.Task)
	if err != nil {
		return false, err
	}
	return cur.Status != store.RevisionHealthy, nil
}

// rollback starts the one automatic rollback of a revision and says what it did, for the
// health event.
func (h *HealthWatch) rollback(ctx context.Context, rev *store.Revision) string {
	if h.Rollbacks == nil {
		return "; not rolled back: this process does not run pipelines"
	}
	run, err := h.Store.GetRun(ctx, rev.Pipeline, rev.BuildID)
	if err != nil {
		return "; not rolled back: " + err.Error()
	}
	if run.Trigger == store.TriggerRollback {
		return "; not rolled back: the revision was itself deployed by a rollback"
	}
	to, err := h.previousHealthy(ctx, rev)
	if err != nil {
		return "; not rolled back: " + err.Error()
	}
	started, err := h.Rollbacks.SubmitIfIdle(ctx, reconciler.RollbackJob(rev.Pipeline, to))
	if err != nil {
		return "; not rolled back: " + err.Error()
	}
	return fmt.Sprintf("; rollback run BUILD_ID %d to BUILD_ID %d started", started.BuildID, to)
}

// previousHealthy is the newest earlier run whose revision of the task is healthy: one
// that passed its stability window and did not fail later.
func (h *HealthWatch) previousHealthy(ctx context.Context, rev *store.Revision) (int64, error) {
	runs, err := h.Store.ListRuns(ctx, rev.Pipeline, 0)
	if err != nil {
		return 0, err
	}
	for _, r := range runs {
		if r.BuildID >= rev.BuildID {
			continue
		}
		prev, err := h.Store.GetRevision(ctx, rev.Pipeline, r.BuildID, rev.Task)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if prev.Status == store.RevisionHealthy {
			return r.BuildID, nil
		}
	}
	return 0, errors.New("no earlier healthy revision")
}

// RunEvent makes the health watch a reconciler.Observer: a deploy task pauses it for its
// task (its own rollout replaces pods), and its end reloads the current revisions.
func (h *HealthWatch) RunEvent(e reconciler.Event) {
	if e.Task == "" {
		return
	}
	tk := pauseKey(store.TaskRef{Pipeline: store.PipelineRef{Repository: e.Repository, Name: e.Pipeline}, Task: e.Task})
	h.mu.Lock()
	if h.paused == nil {
		h.paused = map[store.TaskRef]int{}
	}
	if e.Status == string(store.TaskRunning) {
		h.paused[tk]++
		h.mu.Unlock()
		return
	}
	if h.paused[tk] > 0 {
		h.paused[tk]--
	}
	if h.paused[tk] == 0 {
		delete(h.paused, tk)
	}
	ctx := h.ctx
	if ctx == nil || ctx.Err() != nil {
		h.mu.Unlock()
		return
	}
	if h.ended == nil {
		h.ended = map[store.PipelineRef]bool{}
	}
	h.ended[tk.Pipeline] = true
	if h.reloading {
		h.mu.Unlock()
		return
	}
	h.reloading = true
	h.mu.Unlock()
	go h.reloadLoop(ctx)
}

// reloadLoop reloads the current revisions of the pipelines whose tasks ended until none
// ended during the last reload; consecutive reloads are reloadGap apart, so the ends of
// many runs share reloads.
func (h *HealthWatch) reloadLoop(ctx context.Context) {
	for {
		start := time.Now()
		// Ends during the wait are covered by the reload that follows.
		h.mu.Lock()
		only := pipelineList(h.ended)
		if !h.loaded {
			only = nil // nothing to add to: all of them
		}
		clear(h.ended)
		h.mu.Unlock()
		if err := h.refresh(ctx, only); err != nil {
			h.Log.WithError(err).Error("health watch: reload current revisions")
		}
		h.mu.Lock()
		if len(h.ended) == 0 || ctx.Err() != nil {
			h.reloading = false
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(reloadGap - time.Since(start)):
		}
	}
}

// unhealthyDesc is slipway_unhealthy_objects.
var unhealthyDesc = prometheus.NewDesc("slipway_unhealthy_objects",
	"Workloads of current revisions with a pod that failed, restarted or turned unready after the deploy in the last 5 minutes, by repository and pipeline.",
	[]string{"repository", "pipeline"}, nil)

// Describe implements prometheus.Collector.
func (h *HealthWatch) Describe(ch chan<- *prometheus.Desc) { ch <- unhealthyDesc }

// Collect implements prometheus.Collector: counted when scraped, so a workload that
// recovered drops out without a timer.
func (h *HealthWatch) Collect(ch chan<- prometheus.Metric) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	for p, ts := range h.pipelines {
		n := 0
		for k := range ts {
			if at, ok := h.seen[k]; ok && now.Sub(at) < recentTrouble {
				n++
			}
		}
		ch <- prometheus.MustNewConstMetric(unhealthyDesc, prometheus.GaugeValue, float64(n), p.Repository, p.Name)
	}
}

// currentKey tells whether a workload key (healthTarget.key) is one of the current workloads.
func currentKey(pipelines map[store.PipelineRef]map[string]*healthTarget, k string) bool {
	for _, ts := range pipelines {
		if ts[k] != nil {
			return true
		}
	}
	return false
}

func objectString(e store.InventoryEntry) string {
	if e.Namespace != "" {
		return e.Kind + "/" + e.Namespace + "/" + e.Name
	}
	return e.Kind + "/" + e.Name
}

// workloadSelector is the pod selector of a workload, u being the object as applied (nil
// for anything else).
func workloadSelector(e store.InventoryEntry, u *unstructured.Unstructured) (labels.Selector, error) {
	if e.Group != "apps" {
		return nil, nil
	}
	switch e.Kind {
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet":
	default:
		return nil, nil
	}
	raw, found, err := unstructured.NestedMap(u.Object, "spec", "selector")
	if err != nil || !found {
		return nil, err
	}
	var ls metav1.LabelSelector
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &ls); err != nil {
		return nil, fmt.Errorf("spec.selector: %w", err)
	}
	sel, err := metav1.LabelSelectorAsSelector(&ls)
	if err != nil || sel.Empty() {
		return nil, err // an empty selector would claim every pod of the namespace
	}
	return sel, nil
}

// slimPod keeps of a cached pod what podChanged reads: its name, labels, deletion mark and
// of its status the phase, reason, message, conditions and containers' states and restart
// counts (apply.PodTrouble reads nothing else). A namespace of a thousand pods otherwise
// keeps a thousand specs, managedFields, IPs, images and timestamps in memory for as long
// as it is watched.
func slimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	conds := make([]corev1.PodCondition, len(p.Status.Conditions))
	for i, c := range p.Status.Conditions {
		conds[i] = corev1.PodCondition{Type: c.Type, Status: c.Status, Reason: c.Reason, Message: c.Message}
	}
	return &corev1.Pod{
		TypeMeta: p.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion,
			Labels: p.Labels, DeletionTimestamp: p.DeletionTimestamp},
		Status: corev1.PodStatus{Phase: p.Status.Phase, Reason: p.Status.Reason, Message: p.Status.Message, Conditions: conds,
			InitContainerStatuses: slimContainers(p.Status.InitContainerStatuses),
			ContainerStatuses:     slimContainers(p.Status.ContainerStatuses)},
	}, nil
}

// slimContainers keeps of containers' statuses what apply.PodTrouble reads.
func slimContainers(in []corev1.ContainerStatus) []corev1.ContainerStatus {
	if in == nil {
		return nil
	}
	out := make([]corev1.ContainerStatus, len(in))
	for i, cs := range in {
		out[i] = corev1.ContainerStatus{Name: cs.Name, Ready: cs.Ready, RestartCount: cs.RestartCount,
			State: slimState(cs.State), LastTerminationState: slimState(cs.LastTerminationState)}
	}
	return out
}

// slimState keeps a waiting or terminated container's reason, message and exit code; that it
// runs, and since when, nobody reads.
func slimState(s corev1.ContainerState) corev1.ContainerState {
	var out corev1.ContainerState
	if w := s.Waiting; w != nil {
		out.Waiting = &corev1.ContainerStateWaiting{Reason: w.Reason, Message: w.Message}
	}
	if t := s.Terminated; t != nil {
		out.Terminated = &corev1.ContainerStateTerminated{Reason: t.Reason, Message: t.Message, ExitCode: t.ExitCode}
	}
	return out
}
