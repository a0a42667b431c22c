package policy

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/sources/forge"
	"github.com/slipwayhq/slipway/store"
)

// fakeForge answers the rule's calls from fixed data.
type fakeForge struct {
	prs     []forge.PullRequest
	reviews map[int64][]forge.Review
	teams   map[string][]string
	err     error
}

func (f *fakeForge) PullRequestsForCommit(_ context.Context, sha string) ([]forge.PullRequest, error) {
	if f.err != nil {
		return nil, f.err
	}
	var out []forge.PullRequest
	for _, p := range f.prs {
		if p.MergeCommitSHA == sha {
			out = append(out, p)
		}
	}
	return out, nil
}

func (f *fakeForge) Reviews(_ context.Context, n int64) ([]forge.Review, error) {
	return f.reviews[n], nil
}

func (f *fakeForge) TeamMembers(_ context.Context, team string) ([]string, error) {
	m, ok := f.teams[team]
	if !ok {
		return nil, forge.ErrNotFound
	}
	return m, nil
}

const (
	mergeSHA = "a1b2c3d4e5f60000000000000000000000000000"
	headSHA  = "ffff0000eeee0000000000000000000000000000"
	oldHead  = "1111222233330000000000000000000000000000"
	pushSHA  = "abc1234000000000000000000000000000000000"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func review(who string, state forge.ReviewState, sha string, minute int) forge.Review {
	return forge.Review{Reviewer: who, State: state, CommitSHA: sha, Submitted: t0.Add(time.Duration(minute) * time.Minute)}
}

func prGate(f *fakeForge) Gate {
	return Gate{Forges: func(repo string) (Reviews, bool) {
		if repo != "shop" || f == nil {
			return nil, false
		}
		return f, true
	}}
}

func prRequest(commit string, rule *pipeline.PullRequestApproval, manual *pipeline.ManualApproval) StageRequest {
	return StageRequest{
		Run:   store.Run{Pipeline: store.PipelineRef{Repository: "shop", Name: "deploy"}, BuildID: 7, Commit: commit, Branch: "main"},
		Stage: &pipeline.Stage{Name: "production", Approval: &pipeline.Approval{PullRequest: rule, Manual: manual}},
	}
}

func mergedPR(reviews ...forge.Review) *fakeForge {
	return &fakeForge{
		prs: []forge.PullRequest{{Number: 7, Author: "alice", HeadSHA: headSHA, BaseBranch: "main",
			MergeCommitSHA: mergeSHA, Merged: true, State: forge.PRClosed}},
		reviews: map[int64][]forge.Review{7: reviews},
		teams:   map[string][]string{"sre": {"carol", "dave"}},
	}
}

func TestPullRequestRule(t *testing.T) {
	one := &pipeline.PullRequestApproval{Approvals: 1}
	two := &pipeline.PullRequestApproval{Approvals: 2}
	sre := &pipeline.PullRequestApproval{Approvals: 2, Reviewers: []string{"team:sre"}}
	cases := []struct {
		name      string
		forge     *fakeForge
		commit    string
		rule      *pipeline.PullRequestApproval
		allow     bool
		reason    string
		approvers []string
	}{
		{name: "approved by a second user", forge: mergedPR(review("bob", forge.ReviewApproved, headSHA, 1)),
			commit: mergeSHA, rule: one, allow: true, reason: "stage production: PR #7 approved by bob", approvers: []string{"bob"}},
		{name: "the author's own approval", forge: mergedPR(review("alice", forge.ReviewApproved, headSHA, 1)),
			commit: mergeSHA, rule: one, reason: "stage production: PR #7 has 0 of 1 approvals on its final head ffff000"},
		{name: "an approval of an earlier head", forge: mergedPR(review("bob", forge.ReviewApproved, oldHead, 1)),
			commit: mergeSHA, rule: one, reason: "PR #7 has 0 of 1 approvals"},
		{name: "re-approved on the final head", forge: mergedPR(review("bob", forge.ReviewApproved, oldHead, 1), review("bob", forge.ReviewApproved, headSHA, 2)),
			commit: mergeSHA, rule: one, allow: true, approvers: []string{"bob"}},
		{name: "changes requested after approving", forge: mergedPR(review("bob", forge.ReviewApproved, headSHA, 1), review("bob", forge.ReviewChangesRequested, headSHA, 2)),
			commit: mergeSHA, rule: one, reason: "PR #7 has 0 of 1 approvals"},
		{name: "dismissed", forge: mergedPR(review("bob", forge.ReviewApproved, headSHA, 1), review("bob", forge.ReviewDismissed, headSHA, 2)),
			commit: mergeSHA, rule: one, reason: "PR #7 has 0 of 1 approvals"},
		{name: "a comment after approving withdraws nothing", forge: mergedPR(review("bob", forge.ReviewApproved, headSHA, 1), review("bob", forge.ReviewCommented, headSHA, 2)),
			commit: mergeSHA, rule: one, allow: true, approvers: []string{"bob"}},
		{name: "one reviewer twice counts once", forge: mergedPR(review("bob", forge.ReviewApproved, headSHA, 1), review("bob", forge.ReviewApproved, headSHA, 2)),
			commit: mergeSHA, rule: two, reason: "PR #7 has 1 of 2 approvals"},
		{name: "team reviewers", forge: mergedPR(review("bob", forge.ReviewApproved, headSHA, 1), review("carol", forge.ReviewApproved, headSHA, 2)),
			commit: mergeSHA, rule: sre, reason: "stage production: PR #7 has 1 of 2 approvals from team:sre on its final head ffff000", approvers: []string{"carol"}},
		{name: "team reviewers enough", forge: mergedPR(review("dave", forge.ReviewApproved, headSHA, 1), review("carol", forge.ReviewApproved, headSHA, 2)),
			commit: mergeSHA, rule: sre, allow: true, reason: "stage production: PR #7 approved by carol, dave", approvers: []string{"carol", "dave"}},
		{name: "direct push", forge: mergedPR(review("bob", forge.ReviewApproved, headSHA, 1)),
			commit: pushSHA, rule: one, reason: "stage production: commit abc1234 was pushed directly to main, not through a pull request"},
		{name: "no forge", commit: mergeSHA, rule: one,
			reason: "stage production: repository shop has no forge configured in slipway.yaml: pull-request approval cannot be checked"},
		{name: "forge down", forge: &fakeForge{err: forge.ErrUnavailable}, commit: mergeSHA, rule: one,
			reason: "stage production: cannot read the pull request of commit a1b2c3d: forge unavailable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := prGate(c.forge).MayStart(context.Background(), prRequest(c.commit, c.rule, nil))
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != c.allow || d.Wait || d.Rule != "pullRequest" {
				t.Fatalf("decision %+v", d)
			}
			if !strings.Contains(d.Reason, c.reason) {
				t.Errorf("reason %q, want it to contain %q", d.Reason, c.reason)
			}
			if c.approvers != nil && !reflect.DeepEqual(d.Evidence["approvers"], c.approvers) {
				t.Errorf("evidence %v", d.Evidence)
			}
		})
	}
}

