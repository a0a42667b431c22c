package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Cluster starts another Kubernetes cluster for one test, for pipelines that deploy to
// several clusters: its own etcd, kube-apiserver, kube-controller-manager, kube-scheduler
// and kwok with one node, from the binaries and certificates of the environment's own
// control plane. It returns the cluster's admin kubeconfig. Everything it started is
// stopped, by PID, when the test ends; the processes' output is in .slipway/env/logs.
func (e *Env) Cluster(t testing.TB, name string) string {
	t.Helper()
	state := filepath.Dir(e.Kubeconfig)
	kubeDir, kwokDir := filepath.Dir(e.Kubectl), filepath.Dir(e.KwokStages)
	etcds, _ := filepath.Glob(filepath.Join(filepath.Dir(kubeDir), "etcd-*", "etcd"))
	if e.Kubectl == "" || e.KwokStages == "" || len(etcds) == 0 {
		t.Fatalf("testenv: no control plane binaries next to %q (etcd-*, kube-*, kwok-*): %s", e.Kubectl, howToGet)
	}
	dir := t.TempDir()
	logs := filepath.Join(state, "logs")
	ports := FreePorts(t, 3)
	start := func(what string, bin string, args ...string) {
		t.Helper()
		logFile, err := os.Create(filepath.Join(logs, fmt.Sprintf("cluster-%s-%s.log", name, what)))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			logFile.Close()
			t.Fatalf("testenv: start %s of cluster %s: %v", what, name, err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			logFile.Close()
		})
	}

	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	start("etcd", etcds[0], "--name", name, "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", name+"="+peerURL, "--unsafe-no-fsync", "--log-level", "warn")
	pki := filepath.Join(state, "pki")
	api := strconv.Itoa(ports[2])
	start("kube-apiserver", filepath.Join(kubeDir, "kube-apiserver"), "--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", api,
		"--tls-cert-file", filepath.Join(pki, "apiserver.crt"), "--tls-private-key-file", filepath.Join(pki, "apiserver.key"),
		"--client-ca-file", filepath.Join(pki, "ca.crt"), "--token-auth-file", filepath.Join(state, "tokens.csv"),
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", filepath.Join(pki, "sa.pub"), "--service-account-signing-key-file", filepath.Join(pki, "sa.key"),
		"--service-cluster-ip-range", "10.96.0.0/16", "--authorization-mode", "RBAC", "--allow-privileged=true",
		"--endpoint-reconciler-type", "none", "--cert-dir", filepath.Join(dir, "generated"))

	// The environment's admin kubeconfig, pointed at this API server.
	admin, err := os.ReadFile(e.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	text, n := string(admin), 0
	for _, line := range strings.Split(text, "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "server: "); ok {
			text = strings.Replace(text, s, "https://127.0.0.1:"+api, 1)
			n++
		}
	}
	if n != 1 {
		t.Fatalf("testenv: %s has %d server lines, want 1", e.Kubeconfig, n)
	}
	kubeconfig := filepath.Join(dir, name+".kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(restConfig(t, kubeconfig))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	waitFor(t, name+" API server ready", 3*time.Minute, func() error {
		return cs.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).Error()
	})

	start("kube-controller-manager", filepath.Join(kubeDir, "kube-controller-manager"), "--kubeconfig", kubeconfig,
		"--controllers", "*,-nodeipam,-nodelifecycle,-serviceaccount-token", "--leader-elect=false", "--secure-port", "0",
		"--root-ca-file", filepath.Join(pki, "ca.crt"), "--cluster-signing-cert-file", filepath.Join(pki, "ca.crt"),
		"--cluster-signing-key-file", filepath.Join(pki, "ca.key"), "--use-service-account-credentials=false")
	start("kube-scheduler", filepath.Join(kubeDir, "kube-scheduler"), "--kubeconfig", kubeconfig, "--leader-elect=false", "--secure-port", "0")
	args := []string{"--kubeconfig", kubeconfig, "--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector", "kwok.x-k8s.io/node=fake", "--cidr", "10.245.0.0/16", "--node-ip", "127.0.0.1"}
	for _, s := range []string{"node/fast/node-initialize.yaml", "pod/fast/pod-ready.yaml", "pod/fast/pod-complete.yaml", "pod/fast/pod-delete.yaml"} {
		args = append(args, "-c", filepath.Join(kwokDir, "stages", s))
	}
	start("kwok", filepath.Join(kwokDir, "kwok"), args...)

	capacity := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods: resource.MustParse("250")}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-node", Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels: map[string]string{"kubernetes.io/hostname": name + "-node", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "type": "kwok"}},
		Status: corev1.NodeStatus{Allocatable: capacity, Capacity: capacity},
	}
	waitFor(t, name+" node created", time.Minute, func() error {
		_, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		return err
	})
	// Admission taints a new node not-ready and no node lifecycle controller lifts it here.
	waitFor(t, name+" node ready and untainted", 2*time.Minute, func() error {
		n, err := cs.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		ready := false
		for _, c := range n.Status.Conditions {
			ready = ready || (c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue)
		}
		if !ready {
			return fmt.Errorf("node %s is not ready", n.Name)
		}
		var keep []corev1.Taint
		for _, tn := range n.Spec.Taints {
			if tn.Key != "node.kubernetes.io/not-ready" {
				keep = append(keep, tn)
			}
		}
		if len(keep) != len(n.Spec.Taints) {
			n.Spec.Taints = keep
			_, err = cs.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		}
		return err
	})
	waitFor(t, name+" default service account", time.Minute, func() error {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err
	})
	return kubeconfig
}

// waitFor polls fn until it returns nil, failing the test with its last error at timeout.
func waitFor(t testing.TB, what string, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || t.Context().Err() != nil {
			t.Fatalf("testenv: %s: not within %s: %v (logs: .slipway/env/logs/cluster-*.log)", what, timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
