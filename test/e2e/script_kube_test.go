package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/slipwayhq/slipway/test/testenv"
)

// kubeScriptConfig is a project whose slipway.yaml runs scripts as Jobs in namespace ns of
// the environment's cluster, on its real node (executor kubernetes, the only one, so the
// default).
func kubeScriptConfig(t *testing.T, env *testenv.Env, ns string) (*workRepo, string, string) {
	t.Helper()
	node, _, tol := env.RealNode(t)
	repo, repoName, cfg := newProject(t, env)
	appendConfig(t, cfg, fmt.Sprintf(`executor:
  kubernetes:
    cluster: e2e
    namespace: %s
    nodeSelector: {kubernetes.io/hostname: %s}
    tolerations:
      - {key: %s, operator: Equal, value: %q, effect: %s}
`, ns, node, tol.Key, tol.Value, tol.Effect))
	return repo, repoName, cfg
}

// TestScriptTasksKubernetes is examples/scripts' shape (seed 1.3) with executor kubernetes on
// the real node: a first task edits the workspace and a later one sees the edit; env and a
// secretEnv from a Kubernetes Secret (by secretKeyRef) reach the script; the secret, echoed
// plainly and base64-encoded, is *** in `slipway logs`; exit 3 fails the task with code 3
// and the next stage is skipped; no Job or pod is left.
func TestScriptTasksKubernetes(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const secret = "e2e-Kube-scr1pt-secret"
	if _, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hub"},
		StringData: map[string]string{"password": secret}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	repo, repoName, cfg := kubeScriptConfig(t, env, ns)
	img := "        image: " + env.BaseImage + "\n"
	repo.commit("scripts", seed13(`{name: HUB_PASSWORD, cluster: e2e, namespace: `+ns+`, secret: hub, key: password}`, img,
		"        resources: {limits: {memory: 64Mi}}\n"))
	checkSeed13(t, cfg, repoName, secret, "running the script on kubernetes")
	assertNoJobs(t, cs, ns)
}

// TestScriptKubernetesCancel: `slipway cancel` while the script's Job runs ends the run
// cancelled within 2 s and leaves no Job or pod.
func TestScriptKubernetesCancel(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	repo, _, cfg := kubeScriptConfig(t, env, ns)
	server, tokenFile := withAPI(t, cfg)
	repo.commit("cancel", map[string][]byte{".pipeline.yaml": []byte(`name: jack-2048
stages:
  - name: wait
    tasks:
      - name: sleep
        type: script
        image: ` + env.BaseImage + `
        script: echo sleeping; sleep 60
`)})
	d := startAPIServe(t, cfg, server, tokenFile)
	defer d.stop(t)
	waitHistory(t, cfg, 60*time.Second, "run 1 running", func(h []historyEntry) bool { return len(h) == 1 && h[0].Status == "running" })
	ctx := context.Background()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err == nil && len(pods.Items) == 1 && scriptRunning(pods.Items[0]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the script's pod never ran: %v %v\n%s", pods, err, d.output())
		}
	}
	asked := time.Now()
	out, code := d.ctl(t, "cancel", "jack-2048", "1")
	took := time.Since(asked)
	if code != 0 || !strings.Contains(out, "#1 cancelled") {
		t.Fatalf("slipway cancel 1: exit %d\n%s\n%s", code, out, d.output())
	}
	t.Logf("cancel ended the run in %s", took.Round(10*time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("cancel took %s; the Job must be gone within 2s", took)
	}
	assertNoJobs(t, cs, ns)
}

func scriptRunning(p corev1.Pod) bool {
	for _, c := range p.Status.ContainerStatuses {
		if c.Name == "script" && c.State.Running != nil {
			return true
		}
	}
	return false
}

// assertNoJobs checks that namespace ns holds no Job and no pod.
func assertNoJobs(t *testing.T, cs kubernetes.Interface, ns string) {
	t.Helper()
	ctx := context.Background()
	jobs, err := cs.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs.Items) != 0 || len(pods.Items) != 0 {
		t.Errorf("left behind in %s: %d Jobs, %d pods", ns, len(jobs.Items), len(pods.Items))
	}
}
