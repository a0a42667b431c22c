package drift

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/reconciler/kube"
	"github.com/slipwayhq/slipway/store"
)

// revStore is a fake store of current revisions, one per pipeline, that counts what the
// watches read: every current revision, or those of some pipelines.
type revStore struct {
	healthStore
	rmu     sync.Mutex
	current map[store.PipelineRef]store.Revision
	all     int                   // reads of every current revision
	of      [][]store.PipelineRef // the pipelines of each read of some
	handed  int                   // revisions handed to fn
	failOf  int                   // reads of some pipelines still to fail
}

func (s *revStore) GetPipeline(_ context.Context, ref store.PipelineRef) (store.Pipeline, error) {
	return store.Pipeline{}, store.ErrNotFound
}

func (s *revStore) EachCurrentRevision(ctx context.Context, known func(*store.Revision) bool, fn func(*store.Revision) error) error {
	s.rmu.Lock()
	s.all++
	refs := make([]store.PipelineRef, 0, len(s.current))
	for p := range s.current {
		refs = append(refs, p)
	}
	s.rmu.Unlock()
	return s.each(refs, known, fn)
}

func (s *revStore) EachCurrentRevisionOf(ctx context.Context, pipelines []store.PipelineRef, known func(*store.Revision) bool, fn func(*store.Revision) error) error {
	s.rmu.Lock()
	s.of = append(s.of, slices.Clone(pipelines))
	fail := s.failOf > 0
	if fail {
		s.failOf--
	}
	s.rmu.Unlock()
	if fail {
		return errors.New("connection refused")
	}
	return s.each(pipelines, known, fn)
}

func (s *revStore) each(pipelines []store.PipelineRef, known func(*store.Revision) bool, fn func(*store.Revision) error) error {
	for _, p := range pipelines {
		s.rmu.Lock()
		r, ok := s.current[p]
		if ok {
			s.handed++
		}
		s.rmu.Unlock()
		if !ok {
			continue
		}
		if known != nil && known(&r) {
			r.Objects = nil
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	return nil
}

// reads are the counts so far: full reads, reads of some pipelines, revisions handed out.
func (s *revStore) reads() (all, of, handed int) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	return s.all, len(s.of), s.handed
}

func (s *revStore) lastOf() []store.PipelineRef {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	return s.of[len(s.of)-1]
}

// deploy makes build the pipeline's current revision: a ConfigMap and a Deployment named
// after the pipeline and the build.
func (s *revStore) deploy(p store.PipelineRef, build int64) {
	name := fmt.Sprintf("%s-%d", p.Name, build)
	objects := fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s, namespace: apps}\n---\n"+
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: %s, namespace: apps}\nspec: {selector: {matchLabels: {app: %s}}}\n", name, name, name)
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if s.current == nil {
		s.current = map[store.PipelineRef]store.Revision{}
	}
	s.current[p] = store.Revision{Pipeline: p, BuildID: build, Task: "deploy", Cluster: "c", Kind: store.DeployYAML,
		Status: store.RevisionHealthy, Objects: []byte(objects), ObjectsDigest: fmt.Sprintf("sha256:%s", name)}
}

// reloadClusters hands out one cluster whose kinds cannot be mapped (so the drift watch
// starts no informer) and whose pods are a fake clientset's.
type reloadClusters struct{ cl *kube.Cluster }

func newReloadClusters() *reloadClusters {
	return &reloadClusters{cl: &kube.Cluster{Name: "c", Mapper: meta.NewDefaultRESTMapper(nil), Clientset: fake.NewClientset()}}
}

func (c *reloadClusters) Get(context.Context, string) (*kube.Cluster, error) { return c.cl, nil }

func pipelineN(i int) store.PipelineRef {
	return store.PipelineRef{Repository: "mono", Name: fmt.Sprintf("app%03d", i)}
}

