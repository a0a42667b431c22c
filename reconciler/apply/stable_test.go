package apply

import (
	"errors"
	"strings"
	"testing"

	"github.com/fluxcd/cli-utils/pkg/kstatus/polling/event"
	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/cli-utils/pkg/object"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/slipwayhq/slipway/store"
)

func readyPod(restarts int32) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1"},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true, RestartCount: restarts,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}},
		},
	}
}

// kwokFailed is what kwok's pod-container-running-failed stage makes of a Running pod.
func kwokFailed() *corev1.Pod {
	p := readyPod(0)
	p.Status.Phase = corev1.PodFailed
	p.Status.Conditions[0].Status = corev1.ConditionFalse
	p.Status.ContainerStatuses[0].Ready = false
	p.Status.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		Reason: "containerFailed", Message: "container failed", ExitCode: 1}}
	return p
}

func TestPodTrouble(t *testing.T) {
	crashLoop := readyPod(3)
	crashLoop.Status.Conditions[0].Status = corev1.ConditionFalse
	crashLoop.Status.ContainerStatuses[0].Ready = false
	crashLoop.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 10s"}}
	crashLoop.Status.ContainerStatuses[0].LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 2}}
	imagePull := readyPod(0)
	imagePull.Status.Conditions = nil
	imagePull.Status.Phase = corev1.PodPending
	imagePull.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "not found"}}
	oom := readyPod(0)
	oom.Status.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "OOMKilled", ExitCode: 137}}
	unready := readyPod(0)
	unready.Status.Conditions[0].Status = corev1.ConditionFalse
	unready.Status.ContainerStatuses[0].Ready = false
	deleting := kwokFailed()
	deleting.DeletionTimestamp = &metav1.Time{}
	pending := readyPod(0)
	pending.Status.Phase, pending.Status.Conditions, pending.Status.ContainerStatuses = corev1.PodPending, nil, nil

	cases := []struct {
		name        string
		before, now *corev1.Pod
		want        string // "" for no trouble, else a prefix
	}{
		{"steady", readyPod(0), readyPod(0), ""},
		{"new pod starting", nil, pending, ""},
		{"new pod ready", nil, readyPod(0), ""},
		{"kwok chaos", readyPod(0), kwokFailed(), "failed: container app terminated: containerFailed: container failed (exit code 1)"},
		{"new pod failed", nil, kwokFailed(), "failed: container app terminated: containerFailed"},
		{"failed before the window", kwokFailed(), kwokFailed(), ""},
		{"restart", readyPod(0), crashLoop, "container app restarted (restart count 3): Error:  (exit code 2)"},
		{"crash loop already counted", crashLoop, crashLoop, ""},
		{"image pull", nil, imagePull, "container app waiting: ImagePullBackOff: not found"},
		{"oom", readyPod(0), oom, "container app terminated: OOMKilled (exit code 137)"},
		{"turned unready", readyPod(0), unready, "turned unready"},
		{"never ready is not turning unready", pending, pending, ""},
		{"deleted on purpose", readyPod(0), deleting, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := PodTrouble(c.before, c.now)
			if (c.want == "") != (got == "") || !strings.HasPrefix(got, c.want) {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestStatusTrouble(t *testing.T) {
	id := object.ObjMetadata{GroupKind: schema.GroupKind{Group: "apps", Kind: "Deployment"}, Namespace: "ns", Name: "web"}
	got, err := statusTrouble(event.Event{Type: event.ResourceUpdateEvent, Resource: &event.ResourceStatus{Identifier: id, Status: status.CurrentStatus}})
	if got != "" || err != nil {
		t.Fatalf("Current: %q %v", got, err)
	}
	got, _ = statusTrouble(event.Event{Type: event.ResourceUpdateEvent, Resource: &event.ResourceStatus{Identifier: id, Status: status.InProgressStatus, Message: "Available: 1/2"}})
	if got != "Deployment/ns/web is no longer Current: InProgress: Available: 1/2" {
		t.Fatalf("InProgress: %q", got)
	}
	boom := errors.New("boom")
	if _, err := statusTrouble(event.Event{Type: event.ErrorEvent, Error: boom}); !errors.Is(err, boom) {
		t.Fatalf("error event: %v", err)
	}
}

func TestUnstableIsUnhealthy(t *testing.T) {
	err := error(&WaitError{Err: ErrUnstable})
	if !errors.Is(err, ErrUnhealthy) || !errors.Is(err, ErrUnstable) {
		t.Fatalf("%v is not ErrUnhealthy and ErrUnstable", err)
	}
}

func TestHasWorkloads(t *testing.T) {
	cases := map[string]bool{"apps/Deployment": true, "/Pod": true, "batch/Job": false, "/ConfigMap": false, "/Service": false}
	for gk, want := range cases {
		g, k, _ := strings.Cut(gk, "/")
		if got := HasWorkloads([]store.InventoryEntry{{Group: g, Kind: k}}); got != want {
			t.Errorf("%s: %v, want %v", gk, got, want)
		}
	}
}