func TestPullRequestRuleEvidence(t *testing.T) {
	d, _ := prGate(mergedPR(review("bob", forge.ReviewApproved, headSHA, 1))).MayStart(context.Background(),
		prRequest(mergeSHA, &pipeline.PullRequestApproval{Approvals: 1}, nil))
	want := map[string]any{"commit": mergeSHA, "branch": "main", "pullRequest": int64(7), "author": "alice", "head": headSHA,
		"mergeCommit": mergeSHA, "approvers": []string{"bob"}, "needed": 1}
	if !reflect.DeepEqual(d.Evidence, want) {
		t.Errorf("evidence %v", d.Evidence)
	}
}

func TestPullRequestRuleMergedIntoAnotherBranch(t *testing.T) {
	f := mergedPR(review("bob", forge.ReviewApproved, headSHA, 1))
	f.prs[0].BaseBranch = "release"
	d, _ := prGate(f).MayStart(context.Background(), prRequest(mergeSHA, &pipeline.PullRequestApproval{Approvals: 1}, nil))
	if d.Allow || !strings.Contains(d.Reason, "commit a1b2c3d is the merge of PR #7 into release, not into main") {
		t.Errorf("decision %+v", d)
	}
}

func TestPullRequestRuleFallsBackToManual(t *testing.T) {
	manual := &pipeline.ManualApproval{Approvers: []string{"ops-lead"}}
	rule := &pipeline.PullRequestApproval{Approvals: 1}
	g := prGate(mergedPR())
	ctx := context.Background()

	req := prRequest(pushSHA, rule, manual)
	d, err := g.MayStart(ctx, req)
	if err != nil || d.Allow || !d.Wait || d.Rule != "manual" {
		t.Fatalf("direct push with a manual fallback must wait: %+v %v", d, err)
	}
	want := "stage production: commit abc1234 was pushed directly to main, not through a pull request; " +
		"stage production waits for a manual approval from ops-lead (slipway approve shop/deploy 7)"
	if d.Reason != want {
		t.Errorf("reason %q", d.Reason)
	}
	req.Answers = []Answer{{Actor: "ops-lead", Approve: true}}
	if d, _ = g.MayStart(ctx, req); !d.Allow || d.Rule != "manual" {
		t.Errorf("approved by hand: %+v", d)
	}

	// A pull request that passes needs no one's answer.
	g = prGate(mergedPR(review("bob", forge.ReviewApproved, headSHA, 1)))
	if d, _ = g.MayStart(ctx, prRequest(mergeSHA, rule, manual)); !d.Allow || d.Rule != "pullRequest" {
		t.Errorf("approved pull request: %+v", d)
	}
}