// waitFor polls cond until it holds or a few seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// deployApp7 runs a task of app007 that stores its build 2, as the runner tells a watch,
// and checks that the reload after its end read app007's current revisions only (after
// the first load's 50).
func deployApp7(t *testing.T, st *revStore, watch reconciler.Observer) {
	t.Helper()
	p := pipelineN(7)
	watch.RunEvent(reconciler.Event{Repository: p.Repository, Pipeline: p.Name, Task: "deploy", Status: string(store.TaskRunning)})
	st.deploy(p, 2)
	watch.RunEvent(reconciler.Event{Repository: p.Repository, Pipeline: p.Name, Task: "deploy", Status: string(store.TaskSucceeded)})
	waitFor(t, "the reload after the task's end", func() bool { _, of, _ := st.reads(); return of == 1 })
	all, _, handed := st.reads()
	if all != 1 || handed != 51 || !slices.Equal(st.lastOf(), []store.PipelineRef{p}) {
		t.Fatalf("after one task's end: %d full reads (want 1, the first load), %d revisions read (want 50 + 1), pipelines %v",
			all, handed, st.lastOf())
	}
}

// A task's end makes the drift watch read its pipeline's current revisions only: the runs
// of a push deploying many applications end one after another, and reading (and copying)
// every current revision at each end made the watch's work and garbage grow with their
// number. The other objects stay as they were; a Reload reads them all.
func TestDriftTaskEndReloadsOnlyItsPipeline(t *testing.T) {
	st := &revStore{}
	for i := range 50 {
		st.deploy(pipelineN(i), 1)
	}
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	w := &Watcher{Store: st, Clusters: newReloadClusters(), Metrics: m, Log: quietLog()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	objectCount := func() int {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.objects)
	}
	waitFor(t, "the first load", func() bool { return objectCount() == 100 })
	w.mu.Lock()
	before := w.objects["c||ConfigMap|apps|app010-1"]
	w.mu.Unlock()
	if before == nil {
		t.Fatal("app010's ConfigMap is not watched")
	}
	w.setDrifted("c||ConfigMap|apps|app010-1", "[patch]")

	deployApp7(t, st, w)
	w.mu.Lock()
	gone, now, other := w.objects["c||ConfigMap|apps|app007-1"], w.objects["c||ConfigMap|apps|app007-2"], w.objects["c||ConfigMap|apps|app010-1"]
	n := len(w.objects)
	w.mu.Unlock()
	if gone != nil || now == nil || now.Revision.BuildID != 2 || n != 100 {
		t.Fatalf("pipeline app007's objects after its reload: build 1's %v, build 2's %v, %d objects in all", gone, now, n)
	}
	if other != before {
		t.Fatal("another pipeline's object was handed out again on a reload that was not about it")
	}
	// The parsed objects of app007's build 1 went with it; the others' stayed.
	w.own.mu.Lock()
	parsedRevisions := len(w.own.byKey)
	w.own.mu.Unlock()
	if parsedRevisions != 50 {
		t.Fatalf("%d revisions' objects parsed after app007's reload, want 50", parsedRevisions)
	}
	if g7, g10 := gauge(t, reg, "app007"), gauge(t, reg, "app010"); g7 != 0 || g10 != 1 {
		t.Fatalf("slipway_drift_objects after app007's reload: app007 %v (want 0), app010 %v (want 1)", g7, g10)
	}

	// Ends within reloadGap of each other share the next reload, which reads only theirs.
	// app003's new revision has drift off: its objects, and its gauge, go.
	st.deploy(pipelineN(3), 2)
	st.rmu.Lock()
	r := st.current[pipelineN(3)]
	r.Drift.Mode = store.DriftOff
	st.current[pipelineN(3)] = r
	st.rmu.Unlock()
	for _, i := range []int{3, 4, 3} {
		w.TaskStarted(store.TaskRef{Pipeline: pipelineN(i), Task: "deploy"})
		w.TaskEnded(store.TaskRef{Pipeline: pipelineN(i), Task: "deploy"})
	}
	waitFor(t, "the reload after three ends", func() bool { _, of, _ := st.reads(); return of == 2 })
	// The read is counted as it starts; its objects and gauges are merged in after it.
	waitFor(t, "app003's objects and gauge gone", func() bool {
		w.mu.Lock()
		n := len(w.objects)
		w.mu.Unlock()
		return n == 98 && !hasGauge(t, reg, "app003")
	})
	got := slices.Clone(st.lastOf())
	slices.SortFunc(got, func(a, b store.PipelineRef) int { return strings.Compare(a.Name, b.Name) })
	if !slices.Equal(got, []store.PipelineRef{pipelineN(3), pipelineN(4)}) {
		t.Fatalf("the shared reload read %v, want app003 and app004", got)
	}
	w.mu.Lock()
	n = len(w.objects)
	w.mu.Unlock()
	if n != 98 || hasGauge(t, reg, "app003") || gauge(t, reg, "app010") != 1 {
		t.Fatalf("after app003 turned drift off: %d objects (want 98), its gauge kept %v, app010's %v",
			n, hasGauge(t, reg, "app003"), gauge(t, reg, "app010"))
	}

	// A reload asked for all (replicas' ownership changed) reads all.
	w.Reload()
	waitFor(t, "the full reload", func() bool { all, _, _ := st.reads(); return all == 2 })
}

