package e2e

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/slipwayhq/slipway/test/testenv"
)

// TestRealNodeRunsAContainer: a Job that tolerates the real node's taint runs busybox from
// the local registry there for real; its exit code 3 fails the Job and is recorded in the
// pod's status, and its log is read through the API server (which reaches the kubelet).
func TestRealNodeRunsAContainer(t *testing.T) {
	env := testenv.Get(t)
	node, selector, toleration := env.RealNode(t)
	cs := env.Clientset(t)
	ns := env.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	zero := int32(0)
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "exit-three"},
		Spec: batchv1.JobSpec{
			BackoffLimit: &zero,
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				NodeSelector:  selector,
				Tolerations:   []corev1.Toleration{toleration},
				Containers: []corev1.Container{{
					Name: "main", Image: env.BaseImage,
					Command: []string{"/bin/sh", "-c", "echo hello from $(uname -s) on the real node; exit 3"},
				}},
			}},
		},
	}
	if _, err := cs.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		j, err := cs.BatchV1().Jobs(ns).Get(ctx, job.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range j.Status.Conditions {
			if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
				return true, nil
			}
			if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
				t.Fatalf("the Job completed; its container exits 3")
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("the Job did not fail: %v", err)
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + job.Name})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods of the Job: %v, %v", pods, err)
	}
	pod := pods.Items[0]
	if pod.Spec.NodeName != node || pod.Status.PodIP == "" {
		t.Errorf("pod ran on %q with IP %q, want node %q and a pod IP from the bridge network", pod.Spec.NodeName, pod.Status.PodIP, node)
	}
	if len(pod.Status.ContainerStatuses) != 1 || pod.Status.ContainerStatuses[0].State.Terminated == nil ||
		pod.Status.ContainerStatuses[0].State.Terminated.ExitCode != 3 {
		t.Fatalf("container status = %+v, want terminated with exit code 3", pod.Status.ContainerStatuses)
	}
	rc, err := cs.CoreV1().Pods(ns).GetLogs(pod.Name, &corev1.PodLogOptions{Container: "main"}).Stream(ctx)
	if err != nil {
		t.Fatalf("logs through the API server: %v", err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	if !strings.Contains(string(b), "hello from Linux on the real node") {
		t.Errorf("log = %q, want the container's own output", b)
	}
}
