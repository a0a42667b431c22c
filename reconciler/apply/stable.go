package apply

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/polling/event"
	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/cli-utils/pkg/kstatus/watcher"
	"github.com/fluxcd/cli-utils/pkg/object"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/slipwayhq/slipway/reconciler/kube"
	"github.com/slipwayhq/slipway/store"
)

// ErrUnstable: the objects became healthy, then did not stay so for the stability window.
// It is also ErrUnhealthy (a WaitError carrying it says so), so the deploy rolls back.
var ErrUnstable = errors.New("did not stay healthy")

// WaitStable waits like Wait, then holds the objects to their health for window: the first
// moment every object is Current is not enough, since a container may start, turn Ready
// and crash a second later. timeout bounds the whole, window included; window 0 is Wait.
func (a *Applier) WaitStable(ctx context.Context, inv []store.InventoryEntry, seen Seen, timeout, window time.Duration) error {
	if timeout <= 0 || len(inv) == 0 {
		return nil
	}
	deadline := time.Now().Add(timeout)
	if err := a.Wait(ctx, inv, seen, timeout); err != nil || window <= 0 || !HasWorkloads(inv) {
		return err
	}
	return a.holdStable(ctx, inv, window, deadline)
}

// WaitStableUnchanged is WaitStable for a set the plan found wholly unchanged, so nothing
// of it was applied: when the Cache shows every object Current, that answers the health
// wait without a request (a window is still held); otherwise it is WaitStable. After an
// apply the cache may not have seen it yet, which is why only an untouched set may ask it.
func (a *Applier) WaitStableUnchanged(ctx context.Context, inv []store.InventoryEntry, timeout, window time.Duration) error {
	if a.HealthyUnchanged(inv, timeout, window) {
		return nil
	}
	if !a.currentInCache(inv) {
		return a.WaitStable(ctx, inv, untouched(inv), timeout, window)
	}
	return a.holdStable(ctx, inv, window, time.Now().Add(timeout))
}

// HealthyUnchanged tells whether WaitStableUnchanged would return at once without an error:
// no wait is asked for, or the Cache shows every object Current and no window is to be
// held. A deploy that applied nothing then records its revision healthy in one write.
func (a *Applier) HealthyUnchanged(inv []store.InventoryEntry, timeout, window time.Duration) bool {
	if timeout <= 0 || len(inv) == 0 {
		return true
	}
	return (window <= 0 || !HasWorkloads(inv)) && a.currentInCache(inv)
}

// currentInCache tells whether the Cache holds every object of inv and kstatus finds each
// Current there.
func (a *Applier) currentInCache(inv []store.InventoryEntry) bool {
	if a.Cache == nil {
		return false
	}
	for _, e := range inv {
		get := a.Cache.CachedOwned(schema.GroupVersionKind{Group: e.Group, Version: e.Version, Kind: e.Kind})
		if get == nil {
			return false
		}
		o, ok := get(e.Namespace, e.Name)
		c, isC := o.(*kube.CachedObject)
		if !ok || !isC {
			return false
		}
		u, err := c.Unstructured()
		if err != nil {
			return false
		}
		res, err := status.Compute(u)
		if err != nil || res.Status != status.CurrentStatus {
			return false
		}
	}
	return true
}

// HasWorkloads tells whether a set holds objects that keep pods running, the only ones that
// can stop being healthy by themselves: a set of configuration, services and RBAC needs no
// window, nor does a Job, which is Current once it completed.
func HasWorkloads(inv []store.InventoryEntry) bool {
	for _, e := range inv {
		if e.Group == "apps" || (e.Group == "" && e.Kind == "Pod") {
			return true
		}
	}
	return false
}

