package bench

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/reconciler/scriptrun"
	"github.com/slipwayhq/slipway/reconciler/scriptrun/kubejob"
	"github.com/slipwayhq/slipway/test/testenv"
)

// TestBenchKubeJob measures the Kubernetes script executor on the environment's real node:
// a trivial script (`true`) from Run's start to its return (Job created, workspace moved in,
// script run, workspace brought back, Job and pod gone), beside `kubectl run --rm` of the
// same image on the same node (pod created, run, deleted); and the same script over a 50 MB
// workspace (50 files of 1 MiB of random bytes), which goes in and comes back whole. Three
// rounds each, one after another; the median with the spread (min–max), raw figures in
// .slipway/bench/kubejob.json.
func TestBenchKubeJob(t *testing.T) {
	env := testenv.Get(t)
	node, selector, toleration := env.RealNode(t)
	cs := env.Clientset(t)
	ns := env.Namespace(t)
	ctx := context.Background()
	log := logrus.New()
	log.SetOutput(io.Discard)
	ex := kubejob.New(kubejob.Options{Client: cs, Config: env.RestConfig(t), Cluster: "local", Namespace: ns,
		NodeSelector: selector, Tolerations: []corev1.Toleration{toleration}, Log: logrus.NewEntry(log)})

	small := t.TempDir()
	if err := os.WriteFile(filepath.Join(small, "README"), []byte("a trivial workspace\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	big := t.TempDir()
	chunk := make([]byte, 1<<20)
	for i := range 50 {
		_, _ = rand.Read(chunk)
		if err := os.WriteFile(filepath.Join(big, fmt.Sprintf("blob-%02d.bin", i)), chunk, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := func(ws string) func() error {
		return func() error {
			res, err := ex.Run(ctx, scriptrun.Spec{Run: scriptrun.RunRef{Repository: "bench", Pipeline: "bench", BuildID: 1, Task: "true"},
				Image: env.BaseImage, Script: "true", Env: map[string]string{}, Workspace: ws, Log: io.Discard})
			if err == nil && res.ExitCode != 0 {
				err = fmt.Errorf("exit code %d", res.ExitCode)
			}
			return err
		}
	}
	overrides, err := json.Marshal(map[string]any{"spec": map[string]any{
		"nodeSelector": selector, "tolerations": []corev1.Toleration{toleration}}})
	if err != nil {
		t.Fatal(err)
	}
	round := 0
	kubectlRun := func() error {
		round++
		cmd := exec.CommandContext(ctx, env.Kubectl, "--kubeconfig", env.Kubeconfig, "-n", ns, "run", fmt.Sprintf("direct-%d", round),
			"--rm", "--attach", "--quiet", "--restart=Never", "--image="+env.BaseImage, "--overrides="+string(overrides), "--command", "--", "true")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("kubectl run: %v: %s", err, out)
		}
		return nil
	}

	// One unmeasured run of each pulls the image onto the node and warms the clients.
	for _, warm := range []func() error{script(small), kubectlRun} {
		if err := warm(); err != nil {
			t.Fatal(err)
		}
	}
	type row struct {
		Name    string    `json:"name"`
		Seconds []float64 `json:"seconds"`
	}
	var rows []row
	for _, c := range []struct {
		name string
		run  func() error
	}{
		{"kubernetes executor: `true`, trivial workspace", script(small)},
		{"`kubectl run --rm` of the same image on the same node", kubectlRun},
		{"kubernetes executor: `true`, 50 MB workspace in and out", script(big)},
	} {
		r := row{Name: c.name}
		for range 3 {
			start := time.Now()
			if err := c.run(); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			r.Seconds = append(r.Seconds, time.Since(start).Seconds())
		}
		rows = append(rows, r)
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(pods.Items) != 0 {
		t.Fatalf("pods left behind: %v %v", pods, err)
	}

	t.Logf("Kubernetes executor on the real node %s, 3 runs each:", node)
	t.Logf("| | median | spread (min–max) |")
	t.Logf("| --- | ---: | ---: |")
	for _, r := range rows {
		t.Logf("| %s | %.2f s | %.2f–%.2f s |", r.Name, median(r.Seconds), slices.Min(r.Seconds), slices.Max(r.Seconds))
	}
	ratio := median(rows[0].Seconds) / median(rows[1].Seconds)
	transfer := median(rows[2].Seconds) - median(rows[0].Seconds)
	t.Logf("trivial script: %.2f× `kubectl run --rm` (target 1.5×); 50 MB in and out adds %.2f s", ratio, transfer)
	writeReport(t, env, "kubejob.json", map[string]any{"node": node, "rows": rows, "ratio_to_kubectl_run": ratio,
		"workspace_50mb_extra_seconds": transfer})
}
