package drift

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/reconciler/kube"
	"github.com/slipwayhq/slipway/store"
)

func TestIgnoredPathsMatchKindAndName(t *testing.T) {
	p := store.DriftPolicy{Ignore: []store.DriftIgnoreRule{
		{Kind: "Deployment", Paths: []string{"/spec/replicas"}},
		{Name: "web", Paths: []string{"/metadata/annotations/x"}},
		{Kind: "Service", Name: "web", Paths: []string{"/spec/ports"}},
	}}
	got := ignoredPaths(p, store.InventoryEntry{Kind: "Deployment", Name: "web"})
	if strings.Join(got, ",") != "/spec/replicas,/metadata/annotations/x" {
		t.Fatalf("Deployment web: %v", got)
	}
	if got := ignoredPaths(p, store.InventoryEntry{Kind: "Service", Name: "db"}); len(got) != 0 {
		t.Fatalf("Service db: %v", got)
	}
}

func TestLastChangeSkipsSlipwayAndStatusWrites(t *testing.T) {
	at := func(s int) *metav1.Time { v := metav1.NewTime(time.Unix(int64(s), 0)); return &v }
	fields := func(s string) *metav1.FieldsV1 { return &metav1.FieldsV1{Raw: []byte(s)} }
	entries := []metav1.ManagedFieldsEntry{
		{Manager: "slipway", Operation: metav1.ManagedFieldsOperationApply, Time: at(30), FieldsV1: fields(`{"f:spec":{"f:replicas":{}}}`)},
		{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate, Subresource: "scale", FieldsV1: fields(`{"f:spec":{"f:replicas":{}}}`)},
		{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, Subresource: "status", Time: at(40), FieldsV1: fields(`{"f:status":{}}`)},
		{Manager: "kubectl-annotate", Operation: metav1.ManagedFieldsOperationUpdate, Time: at(25), FieldsV1: fields(`{"f:metadata":{"f:annotations":{"f:x":{}}}}`)},
		{Manager: "kubectl-edit", Operation: metav1.ManagedFieldsOperationUpdate, Time: at(22), FieldsV1: fields(`{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{"f:image":{}}}}}}}`)},
	}
	// The owner of the drifted field, not the newest writer of anything.
	// The scale subresource records no time.
	if who, when := lastChange(entries, []string{"/spec/replicas"}); who != "kubectl" || !when.IsZero() {
		t.Fatalf("replicas changed by %q at %v, want kubectl at an unknown time", who, when)
	}
	if who, _ := lastChange(entries, []string{"/spec/template/spec/containers/0/image"}); who != "kubectl-edit" {
		t.Fatalf("image changed by %q, want kubectl-edit", who)
	}
	// Nobody else owns the path: the newest other writer.
	if who, _ := lastChange(entries, []string{"/spec/paused"}); who != "kubectl-annotate" {
		t.Fatalf("unowned path: %q, want the newest other manager", who)
	}
	if who, when := lastChange(nil, nil); who != "" || !when.IsZero() {
		t.Fatalf("no managed fields: %q %v", who, when)
	}
}

func TestStatusOnlyUpdatesAreNotChecked(t *testing.T) {
	obj := func(gen int64, ann string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{}}
		u.SetGeneration(gen)
		u.SetAnnotations(map[string]string{"a": ann})
		return u
	}
	cases := []struct {
		old, cur *unstructured.Unstructured
		want     bool
	}{
		{obj(2, "x"), obj(2, "x"), true},  // status write
		{obj(2, "x"), obj(3, "x"), false}, // spec change
		{obj(2, "x"), obj(2, "y"), false}, // annotation change
		{obj(0, "x"), obj(0, "x"), false}, // kinds without a generation
	}
	for i, c := range cases {
		if got := statusOnly(c.old, c.cur); got != c.want {
			t.Errorf("case %d: statusOnly = %v, want %v", i, got, c.want)
		}
	}
}

