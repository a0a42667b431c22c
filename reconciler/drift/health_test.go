package drift

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/store"
)

// healthStore is a fake of the few store calls the health watch makes: revisions by run,
// with the store's compare-and-set on status.
type healthStore struct {
	mu     sync.Mutex
	revs   map[int64]*store.Revision
	runs   []store.Run // newest first
	events []store.NewDriftEvent
}

func (s *healthStore) EachCurrentRevision(context.Context, func(*store.Revision) bool, func(*store.Revision) error) error {
	return nil
}

func (s *healthStore) EachCurrentRevisionOf(context.Context, []store.PipelineRef, func(*store.Revision) bool, func(*store.Revision) error) error {
	return nil
}

func (s *healthStore) GetRevision(_ context.Context, _ store.PipelineRef, b int64, _ string) (store.Revision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.revs[b]; r != nil {
		return *r, nil
	}
	return store.Revision{}, store.ErrNotFound
}

func (s *healthStore) TransitionRevision(_ context.Context, _ store.PipelineRef, b int64, _ string, from, to store.RevisionStatus, _ string) (store.Revision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.revs[b]
	if r.Status != from {
		return *r, fmt.Errorf("move: %w", store.ErrStatusConflict)
	}
	r.Status = to
	return *r, nil
}

func (s *healthStore) GetRun(_ context.Context, _ store.PipelineRef, b int64) (store.Run, error) {
	for _, r := range s.runs {
		if r.BuildID == b {
			return r, nil
		}
	}
	return store.Run{}, store.ErrNotFound
}

func (s *healthStore) ListRuns(context.Context, store.PipelineRef, int) ([]store.Run, error) {
	return s.runs, nil
}

func (s *healthStore) RecordDriftEvent(_ context.Context, e store.NewDriftEvent) (store.DriftEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
	return store.DriftEvent{NewDriftEvent: e}, nil
}

type rollbacks struct{ jobs []reconciler.Job }

func (r *rollbacks) SubmitIfIdle(_ context.Context, j reconciler.Job) (store.Run, error) {
	r.jobs = append(r.jobs, j)
	return store.Run{BuildID: 9}, nil
}

var ref = store.PipelineRef{Repository: "r", Name: "p"}

// Runs 1 (healthy), 2 (failed its window), 3 (healthy; its workloads crash later).
func lateCrash(health string, trigger3 store.Trigger) (*healthStore, *healthTarget) {
	rev := func(b int64, s store.RevisionStatus) *store.Revision {
		return &store.Revision{Pipeline: ref, BuildID: b, Task: "app", Cluster: "c", Status: s, Drift: store.DriftPolicy{Health: health}}
	}
	st := &healthStore{
		revs: map[int64]*store.Revision{1: rev(1, store.RevisionHealthy), 2: rev(2, store.RevisionRolledBack), 3: rev(3, store.RevisionHealthy)},
		runs: []store.Run{{BuildID: 3, Status: store.RunSucceeded, Trigger: trigger3}, {BuildID: 2, Status: store.RunFailed}, {BuildID: 1, Status: store.RunSucceeded}},
	}
	cur := *st.revs[3]
	return st, &healthTarget{rev: &cur, entry: store.InventoryEntry{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "ns", Name: "web"}}
}

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

func TestHealthWatchRollsBackOncePerRevision(t *testing.T) {
	st, target := lateCrash(store.HealthRollback, store.TriggerPush)
	rb := &rollbacks{}
	h := &HealthWatch{Store: st, Rollbacks: rb, Log: quietLog()}
	ctx := context.Background()
	h.unhealthy(ctx, target, "pod web-1: failed: container app terminated: Error")
	h.unhealthy(ctx, target, "pod web-2: failed: container app terminated: Error")
	if len(rb.jobs) != 1 || !rb.jobs[0].IsRollback() || rb.jobs[0].Parent != 1 {
		t.Fatalf("rollback jobs %+v, want one to BUILD_ID 1 (2 failed its window)", rb.jobs)
	}
	if st.revs[3].Status != store.RevisionFailed {
		t.Fatalf("revision 3 is %s, want failed", st.revs[3].Status)
	}
	if len(st.events) != 1 || st.events[0].Action != store.HealthUnhealthy || st.events[0].BuildID != 3 ||
		st.events[0].Error != "pod web-1: failed: container app terminated: Error; rollback run BUILD_ID 9 to BUILD_ID 1 started" {
		t.Fatalf("events %+v", st.events)
	}
}

