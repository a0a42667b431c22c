package apply

import (
	"github.com/slipwayhq/slipway/store"

	"context"
	"fmt"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// workloadReasons explains unready workloads by their pods: kstatus only says a Deployment
// is not Available, while the user needs the container's reason (CrashLoopBackOff, a failed
// image pull, an exit code).
func (a *Applier) workloadReasons(ctx context.Context, inv []store.InventoryEntry) []string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var out []string
	for _, e := range inv {
		if e.Group != "apps" {
			continue
		}
		sel, ready, err := a.workloadSelector(ctx, e)
		if err != nil || ready || sel == nil {
			continue
		}
		var pods corev1.PodList
		if err := a.Cluster.Client.List(ctx, &pods, client.InNamespace(e.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
			continue
		}
		out = append(out, groupReasons(e.String(), pods.Items)...)
	}
	sort.Strings(out)
	return out
}

// maxReasonsPerWorkload bounds the explanation: a crash-looping Deployment can leave dozens
// of failed pods behind, all failing for the same reason.
const maxReasonsPerWorkload = 5

// groupReasons says each distinct reason once per workload, with one pod as the example
// and how many others share it.
func groupReasons(workload string, pods []corev1.Pod) []string {
	type group struct {
		pod   string
		count int
	}
	groups := map[string]*group{}
	var order []string
	for i := range pods {
		for _, r := range podReasons(&pods[i]) {
			g, ok := groups[r]
			if !ok {
				g = &group{pod: pods[i].Name}
				groups[r] = g
				order = append(order, r)
			}
			g.count++
		}
	}
	var out []string
	for i, r := range order {
		if i == maxReasonsPerWorkload {
			out = append(out, fmt.Sprintf("%s: %d more reasons", workload, len(order)-i))
			break
		}
		g := groups[r]
		if g.count > 1 {
			out = append(out, fmt.Sprintf("%s: pod %s (and %d more): %s", workload, g.pod, g.count-1, r))
			continue
		}
		out = append(out, fmt.Sprintf("%s: pod %s: %s", workload, g.pod, r))
	}
	return out
}

func (a *Applier) workloadSelector(ctx context.Context, e store.InventoryEntry) (labels.Selector, bool, error) {
	key := client.ObjectKey{Namespace: e.Namespace, Name: e.Name}
	var ls *metav1.LabelSelector
	var ready bool
	switch e.Kind {
	case "Deployment":
		var d appsv1.Deployment
		if err := a.Cluster.Client.Get(ctx, key, &d); err != nil {
			return nil, false, err
		}
		ls = d.Spec.Selector
		ready = d.Spec.Replicas != nil && d.Status.UpdatedReplicas == *d.Spec.Replicas && d.Status.AvailableReplicas == *d.Spec.Replicas
	case "StatefulSet":
		var s appsv1.StatefulSet
		if err := a.Cluster.Client.Get(ctx, key, &s); err != nil {
			return nil, false, err
		}
		ls = s.Spec.Selector
		ready = s.Spec.Replicas != nil && s.Status.ReadyReplicas == *s.Spec.Replicas
	case "DaemonSet":
		var d appsv1.DaemonSet
		if err := a.Cluster.Client.Get(ctx, key, &d); err != nil {
			return nil, false, err
		}
		ls = d.Spec.Selector
		ready = d.Status.NumberReady == d.Status.DesiredNumberScheduled
	default:
		return nil, false, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	return sel, ready, err
}

// podReasons lists why a pod is not ready, in the words the kubelet (here: kwok) used.
func podReasons(p *corev1.Pod) []string {
	var out []string
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			out = append(out, fmt.Sprintf("not scheduled: %s: %s", c.Reason, c.Message))
		}
	}
	statuses := append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...)
	for _, cs := range statuses {
		if cs.Ready {
			continue
		}
		switch {
		case cs.State.Waiting != nil:
			out = append(out, fmt.Sprintf("container %s waiting: %s: %s", cs.Name, cs.State.Waiting.Reason, cs.State.Waiting.Message))
		case cs.State.Terminated != nil:
			t := cs.State.Terminated
			out = append(out, fmt.Sprintf("container %s terminated: %s: %s (exit code %d)", cs.Name, t.Reason, t.Message, t.ExitCode))
		case cs.LastTerminationState.Terminated != nil:
			t := cs.LastTerminationState.Terminated
			out = append(out, fmt.Sprintf("container %s last terminated: %s: %s (exit code %d)", cs.Name, t.Reason, t.Message, t.ExitCode))
		}
	}
	return out
}