// hasGauge tells whether the scrape has slipway_drift_objects{pipeline}.
func hasGauge(t *testing.T, reg *prometheus.Registry, pipeline string) bool {
	t.Helper()
	_, ok := findGauge(t, reg, pipeline)
	return ok
}

// The health watch, too, reads only the pipeline whose task ended, and keeps the other
// pipelines' workloads as they were.
func TestHealthTaskEndReloadsOnlyItsPipeline(t *testing.T) {
	st := &revStore{}
	for i := range 50 {
		st.deploy(pipelineN(i), 1)
	}
	h := &HealthWatch{Store: st, Clusters: newReloadClusters(), Log: quietLog()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	targets := func() map[string]*healthTarget {
		h.mu.Lock()
		defer h.mu.Unlock()
		out := map[string]*healthTarget{}
		for _, ts := range h.workloads {
			for _, t := range ts {
				out[t.entry.Name] = t
			}
		}
		return out
	}
	waitFor(t, "the first load", func() bool { return len(targets()) == 50 })
	before := targets()

	deployApp7(t, st, h)
	after := targets()
	if len(after) != 50 || after["app007-1"] != nil || after["app007-2"] == nil || after["app007-2"].rev.BuildID != 2 {
		t.Fatalf("workloads after app007's reload: %d, build 1's %v, build 2's %v", len(after), after["app007-1"], after["app007-2"])
	}
	for name, t0 := range before {
		if name != "app007-1" && after[name] != t0 {
			t.Fatalf("workload %s was replaced by a reload that was not about it", name)
		}
	}
	h.mu.Lock()
	n := len(h.pipelines[pipelineN(7)])
	h.mu.Unlock()
	if n != 1 {
		t.Fatalf("app007 counts %d workloads for the metric, want 1", n)
	}
}

// A reload of some pipelines the store could not answer leaves them unread: the next
// reload, after whichever task's end, reads every current revision, as before reloads
// were per pipeline.
func TestAFailedReloadOfSomePipelinesMakesTheNextReadAll(t *testing.T) {
	st := &revStore{}
	st.deploy(pipelineN(1), 1)
	st.deploy(pipelineN(2), 1)
	ctx := context.Background()

	w := &Watcher{Store: st, Clusters: newReloadClusters(), Log: quietLog()}
	w.init()
	// The fake cluster maps no kind: the watches fail to start, the revisions are read.
	_ = w.refresh(ctx, nil)
	if !w.loaded {
		t.Fatal("drift: the first reload read nothing")
	}
	st.failOf = 1
	if err := w.refresh(ctx, []store.PipelineRef{pipelineN(1)}); err == nil {
		t.Fatal("the failed read was not reported")
	}
	w.ended[pipelineN(2)] = true
	if only := w.takeReload(); only != nil {
		t.Fatalf("drift: the reload after a failed one reads %v, want all", only)
	}

	h := &HealthWatch{Store: st, Clusters: newReloadClusters(), Log: quietLog()}
	h.seen, h.handled = map[string]time.Time{}, map[string]store.PipelineRef{}
	h.informers, h.ctx = map[string]context.CancelFunc{}, ctx
	_ = h.refresh(ctx, nil)
	if !h.loaded {
		t.Fatal("health: the first reload read nothing")
	}
	st.failOf = 1
	if err := h.refresh(ctx, []store.PipelineRef{pipelineN(1)}); err == nil {
		t.Fatal("the failed read was not reported")
	}
	if h.loaded {
		t.Fatal("health: the reload after a failed one would read only the pipelines whose tasks ended")
	}
}