func TestHealthWatchReportsWithoutRollback(t *testing.T) {
	st, target := lateCrash(store.HealthReport, store.TriggerPush)
	rb := &rollbacks{}
	h := &HealthWatch{Store: st, Rollbacks: rb, Log: quietLog()}
	h.unhealthy(context.Background(), target, "pod web-1: turned unready")
	if len(rb.jobs) != 0 || st.revs[3].Status != store.RevisionFailed || len(st.events) != 1 || st.events[0].Error != "pod web-1: turned unready" {
		t.Fatalf("report: jobs %+v, status %s, events %+v", rb.jobs, st.revs[3].Status, st.events)
	}
}

func TestHealthWatchNeverRollsBackARollback(t *testing.T) {
	st, target := lateCrash(store.HealthRollback, store.TriggerRollback)
	rb := &rollbacks{}
	h := &HealthWatch{Store: st, Rollbacks: rb, Log: quietLog()}
	h.unhealthy(context.Background(), target, "pod web-1: turned unready")
	if len(rb.jobs) != 0 || !strings.HasSuffix(st.events[0].Error, "not rolled back: the revision was itself deployed by a rollback") {
		t.Fatalf("jobs %+v, events %+v", rb.jobs, st.events)
	}
}

func TestHealthWatchWaitsForRunsUnderWay(t *testing.T) {
	st, target := lateCrash(store.HealthRollback, store.TriggerPush)
	st.runs = append([]store.Run{{BuildID: 4, Status: store.RunRunning}}, st.runs...)
	rb := &rollbacks{}
	h := &HealthWatch{Store: st, Rollbacks: rb, Log: quietLog()}
	h.unhealthy(context.Background(), target, "pod web-1: turned unready")
	if len(rb.jobs) != 0 || len(st.events) != 0 || st.revs[3].Status != store.RevisionHealthy {
		t.Fatalf("a deploy under way: jobs %+v, events %+v, status %s", rb.jobs, st.events, st.revs[3].Status)
	}
}

func TestPodSelectorOfWorkloads(t *testing.T) {
	// The selector is worked out as the revision's objects are parsed (Objects), once.
	rev := func(docs ...string) *store.Revision {
		return &store.Revision{Pipeline: store.PipelineRef{Repository: "r", Name: "p"}, BuildID: 1, Task: "t", Kind: store.DeployYAML,
			Objects: []byte(strings.Join(docs, "---\n"))}
	}
	objs, err := Objects(nil, rev(
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: n}\nspec: {selector: {matchLabels: {app: web}}}\n",
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: all, namespace: n}\nspec: {selector: {}}\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: n}\nspec: {selector: {app: web}}\n",
		"apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: bad, namespace: n}\nspec: {selector: {matchExpressions: [{key: app, operator: Bogus}]}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 4 {
		t.Fatalf("%d objects", len(objs))
	}
	if sel, err := objs[0].selector, objs[0].selectorErr; err != nil || sel == nil || !sel.Matches(labels.Set{"app": "web", "x": "y"}) || sel.Matches(labels.Set{"app": "db"}) {
		t.Fatalf("Deployment: %v %v", sel, err)
	}
	if sel, err := objs[1].selector, objs[1].selectorErr; sel != nil || err != nil {
		t.Fatalf("an empty selector must select nothing: %v %v", sel, err)
	}
	if sel := objs[2].selector; sel != nil {
		t.Fatalf("Service: %v", sel)
	}
	if objs[3].selectorErr == nil {
		t.Fatalf("a bad selector must say so, got %v", objs[3].selector)
	}
}

