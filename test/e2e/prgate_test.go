package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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

// gateAuditEntry is a gate's decision or a person's answer as `slipway audit -o json`
// lists it.
type gateAuditEntry struct {
	Actor    string `json:"actor"`
	Action   string `json:"action"`
	BuildID  int64  `json:"build_id"`
	Reason   string `json:"reason"`
	Evidence struct {
		Stage   string `json:"stage"`
		Rule    string `json:"rule"`
		Allow   bool   `json:"allow"`
		Answers []struct {
			Actor   string `json:"actor"`
			Via     string `json:"via"`
			Approve bool   `json:"approve"`
		} `json:"answers"`
		Evidence map[string]any `json:"evidence"`
	} `json:"evidence"`
}

func gateAudit(t *testing.T, cfg, pipeline string) []gateAuditEntry {
	t.Helper()
	out, code := slipway(t, "audit", "--config", cfg, pipeline, "-o", "json")
	var entries []gateAuditEntry
	if err := json.Unmarshal([]byte(out), &entries); code != 0 || err != nil {
		t.Fatalf("slipway audit -o json: exit %d, %v\n%s", code, err, out)
	}
	return entries
}

// A stage behind `pullRequest: {approvals: 1, reviewers: [team:sre]}` with a manual
// fallback for team:sre, on a repository of a real Gitea organization: a direct push waits,
// a non-member's `slipway approve` is refused 403 and a member's (through their own API
// identity) releases it; a pull request whose only approval that counts would be its
// author's waits with the reason; so does one approved and then changed by a new push
// before the merge. `slipway audit -o json` lists each decision with its rule, actor and
// evidence.
func TestTeamApprovalsAndWaitingPullRequestsOnGitea(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	ctx := t.Context()
	admin := env.Gitea(t)
	owner := admin.CreateUser(t, "owner")
	member := admin.CreateUser(t, "sre") // in team sre
	gitea := admin.As(owner)
	org := gitea.CreateOrg(t, "org")
	gitea.CreateTeam(t, org, "sre", member.Name)
	repo := gitea.CreateOrgRepo(t, org, testenv.UniqueName(t))

	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "forge-token")
	if err := os.WriteFile(tokenFile, []byte(owner.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfigFor(t, env, dir, repo.Name, gitea.CloneURL(org, repo.Name), owner.Name, owner.Token,
		fmt.Sprintf("poll: 1s\nforge: {type: gitea, url: %q, tokenFile: %s}", gitea.URL, tokenFile))
	server, _ := withAPI(t, cfg)
	memberToken, memberEntry := newIdentity(t, dir, member.Name, "approver")
	mallory, malloryEntry := newIdentity(t, dir, "mallory", "approver")
	if err := os.WriteFile(filepath.Join(dir, "api-users.yaml"), []byte("users:\n"+memberEntry+malloryEntry), 0o600); err != nil {
		t.Fatal(err)
	}
	appendConfig(t, cfg, "apiTokensFile: api-users.yaml\n")
	as := func(tokenFile string, args ...string) (string, int) {
		return slipway(t, append(args, "--server", server, "--token-file", tokenFile)...)
	}

	configMap := func(value string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: production-config\ndata:\n  value: " + value + "\n"
	}
	w := &gitWork{t: t, dir: t.TempDir(), pushURL: gitea.PushURL(org, repo.Name)}
	w.git("init", "--initial-branch=master", ".")
	direct := w.commit("direct", map[string]string{
		"production/cm.yaml": configMap("direct"),
		".pipeline.yaml": `name: team-gated
stages:
  - name: production
    approval:
      pullRequest: {approvals: 1, reviewers: [team:sre]}
      manual: {approvers: [team:sre]}
    tasks:
      - {name: deploy-production, type: deploy-yaml, path: production, cluster: e2e, namespace: ` + ns + `}
`})
	w.push("master")
	d := startAPIServe(t, cfg, server, memberToken)
	waitingFor := func(n int, commit string) historyEntry {
		t.Helper()
		h := waitPipelineHistory(t, cfg, "team-gated", 90*time.Second, fmt.Sprintf("run %d awaiting approval", n), func(h []historyEntry) bool {
			return len(h) == n && h[0].Commit == commit && h[0].Status == "awaiting_approval"
		})
		return h[0]
	}
	manual := "stage production waits for a manual approval from team:sre (slipway approve " + repo.Name + "/team-gated "

	// 1. A direct push waits; a non-member may not approve it, a member may.
	run := waitingFor(1, direct)
	if want := fmt.Sprintf("stage production: commit %s was pushed directly to master, not through a pull request; %s1)", direct[:7], manual); run.Reason != want {
		t.Errorf("run 1 waits with %q, want %q", run.Reason, want)
	}
	out, code := as(mallory, "approve", "team-gated", "1")
	if code == 0 || !strings.Contains(out, "403") || !strings.Contains(out, "mallory may not approve stage production (approvers: team:sre)") {
		t.Fatalf("mallory's approval: exit %d\n%s", code, out)
	}
	if h := history(t, cfg, "team-gated"); h[0].Status != "awaiting_approval" {
		t.Fatalf("after mallory's refused approval: %+v", h[0])
	}
	if out, code := as(memberToken, "approve", "team-gated", "1", "--comment", "hotfix", "--wait"); code != 0 || !strings.Contains(out, "#1 succeeded") {
		t.Fatalf("%s's approval: exit %d\n%s", member.Name, code, out)
	}
	if cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "production-config", metav1.GetOptions{}); err != nil || cm.Data["value"] != "direct" {
		t.Fatalf("production-config after the team member's approval: %+v, %v", cm, err)
	}

	// 2. A pull request by the team member: Gitea refuses its author's own approval, and an
	// approval by someone outside the team does not count, so its merge waits.
	w.pushURL = admin.As(member).PushURL(org, repo.Name)
	w.git("checkout", "-q", "-b", "by-member")
	ownHead := w.commit("by the member", map[string]string{"production/cm.yaml": configMap("by-member")})
	w.push("by-member")
	pr1 := admin.As(member).CreatePull(t, org, repo.Name, "by-member", "master", "By a team member")
	err := admin.As(member).Do(ctx, http.MethodPost, fmt.Sprintf("/repos/%s/%s/pulls/%d/reviews", org, repo.Name, pr1.Number),
		map[string]any{"event": "APPROVED", "body": "my own"}, nil)
	if err == nil || !strings.Contains(err.Error(), "approve your own pull is not allowed") {
		t.Fatalf("Gitea took the author's own approval: %v", err)
	}
	gitea.CreateReview(t, org, repo.Name, pr1.Number, "APPROVED", "lgtm, though not in sre")
	merged1 := gitea.MergePull(t, org, repo.Name, pr1.Number, "merge")
	run = waitingFor(2, merged1.MergeCommitSHA)
	want := fmt.Sprintf("stage production: PR #%d has 0 of 1 approvals from team:sre on its final head %s (the author's own and approvals of earlier heads do not count); %s2)",
		pr1.Number, ownHead[:7], manual)
	if run.Reason != want {
		t.Errorf("run 2 waits with %q, want %q", run.Reason, want)
	}
	if out, code := as(memberToken, "reject", "team-gated", "2", "--comment", "needs a second pair of eyes", "--wait"); code != 0 || !strings.Contains(out, "#2 failed") {
		t.Fatalf("%s's rejection: exit %d\n%s", member.Name, code, out)
	}

	// 3. Approved by the team member, then changed by a new push, merged without a new
	// approval: the approval was of an earlier head, so the merge waits.
	w.pushURL = gitea.PushURL(org, repo.Name)
	w.git("checkout", "-q", "master")
	w.git("pull", "-q", "--ff-only", w.pushURL, "master")
	w.git("checkout", "-q", "-b", "changed-after-review")
	approvedHead := w.commit("reviewed", map[string]string{"production/cm.yaml": configMap("reviewed")})
	w.push("changed-after-review")
	pr2 := gitea.CreatePull(t, org, repo.Name, "changed-after-review", "master", "Changed after review")
	admin.As(member).CreateReview(t, org, repo.Name, pr2.Number, "APPROVED", "lgtm")
	finalHead := w.commit("after the review", map[string]string{"production/cm.yaml": configMap("unreviewed")})
	w.push("changed-after-review")
	if got := gitea.GetPull(t, org, repo.Name, pr2.Number); got.Head.SHA != finalHead {
		t.Fatalf("pull request #%d head %s, want %s", pr2.Number, got.Head.SHA, finalHead)
	}
	merged2 := gitea.MergePull(t, org, repo.Name, pr2.Number, "merge")
	run = waitingFor(3, merged2.MergeCommitSHA)
	want = fmt.Sprintf("stage production: PR #%d has 0 of 1 approvals from team:sre on its final head %s", pr2.Number, finalHead[:7])
	if !strings.HasPrefix(run.Reason, want) {
		t.Errorf("run 3 waits with %q, want it to start with %q", run.Reason, want)
	}
	if cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "production-config", metav1.GetOptions{}); err != nil || cm.Data["value"] != "direct" {
		t.Fatalf("a waiting run changed production-config: %+v, %v", cm, err)
	}
	if out, code := as(memberToken, "reject", "team-gated", "3", "--wait"); code != 0 || !strings.Contains(out, "#3 failed") {
		t.Fatalf("%s's rejection of run 3: exit %d\n%s", member.Name, code, out)
	}
	d.stop(t)

	// The audit log: each run's decision with its rule, the answer's actor and the team that
	// admitted them, and the pull request's evidence; mallory's refused answer is not there.
	decisions := map[int64]gateAuditEntry{}
	answers := map[string]bool{}
	for _, e := range gateAudit(t, cfg, "team-gated") {
		switch e.Action {
		case "gate-decision":
			decisions[e.BuildID] = e
		default:
			answers[fmt.Sprintf("%s:%s:%d", e.Actor, e.Action, e.BuildID)] = true
		}
	}
	for _, a := range []string{member.Name + ":approve:1", member.Name + ":reject:2", member.Name + ":reject:3"} {
		if !answers[a] {
			t.Errorf("audit lacks %s; has %v", a, answers)
		}
	}
	for a := range answers {
		if strings.HasPrefix(a, "mallory:") {
			t.Errorf("mallory's refused answer is audited: %s", a)
		}
	}
	check := func(build int64, allow bool, reason string, evidence map[string]any) {
		t.Helper()
		e, ok := decisions[build]
		if !ok {
			t.Errorf("no gate decision of run %d in the audit log", build)
			return
		}
		if e.Actor != "gate" || e.Evidence.Rule != "manual" || e.Evidence.Allow != allow || e.Reason != reason ||
			len(e.Evidence.Answers) != 1 || e.Evidence.Answers[0].Actor != member.Name || e.Evidence.Answers[0].Via != "team:sre" {
			t.Errorf("run %d's decision: %+v", build, e)
		}
		for k, v := range evidence {
			if fmt.Sprint(e.Evidence.Evidence[k]) != fmt.Sprint(v) {
				t.Errorf("run %d's evidence %s = %v, want %v (%v)", build, k, e.Evidence.Evidence[k], v, e.Evidence.Evidence)
			}
		}
	}
	check(1, true, "stage production approved by "+member.Name+" (team:sre)", map[string]any{"commit": direct})
	check(2, false, "stage production rejected by "+member.Name+" (team:sre): needs a second pair of eyes",
		map[string]any{"pullRequest": pr1.Number, "author": member.Name, "head": ownHead, "approvers": "[]"})
	check(3, false, "stage production rejected by "+member.Name+" (team:sre)",
		map[string]any{"pullRequest": pr2.Number, "author": owner.Name, "head": finalHead, "mergeCommit": merged2.MergeCommitSHA, "approvers": "[]"})
	t.Logf("run 3 waited with: %s (approved head was %s)", run.Reason, approvedHead[:7])
}