func TestGaugeCountsDriftedObjectsPerPipeline(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	rev := &store.Revision{Pipeline: store.PipelineRef{Repository: "r", Name: "app"}, Task: "deploy"}
	w := &Watcher{Metrics: m, objects: map[string]*Object{"c|a": {Revision: rev}, "c|b": {Revision: rev}}, drifted: map[string]string{}}
	if !w.setDrifted("c|a", "[patch]") || w.setDrifted("c|a", "[patch]") {
		t.Fatal("setDrifted must report a change once")
	}
	if got := gauge(t, reg, "app"); got != 1 {
		t.Fatalf("slipway_drift_objects{pipeline=app} = %v, want 1", got)
	}
	w.setDrifted("c|a", "")
	if got := gauge(t, reg, "app"); got != 0 {
		t.Fatalf("after the drift went away: %v, want 0", got)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Fatal("registering the metrics twice on one registry succeeded")
	}
}

// gauge reads slipway_drift_objects{pipeline} as a scrape would.
func gauge(t *testing.T, reg *prometheus.Registry, pipeline string) float64 {
	t.Helper()
	v, ok := findGauge(t, reg, pipeline)
	if !ok {
		t.Fatalf("no slipway_drift_objects{pipeline=%q} in the scrape", pipeline)
	}
	return v
}

// findGauge is slipway_drift_objects{pipeline} in a scrape, and whether it is there.
func findGauge(t *testing.T, reg *prometheus.Registry, pipeline string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "slipway_drift_objects" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "pipeline" && l.GetValue() == pipeline {
					return m.GetGauge().GetValue(), true
				}
			}
		}
	}
	return 0, false
}

// A deploy pauses its own task only: the same pipeline and task names in another
// repository are another task, whose objects are still checked.
func TestPauseIsKeyedByTheFullTaskIdentity(t *testing.T) {
	ref := func(repo string) store.TaskRef {
		return store.TaskRef{Pipeline: store.PipelineRef{Repository: repo, Name: "app"}, Task: "deploy"}
	}
	revA := &store.Revision{Pipeline: ref("a").Pipeline, Task: "deploy"}
	revB := &store.Revision{Pipeline: ref("b").Pipeline, Task: "deploy"}
	w := &Watcher{}
	w.init()
	w.objects = map[string]*Object{"c|x": {Revision: revA}, "c|y": {Revision: revB}}

	w.TaskStarted(ref("a"))
	w.changed("c|x")
	w.changed("c|y")
	if n := w.queue.Len(); n != 1 {
		t.Fatalf("%d objects queued while repository a's task deploys, want 1 (repository b's)", n)
	}
	if k, _ := w.queue.Get(); k != "c|y" {
		t.Fatalf("queued %q, want c|y", k)
	}
	if !w.dropped[ref("a")]["c|x"] {
		t.Fatalf("the paused task's event was not kept for later: %v", w.dropped)
	}

	w.TaskEnded(ref("b")) // not paused: nothing to resume
	if len(w.pending) != 0 || len(w.reload) != 0 {
		t.Fatalf("ending an unpaused task resumed something: pending %v, reload %d", w.pending, len(w.reload))
	}
	w.TaskEnded(ref("a"))
	if !w.pending["c|x"] || len(w.reload) != 1 || len(w.paused) != 0 {
		t.Fatalf("after the task ended: pending %v, reload asked %d, paused %v", w.pending, len(w.reload), w.paused)
	}
}

func TestEmptyMetadataAddIsNoDrift(t *testing.T) {
	cases := []struct {
		op, path string
		value    any
		want     bool
	}{
		{"add", "/metadata/annotations", map[string]any{}, true},
		{"add", "/metadata/labels", map[string]any{}, true},
		{"add", "/metadata/annotations", map[string]any{"a": "b"}, false},
		{"remove", "/metadata/annotations", nil, false},
		{"add", "/data", map[string]any{}, false},
		{"add", "/metadata/annotations/x", "", false},
	}
	for _, c := range cases {
		if got := emptyMetadataAdd(c.op, c.path, c.value); got != c.want {
			t.Errorf("%s %s %v: %v, want %v", c.op, c.path, c.value, got, c.want)
		}
	}
}

