package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/test/testenv"
)

// Secrets come from a Kubernetes Secret or a file, reach the manifests, and are masked
// wherever Slipway prints or records text: here the API server's own error quotes one.
func TestSecretsReachManifestsAndAreMasked(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const fromCluster, fromFile = "s3cr3t-from-the-cluster", "s3cr3t-from-a-file"
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns}, StringData: map[string]string{"token": fromCluster}}
	if _, err := cs.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	repo, repoName, cfg := newProject(t, env)
	secretFile := filepath.Join(filepath.Dir(cfg), "file-secret")
	if err := os.WriteFile(secretFile, []byte(fromFile+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pipeline := func(manifest string) map[string][]byte {
		return map[string][]byte{
			".pipeline.yaml": []byte(`name: secrets
secrets:
  - {name: TOKEN, secret: api, key: token, cluster: e2e, namespace: ` + ns + `}
  - {name: FILE_TOKEN, file: ` + secretFile + `}
stages:
  - name: deploy
    tasks:
      - name: app
        type: deploy-yaml
        path: app.yaml
        cluster: e2e
        namespace: ` + ns + `
        wait: 30s
`),
			"app.yaml": []byte(manifest),
		}
	}
	repo.commit("secrets", pipeline("apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\nstringData:\n  token: ${TOKEN}\n  file: ${FILE_TOKEN}\n"))
	out, code := slipway(t, "run", "--config", cfg, "--repo", repoName)
	if code != 0 {
		t.Fatalf("run failed:\n%s", out)
	}
	got, err := cs.CoreV1().Secrets(ns).Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Data["token"]) != fromCluster || string(got.Data["file"]) != fromFile {
		t.Errorf("secret values did not reach the manifest: %q %q", got.Data["token"], got.Data["file"])
	}

	// The API server refuses a label value holding the secret and quotes it in its error.
	repo.commit("secret in a label", pipeline("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: leak\n  labels:\n    bad: \"${TOKEN} ${FILE_TOKEN}\"\n"))
	out, code = slipway(t, "run", "--config", cfg, "--repo", repoName)
	if code != 1 || !strings.Contains(out, "***") {
		t.Fatalf("want the refused run to fail with the values masked:\n%s", out)
	}
	logs, _ := slipway(t, "logs", "--config", cfg, "secrets", "2")
	hist, _ := slipway(t, "history", "--config", cfg, "secrets", "-o", "json")
	for name, text := range map[string]string{"run output": out, "logs": logs, "history": hist} {
		if strings.Contains(text, fromCluster) || strings.Contains(text, fromFile) {
			t.Errorf("a secret value appears in the %s:\n%s", name, text)
		}
	}
}