func TestPullRequestRuleTeamLookupFails(t *testing.T) {
	rule := &pipeline.PullRequestApproval{Approvals: 1, Reviewers: []string{"team:nobody"}}
	d, _ := prGate(mergedPR(review("bob", forge.ReviewApproved, headSHA, 1))).MayStart(context.Background(), prRequest(mergeSHA, rule, nil))
	if d.Allow || !strings.Contains(d.Reason, "cannot read the reviewers of PR #7") {
		t.Errorf("decision %+v", d)
	}
}

// lateForge names no pull request for a commit until it has been asked `late` times, as
// Gitea does in the moment between a merge commit reaching the branch and the merge being
// recorded on its pull request.
type lateForge struct {
	*fakeForge
	late, asked int
}

func (f *lateForge) PullRequestsForCommit(ctx context.Context, sha string) ([]forge.PullRequest, error) {
	f.asked++
	if f.asked <= f.late {
		return nil, nil
	}
	return f.fakeForge.PullRequestsForCommit(ctx, sha)
}

func TestPullRequestRuleAsksAgainForAMergeNotRecordedYet(t *testing.T) {
	rule := &pipeline.PullRequestApproval{Approvals: 1}
	gate := func(f *lateForge, settle time.Duration) Gate {
		return Gate{Settle: settle, Forges: func(string) (Reviews, bool) { return f, true }}
	}
	f := &lateForge{fakeForge: mergedPR(review("bob", forge.ReviewApproved, headSHA, 1)), late: 1}
	d, _ := gate(f, 2*time.Second).MayStart(context.Background(), prRequest(mergeSHA, rule, nil))
	if !d.Allow || f.asked != 2 {
		t.Errorf("asked %d times: %+v", f.asked, d)
	}
	// Without Settle one answer decides.
	f = &lateForge{fakeForge: mergedPR(review("bob", forge.ReviewApproved, headSHA, 1)), late: 1}
	d, _ = gate(f, 0).MayStart(context.Background(), prRequest(mergeSHA, rule, nil))
	if d.Allow || f.asked != 1 || !strings.Contains(d.Reason, "pushed directly") {
		t.Errorf("asked %d times: %+v", f.asked, d)
	}
	// A direct push is asked about (at 0, 0.5 and 1.5 s) within Settle, then refused.
	f = &lateForge{fakeForge: mergedPR(), late: 100}
	start := time.Now()
	d, _ = gate(f, 2*time.Second).MayStart(context.Background(), prRequest(pushSHA, rule, nil))
	if d.Allow || f.asked != 3 || time.Since(start) > 2*time.Second || !strings.Contains(d.Reason, "pushed directly") {
		t.Errorf("asked %d times in %v: %+v", f.asked, time.Since(start), d)
	}
}