// holdStable watches the objects' kstatus and the pods of their workloads for window (or
// until deadline, when that comes first) and fails at the first sign of trouble with the
// pod's own reason. Watches, not polls: a pod that is Ready for one second is seen.
func (a *Applier) holdStable(ctx context.Context, inv []store.InventoryEntry, window time.Duration, deadline time.Time) error {
	start := time.Now()
	end := start.Add(window)
	if deadline.Before(end) {
		end = deadline
	}
	wctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	troubles := make(chan string, 1)
	for _, e := range inv {
		if err := a.watchWorkloadPods(wctx, e, troubles); err != nil {
			return &WaitError{Err: fmt.Errorf("stability window: watch the pods of %s: %w", e, err)}
		}
	}
	statuses, shared := a.watchSharedStatus(wctx, inv)
	if !shared {
		var err error
		if statuses, err = a.watchStatus(wctx, inv); err != nil {
			return &WaitError{Err: fmt.Errorf("stability window: %w", err)}
		}
	}
	for {
		select {
		case r := <-troubles:
			return &WaitError{Err: fmt.Errorf("%w for the %s stability window (trouble %s into it)", ErrUnstable, window, since(start)), Reasons: []string{r}}
		case ev, ok := <-statuses:
			if !ok {
				statuses = nil // closed when wctx ends; the timer case below decides
				continue
			}
			r, err := statusTrouble(ev)
			if err != nil && wctx.Err() != nil {
				continue // the watch ending with the window
			}
			if err != nil {
				return &WaitError{Err: fmt.Errorf("stability window: %w", err)}
			}
			if r != "" {
				reasons := []string{r}
				// A workload leaves Current because of its pods, and their own reason (a
				// crash, a pull error) can arrive a moment later: wait briefly for it, so the
				// failure names the cause and not only the symptom.
				select {
				case pr := <-troubles:
					reasons = []string{pr, r}
				case <-time.After(podReasonGrace):
				case <-ctx.Done():
				}
				return &WaitError{Err: fmt.Errorf("%w for the %s stability window (trouble %s into it)", ErrUnstable, window, since(start)), Reasons: append(reasons, a.workloadReasons(context.WithoutCancel(ctx), inv)...)}
			}
		case <-wctx.Done():
			if ctx.Err() != nil {
				return fmt.Errorf("health wait: %w", ctx.Err())
			}
			if end.Before(start.Add(window)) {
				return &WaitError{Err: fmt.Errorf("%w: the wait ran out %s into the %s stability window (the objects took the rest of wait to become healthy)", ErrUnstable, since(start), window)}
			}
			return nil
		}
	}
}

// podReasonGrace is how long an object leaving Current waits for its pods' own reason.
const podReasonGrace = 2 * time.Second

func since(t time.Time) time.Duration { return time.Since(t).Round(100 * time.Millisecond) }

// watchStatus reports kstatus changes of the namespaced objects, from an informer per kind
// and namespace. Cluster-scoped objects are left out: watching them would need list rights
// on the whole cluster, and the ones deploys carry (namespaces, CRDs, RBAC) do not flap.
func (a *Applier) watchStatus(ctx context.Context, inv []store.InventoryEntry) (<-chan event.Event, error) {
	var ids object.ObjMetadataSet
	for _, e := range inv {
		if e.Namespace != "" {
			ids = append(ids, object.ObjMetadata{GroupKind: schema.GroupKind{Group: e.Group, Kind: e.Kind}, Namespace: e.Namespace, Name: e.Name})
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	// The cluster's own client: one per wait made a transport per run.
	w := watcher.NewDefaultStatusWatcher(a.Cluster.Dynamic, a.Cluster.Mapper)
	return w.Watch(ctx, ids, watcher.Options{RESTScopeStrategy: watcher.RESTScopeNamespace}), nil
}

// statusTrouble says how an object left Current, "" when it did not; an error when the
// watch itself failed.
func statusTrouble(ev event.Event) (string, error) {
	switch ev.Type {
	case event.ErrorEvent:
		return "", ev.Error
	case event.ResourceUpdateEvent:
		rs := ev.Resource
		if rs == nil || rs.Status == status.CurrentStatus {
			return "", nil
		}
		id := rs.Identifier
		name := id.GroupKind.Kind + "/" + id.Namespace + "/" + id.Name
		if rs.Message != "" {
			return fmt.Sprintf("%s is no longer Current: %s: %s", name, rs.Status, rs.Message), nil
		}
		return fmt.Sprintf("%s is no longer Current: %s", name, rs.Status), nil
	}
	return "", nil
}

// watchWorkloadPods watches the pods a workload selects, from the state they are in now,
// and sends the first trouble it sees. Objects that are not workloads are left alone.
func (a *Applier) watchWorkloadPods(ctx context.Context, e store.InventoryEntry, troubles chan<- string) error {
	if e.Group != "apps" {
		return nil
	}
	sel, _, err := a.workloadSelector(ctx, e)
	if err != nil || sel == nil {
		return err
	}
	if sel.Empty() {
		sel = labels.Nothing() // a selector matching everything would be a bug of the manifest, not a watch of the namespace
	}
	pods := a.Cluster.Clientset.CoreV1().Pods(e.Namespace)
	opts := metav1.ListOptions{LabelSelector: sel.String()}
	list, err := pods.List(ctx, opts)
	if err != nil {
		return err
	}
	seen := make(map[string]*corev1.Pod, len(list.Items))
	for i := range list.Items {
		seen[list.Items[i].Name] = &list.Items[i]
	}
	lw := &cache.ListWatch{WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		o.LabelSelector = sel.String()
		return pods.Watch(ctx, o)
	}}
	rw, err := watchtools.NewRetryWatcherWithContext(ctx, list.ResourceVersion, lw)
	if err != nil {
		return err
	}
	go func() {
		defer rw.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-rw.ResultChan():
				if !ok {
					return
				}
				p, isPod := ev.Object.(*corev1.Pod)
				if !isPod || (ev.Type != watch.Added && ev.Type != watch.Modified) {
					continue
				}
				if r := PodTrouble(seen[p.Name], p); r != "" {
					select {
					case troubles <- fmt.Sprintf("%s: pod %s: %s", e, p.Name, r):
					default: // one trouble is enough to fail; the first is already waiting
					}
					return
				}
				seen[p.Name] = p
			}
		}
	}()
	return nil
}