func TestUnhealthyObjectsMetric(t *testing.T) {
	_, target := lateCrash(store.HealthReport, store.TriggerPush)
	h := &HealthWatch{
		pipelines: map[store.PipelineRef]map[string]*healthTarget{ref: {target.key(): target}, {Repository: "r", Name: "q"}: {}},
		seen:      map[string]time.Time{target.key(): time.Now()},
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(h)
	gauge := func() string {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				var ls []string
				for _, l := range m.GetLabel() {
					ls = append(ls, l.GetName()+"="+l.GetValue())
				}
				out = append(out, fmt.Sprintf("%s{%s} %g", mf.GetName(), strings.Join(ls, ","), m.GetGauge().GetValue()))
			}
		}
		return strings.Join(out, " ")
	}
	if got := gauge(); got != "slipway_unhealthy_objects{pipeline=p,repository=r} 1 slipway_unhealthy_objects{pipeline=q,repository=r} 0" {
		t.Fatalf("with a recent trouble: %s", got)
	}
	h.seen[target.key()] = time.Now().Add(-recentTrouble)
	if got := gauge(); got != "slipway_unhealthy_objects{pipeline=p,repository=r} 0 slipway_unhealthy_objects{pipeline=q,repository=r} 0" {
		t.Fatalf("recovered: %s", got)
	}
}

// A deploy to an environment replaces its own pods: while it runs, their trouble is not
// the revision's ("TASK.ENV"), whose task the run's events name without the environment.
func TestADeployToAnEnvironmentPausesItsHealthWatch(t *testing.T) {
	// Failed already: a trouble is counted (seen) but starts no rollback.
	rev := &store.Revision{Pipeline: ref, BuildID: 3, Task: "deploy.prod", Cluster: "c", Status: store.RevisionFailed}
	sel, err := labels.Parse("app=web")
	if err != nil {
		t.Fatal(err)
	}
	h := &HealthWatch{Store: &healthStore{}, Rollbacks: &rollbacks{}, Log: quietLog()}
	h.workloads = map[string][]*healthTarget{"c|ns": {{rev: rev, sel: sel,
		entry: store.InventoryEntry{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "ns", Name: "web"}}}}
	h.seen, h.handled = map[string]time.Time{}, map[string]store.PipelineRef{}
	pod := func(restarts int32) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "ns", Labels: map[string]string{"app": "web"}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
				Name: "web", RestartCount: restarts,
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 1}},
			}}},
		}
	}
	deploy := func(status store.TaskStatus) {
		h.RunEvent(reconciler.Event{Repository: ref.Repository, Pipeline: ref.Name, BuildID: 4, Task: "deploy", Status: string(status)})
	}

	deploy(store.TaskRunning)
	h.podChanged("c", "ns", pod(0), pod(1))
	if len(h.seen) != 0 {
		t.Fatalf("a pod's trouble during the task's deploy to prod was counted: %v", h.seen)
	}
	deploy(store.TaskSucceeded)
	h.podChanged("c", "ns", pod(1), pod(2))
	if len(h.seen) != 1 {
		t.Fatalf("a pod's trouble after the deploy was not counted: %v", h.seen)
	}
}

// A rollback's events name the revision's task ("deploy.prod"): it pauses the health watch too.
func TestARollbackOfAnEnvironmentPausesItsHealthWatch(t *testing.T) {
	h := &HealthWatch{Store: &healthStore{}, Rollbacks: &rollbacks{}, Log: quietLog()}
	h.RunEvent(reconciler.Event{Repository: ref.Repository, Pipeline: ref.Name, BuildID: 5, Task: "deploy.prod", Status: string(store.TaskRunning)})
	if h.paused[writer(&store.Revision{Pipeline: ref, Task: "deploy.prod"})] != 1 {
		t.Fatalf("paused %v, want the task deploy of %s", h.paused, ref)
	}
}
