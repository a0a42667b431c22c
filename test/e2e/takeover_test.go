package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/test/testenv"
)

// An object first created with `kubectl apply` becomes Slipway's cleanly when the task
// adopts it: kubectl's last-applied annotation and field managers are gone after the first
// deploy, and history says the object was adopted.
func TestDeployYAMLTakesOverKubectlObjects(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	manifest := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: ${MODE}\n"
	kubectlVersion := strings.Replace(manifest, "${MODE}", "by-hand", 1)
	cmd := exec.CommandContext(ctx, env.Kubectl, "--kubeconfig", env.Kubeconfig, "-n", ns, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(kubectlVersion)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}

	repo, repoName, cfg := newProject(t, env)
	repo.commit("settings", map[string][]byte{
		".pipeline.yaml": []byte("name: settings\nvariables: {MODE: gitops}\nstages:\n- name: deploy\n  tasks:\n  - name: settings\n    type: deploy-yaml\n    path: cm.yaml\n    cluster: e2e\n    namespace: " + ns + "\n    wait: 30s\n    adopt: true\n"),
		"cm.yaml":        []byte(manifest),
	})
	if out, code := slipway(t, "run", "--config", cfg, "--repo", repoName); code != 0 {
		t.Fatalf("run failed:\n%s", out)
	}
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "settings", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["mode"] != "gitops" {
		t.Errorf("data.mode = %q, want gitops", cm.Data["mode"])
	}
	if _, ok := cm.Annotations[corev1.LastAppliedConfigAnnotation]; ok {
		t.Errorf("kubectl's last-applied annotation is still there")
	}
	var managers []string
	for _, mf := range cm.ManagedFields {
		managers = append(managers, mf.Manager+"/"+string(mf.Operation))
		if strings.HasPrefix(mf.Manager, "kubectl") {
			t.Errorf("field manager %s/%s is still there", mf.Manager, mf.Operation)
		}
	}
	if strings.Join(managers, ",") != "slipway/Apply" {
		t.Errorf("managers = %v, want only slipway/Apply", managers)
	}
	assertOwnedBy(t, "ConfigMap settings", cm.ObjectMeta, repoName+"/settings/settings")
	if h := history(t, cfg, "settings"); len(h) != 1 || len(h[0].Adopted) != 1 || h[0].Adopted[0] != "settings ConfigMap/"+ns+"/settings" {
		t.Errorf("history does not record the adoption: %+v", h)
	}
}