// badWaiting are the waiting reasons of a container that will not start by itself.
var badWaiting = map[string]bool{
	"CrashLoopBackOff": true, "ImagePullBackOff": true, "ErrImagePull": true, "InvalidImageName": true,
	"CreateContainerConfigError": true, "CreateContainerError": true, "RunContainerError": true,
}

// PodTrouble compares a pod with how it was when last seen (nil: not seen before the
// window, so any trouble in it is new) and says what went wrong, "" when nothing did. A pod
// being deleted is being replaced on purpose; only changes count, so failed pods an earlier
// revision left behind do not fail this one.
func PodTrouble(before, now *corev1.Pod) string {
	if now.DeletionTimestamp != nil {
		return ""
	}
	if before == nil {
		before = &corev1.Pod{}
	}
	detail := func() string {
		if rs := podReasons(now); len(rs) > 0 {
			return rs[0]
		}
		if now.Status.Reason != "" || now.Status.Message != "" {
			return now.Status.Reason + ": " + now.Status.Message
		}
		return "no reason given"
	}
	if now.Status.Phase == corev1.PodFailed && before.Status.Phase != corev1.PodFailed {
		return "failed: " + detail()
	}
	prev := map[string]corev1.ContainerStatus{}
	for _, cs := range append(append([]corev1.ContainerStatus{}, before.Status.InitContainerStatuses...), before.Status.ContainerStatuses...) {
		prev[cs.Name] = cs
	}
	for _, cs := range append(append([]corev1.ContainerStatus{}, now.Status.InitContainerStatuses...), now.Status.ContainerStatuses...) {
		was := prev[cs.Name]
		if cs.RestartCount > was.RestartCount {
			msg := fmt.Sprintf("container %s restarted (restart count %d)", cs.Name, cs.RestartCount)
			if t := cs.LastTerminationState.Terminated; t != nil {
				msg += fmt.Sprintf(": %s: %s (exit code %d)", t.Reason, t.Message, t.ExitCode)
			}
			return msg
		}
		if w := cs.State.Waiting; w != nil && badWaiting[w.Reason] && (was.State.Waiting == nil || was.State.Waiting.Reason != w.Reason) {
			return fmt.Sprintf("container %s waiting: %s: %s", cs.Name, w.Reason, w.Message)
		}
		if t := cs.State.Terminated; t != nil && t.Reason == "OOMKilled" && was.State.Terminated == nil {
			return fmt.Sprintf("container %s terminated: OOMKilled (exit code %d)", cs.Name, t.ExitCode)
		}
	}
	if podReady(before) && !podReady(now) {
		return "turned unready: " + detail()
	}
	return ""
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
