package drift

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/reconciler/apply"
)

func TestSlimPodKeepsWhatTroubleReads(t *testing.T) {
	pod := func(restarts int32) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "apps", Labels: map[string]string{"app": "web"},
				Annotations:   map[string]string{"big": "annotation"},
				ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet"}}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
				Name: "web", RestartCount: restarts,
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 1}},
			}}},
		}
	}
	slim := func(p *corev1.Pod) *corev1.Pod {
		o, err := slimPod(p)
		if err != nil {
			t.Fatal(err)
		}
		return o.(*corev1.Pod)
	}
	before, now := pod(0), pod(1)
	want := apply.PodTrouble(before, now)
	if want == "" {
		t.Fatal("the restart is no trouble: the test is wrong")
	}
	if got := apply.PodTrouble(slim(before), slim(now)); got != want {
		t.Errorf("trouble of the cached pods %q, of the pods %q", got, want)
	}
	s := slim(now)
	if len(s.Spec.Containers) != 0 || s.ManagedFields != nil || s.Annotations != nil {
		t.Errorf("the cached pod keeps spec, managedFields or annotations: %+v", s)
	}
	if s.Name != "web-1" || s.Labels["app"] != "web" {
		t.Errorf("the cached pod lost its name or labels: %+v", s.ObjectMeta)
	}
}

// Every trouble PodTrouble tells from a pod it tells the same from the cached copies, and
// the copies keep no IPs, images or times.
func TestSlimPodTellsTheSameTrouble(t *testing.T) {
	now := metav1.Now()
	running := corev1.ContainerStatus{Name: "web", Ready: true, Image: "nginx:1", ImageID: "sha256:abc", ContainerID: "containerd://1",
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}}
	pod := func(phase corev1.PodPhase, ready corev1.ConditionStatus, cs ...corev1.ContainerStatus) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "apps"},
			Status: corev1.PodStatus{Phase: phase, HostIP: "10.0.0.1", PodIP: "10.1.0.1", StartTime: &now, QOSClass: corev1.PodQOSBurstable,
				Conditions: []corev1.PodCondition{
					{Type: corev1.PodReady, Status: ready, LastTransitionTime: now, Reason: "ContainersNotReady", Message: "containers with unready status: [web]"},
					{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
				},
				ContainerStatuses: cs},
		}
	}
	crash := running
	crash.Ready, crash.State = false, corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 10s"}}
	crash.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 2, StartedAt: now, FinishedAt: now, ContainerID: "containerd://1"}}
	oom := running
	oom.Ready, oom.State = false, corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "OOMKilled", ExitCode: 137, FinishedAt: now}}
	unscheduled := pod(corev1.PodPending, corev1.ConditionFalse)
	unscheduled.Status.Conditions[1] = corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/2 nodes are available"}
	failed := pod(corev1.PodFailed, corev1.ConditionFalse)
	failed.Status.Reason, failed.Status.Message = "Evicted", "The node was low on resource: memory."
	healthy := pod(corev1.PodRunning, corev1.ConditionTrue, running)
	for name, c := range map[string]struct{ before, now *corev1.Pod }{
		"crash loop":  {healthy, pod(corev1.PodRunning, corev1.ConditionFalse, crash)},
		"oom":         {healthy, pod(corev1.PodRunning, corev1.ConditionFalse, oom)},
		"unready":     {healthy, pod(corev1.PodRunning, corev1.ConditionFalse, func() corev1.ContainerStatus { r := running; r.Ready = false; return r }())},
		"unscheduled": {healthy, unscheduled},
		"failed":      {healthy, failed},
		"fine":        {healthy, healthy},
	} {
		slim := func(p *corev1.Pod) *corev1.Pod {
			if p == nil {
				return nil
			}
			o, err := slimPod(p.DeepCopy())
			if err != nil {
				t.Fatal(err)
			}
			return o.(*corev1.Pod)
		}
		want := apply.PodTrouble(c.before, c.now)
		if (want == "") != (name == "fine") {
			t.Fatalf("%s: trouble %q: the test is wrong", name, want)
		}
		if got := apply.PodTrouble(slim(c.before), slim(c.now)); got != want {
			t.Errorf("%s: trouble of the cached pods %q, of the pods %q", name, got, want)
		}
		s := slim(c.now)
		if s.Status.PodIP != "" || s.Status.HostIP != "" || s.Status.StartTime != nil || s.Status.QOSClass != "" {
			t.Errorf("%s: the cached pod keeps IPs, start time or QoS class: %+v", name, s.Status)
		}
		for _, cs := range s.Status.ContainerStatuses {
			if cs.Image != "" || cs.ImageID != "" || cs.ContainerID != "" || cs.State.Running != nil ||
				(cs.LastTerminationState.Terminated != nil && !cs.LastTerminationState.Terminated.FinishedAt.IsZero()) {
				t.Errorf("%s: the cached container status keeps images, IDs or times: %+v", name, cs)
			}
		}
		for _, pc := range s.Status.Conditions {
			if !pc.LastTransitionTime.IsZero() {
				t.Errorf("%s: the cached condition keeps its time: %+v", name, pc)
			}
		}
	}
}
