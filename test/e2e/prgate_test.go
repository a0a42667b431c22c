package e2e

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/test/testenv"
)

// A stage behind `approval: {pullRequest: {approvals: 1}}`, against the real Gitea: a
// commit pushed straight to the branch fails at the gate, saying so, and deploys nothing
// of the stage; the merge of a pull request approved by a second user deploys it.
func TestPullRequestApprovalGateOnGitea(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	w, gitea, owner, repo, cfg := giteaServeProject(t, env, "")
	reviewer := env.Gitea(t).CreateUser(t, "reviewer")
	gitea.AddCollaborator(t, owner.Name, repo.Name, reviewer.Name, "write")
	configMap := func(value string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: production-config\ndata:\n  value: " + value + "\n"
	}
	direct := w.commit("direct", map[string]string{
		"production/cm.yaml": configMap("direct"),
		".pipeline.yaml": `name: pr-gated
stages:
  - name: production
    approval:
      pullRequest: {approvals: 1}
    tasks:
      - {name: deploy-production, type: deploy-yaml, path: production, cluster: e2e, namespace: ` + ns + `}
`})
	w.push("master")
	d := startServe(t, cfg)

	h := waitPipelineHistory(t, cfg, "pr-gated", 90*time.Second, "run 1 failed at the gate", func(h []historyEntry) bool {
		return len(h) == 1 && h[0].Commit == direct && h[0].Status == "failed"
	})
	want := fmt.Sprintf("stage production: commit %s was pushed directly to master, not through a pull request", direct[:7])
	if h[0].Reason != want {
		t.Errorf("run 1's reason %q, want %q", h[0].Reason, want)
	}
	ctx := t.Context()
	if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "production-config", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a directly pushed commit deployed the gated stage: %v", err)
	}

	// Through a pull request approved by someone other than its author, then merged.
	w.git("checkout", "-q", "-b", "feature")
	head := w.commit("through a pull request", map[string]string{"production/cm.yaml": configMap("reviewed")})
	w.push("feature")
	pr := gitea.CreatePull(t, owner.Name, repo.Name, "feature", "master", "Reviewed change")
	env.Gitea(t).As(reviewer).CreateReview(t, owner.Name, repo.Name, pr.Number, "APPROVED", "lgtm")
	merged := gitea.MergePull(t, owner.Name, repo.Name, pr.Number, "merge")
	if !merged.Merged || merged.MergeCommitSHA == "" {
		t.Fatalf("pull request not merged: %+v", merged)
	}
	h = waitPipelineHistory(t, cfg, "pr-gated", 90*time.Second, "run 2 of the merge commit succeeded", func(h []historyEntry) bool {
		return len(h) == 2 && h[0].Commit == merged.MergeCommitSHA && (h[0].Status == "succeeded" || h[0].Status == "failed")
	})
	if h[0].Status != "succeeded" {
		t.Fatalf("the reviewed merge did not deploy: %+v", h[0])
	}
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "production-config", metav1.GetOptions{})
	if err != nil || cm.Data["value"] != "reviewed" {
		t.Fatalf("production-config after the reviewed merge: %+v, %v", cm, err)
	}

	// The audit log has both decisions, the allowing one with the pull request's evidence.
	out, code := slipway(t, "audit", "--config", cfg, "pr-gated", "-o", "json")
	var entries []struct {
		BuildID  int64  `json:"build_id"`
		Reason   string `json:"reason"`
		Evidence struct {
			Rule     string         `json:"rule"`
			Allow    bool           `json:"allow"`
			Evidence map[string]any `json:"evidence"`
		} `json:"evidence"`
	}
	if err := json.Unmarshal([]byte(out), &entries); code != 0 || err != nil {
		t.Fatalf("slipway audit -o json: exit %d, %v\n%s", code, err, out)
	}
	byBuild := map[int64]int{}
	for i, e := range entries {
		if e.Evidence.Rule == "pullRequest" {
			byBuild[e.BuildID] = i
		}
	}
	i1, ok1 := byBuild[1]
	i2, ok2 := byBuild[2]
	if !ok1 || !ok2 || entries[i1].Reason != want || entries[i1].Evidence.Allow {
		t.Fatalf("audit lacks the gate's decisions:\n%s", out)
	}
	ev := entries[i2].Evidence
	if !ev.Allow || ev.Evidence["pullRequest"] != float64(pr.Number) || ev.Evidence["head"] != head ||
		fmt.Sprint(ev.Evidence["approvers"]) != "["+reviewer.Name+"]" || ev.Evidence["author"] != owner.Name {
		t.Errorf("the allowing decision's evidence: %+v", ev)
	}
	d.stop(t)
}