// countingClusters hands out an unconnected cluster (a YAML revision's objects need none)
// and counts the asks: one per parse.
type countingClusters struct{ gets int }

func (c *countingClusters) Get(context.Context, string) (*kube.Cluster, error) {
	c.gets++
	return &kube.Cluster{}, nil
}

func TestCurrentRevisionParsedOncePerReload(t *testing.T) {
	objects := []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web, namespace: apps}\ndata: {a: b}\n")
	rev := func(status store.RevisionStatus, ignore []string) *store.Revision {
		return &store.Revision{Pipeline: store.PipelineRef{Repository: "r", Name: "p"}, BuildID: 3, Task: "deploy",
			Cluster: "c", Kind: store.DeployYAML, Objects: objects, ObjectsDigest: "sha256:x", Status: status,
			Drift: store.DriftPolicy{Ignore: []store.DriftIgnoreRule{{Kind: "ConfigMap", Paths: ignore}}}}
	}
	cl := &countingClusters{}
	var p Parsed
	first := rev(store.RevisionApplied, nil)
	a, err := p.objects(context.Background(), driftHolder, cl, first)
	if err != nil || len(a) != 1 || cl.gets != 1 {
		t.Fatalf("first: %v objects, %d parses, %v", len(a), cl.gets, err)
	}
	if first.Objects != nil {
		t.Fatal("the record kept its rendering beside the parsed objects")
	}
	// The next reload's record of the same revision: not parsed again, but its status and
	// policy are the new record's.
	second := rev(store.RevisionHealthy, []string{"/data/a"})
	b, err := p.objects(context.Background(), driftHolder, cl, second)
	if err != nil || len(b) != 1 || cl.gets != 1 {
		t.Fatalf("second: %v objects, %d parses, %v", len(b), cl.gets, err)
	}
	if b[0].Revision != second || &b[0].desired[0] != &a[0].desired[0] || strings.Join(b[0].Ignore, ",") != "/data/a" || a[0].Revision != first {
		t.Fatalf("reused object: revision %p (want %p), ignore %v", b[0].Revision, second, b[0].Ignore)
	}
	// The cache itself points at no record: one would keep it, and what was read with it.
	for _, o := range p.byKey[parsedKeyOf(first)] {
		if o.Revision != nil {
			t.Fatal("the cached object keeps the record it was parsed from")
		}
	}
	// A later run of the task that rendered the same objects shares them.
	third := rev(store.RevisionApplied, nil)
	third.BuildID = 4
	c, err := p.objects(context.Background(), driftHolder, cl, third)
	if err != nil || len(c) != 1 || cl.gets != 1 || c[0].Revision.BuildID != 4 {
		t.Fatalf("a later run's same objects: %d objects, %d parses, %v", len(c), cl.gets, err)
	}
	// No longer current: forgotten, so its return parses again.
	p.retain(driftHolder, nil)
	if _, err := p.objects(context.Background(), driftHolder, cl, rev(store.RevisionHealthy, nil)); err != nil || cl.gets != 2 {
		t.Fatalf("after retain: %d parses, %v", cl.gets, err)
	}
}

