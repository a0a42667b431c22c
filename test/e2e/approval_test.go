package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/test/testenv"
)

// gatedPipeline deploys a staging ConfigMap, then a production one behind a manual
// approval by alice.
func gatedPipeline(ns, approvalExtra string) []byte {
	return []byte(`name: gated
stages:
  - name: staging
    tasks:
      - {name: deploy-staging, type: deploy-yaml, path: staging, cluster: e2e, namespace: ` + ns + `}
  - name: production
    approval:
      manual: {approvers: [alice]}
` + approvalExtra + `    tasks:
      - {name: deploy-production, type: deploy-yaml, path: production, cluster: e2e, namespace: ` + ns + `}
`)
}

func configMapNamed(name string) []byte {
	return []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\ndata:\n  build: \"${BUILD_ID}\"\n")
}

// A stage behind a manual approval waits in awaiting_approval with nothing of it applied;
// only a listed approver's answer lets it start (anyone else: 403); a rejection fails the
// run; the gate's timeout ends it approval_timed_out; every answer and decision is audited.
func TestManualApprovalGate(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	ctx := context.Background()
	repo, _, cfg := newProject(t, env)
	server, _ := withAPI(t, cfg)
	dir := filepath.Dir(cfg)
	alice, aliceEntry := newIdentity(t, dir, "alice", "approver")
	bob, bobEntry := newIdentity(t, dir, "bob", "approver")
	if err := os.WriteFile(filepath.Join(dir, "api-users.yaml"), []byte("users:\n"+aliceEntry+bobEntry), 0o600); err != nil {
		t.Fatal(err)
	}
	appendConfig(t, cfg, "apiTokensFile: api-users.yaml\n")
	repo.commit("gated", map[string][]byte{".pipeline.yaml": gatedPipeline(ns, ""),
		"staging/cm.yaml": configMapNamed("staging-config"), "production/cm.yaml": configMapNamed("production-config")})
	d := startAPIServe(t, cfg, server, alice)
	as := func(tokenFile string, args ...string) (string, int) {
		return slipway(t, append(args, "--server", server, "--token-file", tokenFile)...)
	}
	h := waitPipelineHistory(t, cfg, "gated", 60*time.Second, "run 1 awaiting approval", func(h []historyEntry) bool {
		return len(h) == 1 && h[0].Status == "awaiting_approval"
	})
	if !strings.Contains(h[0].Reason, "stage production waits for a manual approval from alice") {
		t.Errorf("reason %q", h[0].Reason)
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "staging-config", metav1.GetOptions{}); err != nil {
		t.Fatalf("the ungated stage did not run: %v", err)
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "production-config", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the gated stage ran before its approval: %v", err)
	}

	// bob holds the approver role but is not listed on the stage: 403, nothing changes.
	if out, code := as(bob, "approve", "gated", "1"); code == 0 || !strings.Contains(out, "403") || !strings.Contains(out, "bob may not approve stage production") {
		t.Fatalf("bob's approval: exit %d\n%s", code, out)
	}
	if h := history(t, cfg, "gated"); h[0].Status != "awaiting_approval" {
		t.Fatalf("after bob's refused approval: %+v", h[0])
	}
	if out, code := as(alice, "approve", "gated", "1", "--comment", "ship it", "--wait"); code != 0 || !strings.Contains(out, "#1 succeeded") {
		t.Fatalf("alice's approval: exit %d\n%s", code, out)
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "production-config", metav1.GetOptions{}); err != nil {
		t.Fatalf("the approved stage did not deploy: %v", err)
	}

	// A rejection fails the run and skips the stage.
	repo.commit("gated again", map[string][]byte{"production/cm.yaml": configMapNamed("production-config-2")})
	waitPipelineHistory(t, cfg, "gated", 60*time.Second, "run 2 awaiting approval", func(h []historyEntry) bool {
		return len(h) == 2 && h[0].Status == "awaiting_approval"
	})
	if out, code := as(alice, "reject", "gated", "2", "--comment", "not on a Friday", "--wait"); code != 0 || !strings.Contains(out, "#2 failed") {
		t.Fatalf("alice's rejection: exit %d\n%s", code, out)
	}
	if h := history(t, cfg, "gated"); h[0].Reason != "stage production rejected by alice: not on a Friday" {
		t.Fatalf("run 2 after the rejection: %+v", h[0])
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "production-config-2", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the rejected stage deployed: %v", err)
	}

	// Nobody answers: the gate's timeout ends the run.
	repo.commit("short gate", map[string][]byte{".pipeline.yaml": gatedPipeline(ns, "      timeout: 5s\n")})
	h = waitPipelineHistory(t, cfg, "gated", 60*time.Second, "run 3 approval_timed_out", func(h []historyEntry) bool {
		return len(h) == 3 && h[0].Status == "approval_timed_out"
	})
	if !strings.HasPrefix(h[0].Reason, "no approval of stage production within 5s") {
		t.Errorf("run 3 reason %q", h[0].Reason)
	}

	var actions []string
	for _, e := range auditLogOf(t, cfg, "gated") {
		actions = append(actions, e.Actor+":"+e.Action)
	}
	got := strings.Join(actions, " ")
	for _, want := range []string{"alice:approve", "alice:reject", "gate:gate-decision"} {
		if !strings.Contains(got, want) {
			t.Errorf("audit log %q lacks %s", got, want)
		}
	}
	if strings.Contains(got, "bob:") {
		t.Errorf("bob's refused answer is in the audit log: %q", got)
	}
	d.stop(t)
}
