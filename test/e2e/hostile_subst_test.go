package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/test/leakscan"
	"github.com/slipwayhq/slipway/test/testenv"
)

func randomTag(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestSubstitutionCannotChangeStructure deploys a ConfigMap whose values are a variable
// holding "#" and one holding a newline, "---" and a whole ClusterRoleBinding: each lands
// as one literal string, and no other object appears in the cluster.
func TestSubstitutionCannotChangeStructure(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	crb := "pwn-" + randomTag(t)
	hash := "s3cr3t #tail"
	inject := "x\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: " + crb +
		"\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\n" +
		"subjects: [{kind: ServiceAccount, name: default, namespace: " + ns + "}]"
	flow := "a, b: c]"
	repo, _, cfg := newProject(t, env)
	repo.commit("hostile values", map[string][]byte{
		".pipeline.yaml": []byte(`name: subst
variables:
  HASH: ` + strconv.Quote(hash) + `
  INJECT: ` + strconv.Quote(inject) + `
  FLOW: ` + strconv.Quote(flow) + `
stages:
  - name: deploy
    tasks:
      - {name: app, type: deploy-yaml, path: app.yaml, cluster: e2e, namespace: ` + ns + `, wait: 30s}
`),
		// A flow mapping: a value there cannot hold "," or "]" unquoted, which substitution
		// into parsed scalars handles.
		"app.yaml": []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app, annotations: {flow: ${FLOW}}}\n" +
			"data:\n  hash: ${HASH}\n  inject: ${INJECT}\n  quoted: \"${INJECT}\"\n  block: |\n    before\n    ${INJECT}\n"),
	})
	d := startServe(t, cfg)
	waitPipelineHistory(t, cfg, "subst", 90*time.Second, "run 1 to succeed", func(h []historyEntry) bool {
		return len(h) == 1 && h[0].Status == "succeeded"
	})
	d.stop(t)
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"hash": hash, "inject": inject, "quoted": inject, "block": "before\n" + inject + "\n"}
	for k, v := range want {
		if cm.Data[k] != v {
			t.Errorf("data.%s = %q, want %q", k, cm.Data[k], v)
		}
	}
	if len(cm.Data) != len(want) {
		t.Errorf("data has %d keys, want %d: %v", len(cm.Data), len(want), cm.Data)
	}
	if got := cm.Annotations["flow"]; got != flow {
		t.Errorf("annotation flow = %q, want %q", got, flow)
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Get(ctx, crb, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		_ = cs.RbacV1().ClusterRoleBindings().Delete(ctx, crb, metav1.DeleteOptions{})
		t.Fatalf("ClusterRoleBinding %s: %v, want it not found: the value added a document", crb, err)
	}
}

// TestSecretInConfigMapMaskedInDrift puts a secret into a ConfigMap (as is and inside a URL),
// lets kubectl change it (drift: report keeps the drift), and looks for the value, raw or
// encoded, in `slipway drift` and `slipway drift --events`, the daemon's log and the data
// folder's files: the patch must show it masked.
func TestSecretInConfigMapMaskedInDrift(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	secret := "cm-s3cr3t-" + randomTag(t)
	scanner, err := leakscan.New(map[string]string{"TOKEN": secret})
	if err != nil {
		t.Fatal(err)
	}
	src := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "src", Namespace: ns}, StringData: map[string]string{"token": secret}}
	if _, err := cs.CoreV1().Secrets(ns).Create(ctx, src, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	repo, _, cfg := newProject(t, env)
	repo.commit("a secret in a ConfigMap", map[string][]byte{
		".pipeline.yaml": []byte(`name: cmsecret
secrets:
  - {name: TOKEN, secret: src, key: token, cluster: e2e, namespace: ` + ns + `}
stages:
  - name: deploy
    tasks:
      - name: app
        type: deploy-yaml
        path: app.yaml
        cluster: e2e
        namespace: ` + ns + `
        wait: 30s
        drift: report
`),
		"app.yaml": []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  token: ${TOKEN}\n  dsn: postgres://app:${TOKEN}@db/x\n"),
	})
	d := startServe(t, cfg)
	waitPipelineHistory(t, cfg, "cmsecret", 90*time.Second, "run 1 to succeed", func(h []historyEntry) bool {
		return len(h) == 1 && h[0].Status == "succeeded"
	})
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "app", metav1.GetOptions{})
	if err != nil || cm.Data["token"] != secret {
		t.Fatalf("the secret did not reach the ConfigMap (%v): %v", err, cm.Data)
	}

	kubectl(t, env, "-n", ns, "patch", "configmap/app", "--type", "merge", "-p", `{"data":{"token":"edited","dsn":"postgres://app:edited@db/x"}}`)
	var events string
	for deadline := time.Now().Add(60 * time.Second); ; {
		out, code := slipway(t, "drift", "--events", "-o", "json", "--config", cfg, "cmsecret")
		if code == 0 && strings.Contains(out, "ConfigMap/"+ns+"/app") {
			events = out
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no drift event for the ConfigMap within 60s:\n%s", out)
		}
		time.Sleep(300 * time.Millisecond)
	}
	current, code := slipway(t, "drift", "-o", "json", "--config", cfg, "cmsecret")
	if code != 0 {
		t.Fatalf("slipway drift:\n%s", current)
	}
	human, _ := slipway(t, "drift", "--events", "--config", cfg, "cmsecret")
	d.stop(t)

	for where, text := range map[string]string{"slipway drift --events": events, "slipway drift": current} {
		if !strings.Contains(text, "/data/token") || !strings.Contains(text, "***") {
			t.Errorf("%s does not show the masked patch of data.token:\n%s", where, text)
		}
	}
	var found []leakscan.Finding
	for where, text := range map[string]string{"slipway drift --events -o json": events, "slipway drift": current,
		"slipway drift --events": human, "the daemon's log": d.output()} {
		found = append(found, scanner.Text(where, text)...)
	}
	atRest, err := scanner.Dir(ctx, filepath.Join(filepath.Dir(cfg), "data"))
	if err != nil {
		t.Fatal(err)
	}
	found = append(found, atRest...)
	for _, f := range found {
		t.Errorf("the secret is shown or at rest: %s", f)
	}
	if !strings.Contains(d.output(), "drift detected") {
		t.Errorf("the daemon's log has no drift line to scan:\n%s", d.output())
	}
}