// The drift and health watches share one cache: a revision is parsed once for both, and
// one watch's reload never drops what the other holds.
func TestParsedSharedByTheWatches(t *testing.T) {
	objects := []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web, namespace: apps}\n")
	rev := func(build int64) *store.Revision {
		// Each build renders other objects: the same ones would share their parse.
		return &store.Revision{Pipeline: store.PipelineRef{Repository: "r", Name: "p"}, BuildID: build, Task: "deploy",
			Cluster: "c", Kind: store.DeployYAML, Objects: objects, ObjectsDigest: fmt.Sprintf("sha256:%d", build), Status: store.RevisionHealthy}
	}
	ctx := context.Background()
	cl := &countingClusters{}
	var p Parsed
	if _, err := p.objects(ctx, driftHolder, cl, rev(1)); err != nil {
		t.Fatal(err)
	}
	// The health watch is told the revision is known, so the store leaves its objects out.
	known := rev(1)
	if !p.has(healthHolder, known) {
		t.Fatal("the health watch does not see what the drift watch parsed")
	}
	known.Objects = nil
	// Before it takes them, the drift watch reloads and finds a newer revision current.
	if _, err := p.objects(ctx, driftHolder, cl, rev(2)); err != nil {
		t.Fatal(err)
	}
	p.retain(driftHolder, map[parsedKey]bool{parsedKeyOf(rev(2)): true})
	objs, err := p.objects(ctx, healthHolder, cl, known)
	if err != nil || len(objs) != 1 || cl.gets != 2 {
		t.Fatalf("health watch's objects of build 1: %d, %d parses, %v", len(objs), cl.gets, err)
	}
	// Once the health watch holds build 2 only, build 1 goes; build 2 stays.
	if !p.has(healthHolder, rev(2)) {
		t.Fatal("the health watch does not see build 2 parsed")
	}
	p.retain(healthHolder, map[parsedKey]bool{parsedKeyOf(rev(2)): true})
	if p.has(healthHolder, rev(1)) || len(p.byKey) != 1 {
		t.Fatalf("build 1 still cached when no watch holds it: %d revisions", len(p.byKey))
	}
	// A known revision the cache lost anyway is an error, never a revision with no objects.
	p.retain(healthHolder, nil)
	p.retain(driftHolder, nil)
	gone := rev(2)
	gone.Objects = nil
	if _, err := p.objects(ctx, healthHolder, cl, gone); err == nil {
		t.Fatal("objects of a revision neither read nor cached: no error")
	}
}

// A deploy to an environment stores its revisions as "TASK.ENV" while its run's events
// name the task: its deploy must pause those objects, or the watch would take the deploy's
// own applies for drift.
func TestADeployToAnEnvironmentPausesItsObjects(t *testing.T) {
	p := store.PipelineRef{Repository: "a", Name: "app"}
	w := &Watcher{}
	w.init()
	w.objects = map[string]*Object{"c|x": {Revision: &store.Revision{Pipeline: p, Task: "deploy.prod"}}}

	w.TaskStarted(store.TaskRef{Pipeline: p, Task: "deploy"})
	w.changed("c|x")
	if n := w.queue.Len(); n != 0 {
		t.Fatalf("%d objects queued while the task deploys to prod, want 0", n)
	}
	w.TaskEnded(store.TaskRef{Pipeline: p, Task: "deploy"})
	if !w.pending["c|x"] || len(w.paused) != 0 {
		t.Fatalf("after the deploy ended: pending %v, paused %v", w.pending, w.paused)
	}
}

// A rollback's run names its task after the revision ("deploy.prod"): it pauses the same
// objects, and waits for their corrections under way.
func TestARollbackOfAnEnvironmentPausesItsObjects(t *testing.T) {
	p := store.PipelineRef{Repository: "a", Name: "app"}
	w := &Watcher{}
	w.init()
	w.objects = map[string]*Object{"c|x": {Revision: &store.Revision{Pipeline: p, Task: "deploy.prod"}}}

	w.RunEvent(reconciler.Event{Repository: p.Repository, Pipeline: p.Name, BuildID: 5, Task: "deploy.prod", Status: string(store.TaskRunning)})
	w.changed("c|x")
	if n := w.queue.Len(); n != 0 {
		t.Fatalf("%d objects queued while a rollback deploys prod, want 0", n)
	}
	w.RunEvent(reconciler.Event{Repository: p.Repository, Pipeline: p.Name, BuildID: 5, Task: "deploy.prod", Status: string(store.TaskSucceeded)})
	if !w.pending["c|x"] || len(w.paused) != 0 {
		t.Fatalf("after the rollback ended: pending %v, paused %v", w.pending, w.paused)
	}
}
