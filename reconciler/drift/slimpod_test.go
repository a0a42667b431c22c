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
