package apply

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func failedPod(name, reason string) corev1.Pod {
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
			Name:  "app",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: reason, Message: "container failed", ExitCode: 1}},
		}}},
	}
}

func TestGroupReasonsSaysEachReasonOnce(t *testing.T) {
	var pods []corev1.Pod
	for i := 0; i < 30; i++ {
		pods = append(pods, failedPod(fmt.Sprintf("web-%02d", i), "containerFailed"))
	}
	pods = append(pods, failedPod("web-oom", "OOMKilled"))
	got := strings.Join(groupReasons("Deployment/ns/web", pods), "\n")
	want := "Deployment/ns/web: pod web-00 (and 29 more): container app terminated: containerFailed: container failed (exit code 1)\n" +
		"Deployment/ns/web: pod web-oom: container app terminated: OOMKilled: container failed (exit code 1)"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestGroupReasonsIsBounded(t *testing.T) {
	var pods []corev1.Pod
	for i := 0; i < 8; i++ {
		pods = append(pods, failedPod(fmt.Sprintf("p%d", i), fmt.Sprintf("reason%d", i)))
	}
	got := groupReasons("Deployment/ns/web", pods)
	if len(got) != maxReasonsPerWorkload+1 || got[len(got)-1] != "Deployment/ns/web: 3 more reasons" {
		t.Fatalf("got %q", got)
	}
}
