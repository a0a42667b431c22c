package webhook

import (
	"testing"
)

func TestGitea(t *testing.T) {
	pr := func(action Action, actor, merge string) *PullRequest {
		return &PullRequest{Number: 3, Action: action, Title: "Ingress for the shop", Author: "dev", Actor: actor,
			SourceBranch: "ingress", TargetBranch: "main", HeadCommit: sha1Of("gthead"), MergeCommit: merge}
	}
	cases := []struct {
		event, name string
		want        *Event
	}{
		{"push", "push", &Event{Kind: KindPush, Push: &Push{
			Branch: "main", Before: sha1Of("gt0"), After: sha1Of("gt2"), Message: "k8s: add ingress\n",
			ChangedPaths: []string{"k8s/ingress.yaml", "k8s/service.yaml"},
		}}},
		// 7 commits, 5 listed (FEED_MAX_COMMIT_NUM).
		{"push", "push_truncated", &Event{Kind: KindPush, Push: &Push{
			Branch: "main", Before: sha1Of("gt0"), After: sha1Of("gt7"), Message: "step 7\n",
		}}},
		{"push", "push_delete", &Event{Kind: KindPush, Push: &Push{
			Branch: "tmp", Before: sha1Of("gt1"), After: zero, Deleted: true,
		}}},
		{"push", "push_tag", &Event{Kind: KindTag, Tag: &Tag{Name: "v0.9.0", Commit: sha1Of("gt2")}}},
		{"pull_request", "pull_request_opened", &Event{Kind: KindPullRequest, PullRequest: pr(ActionOpened, "dev", "")}},
		{"pull_request", "pull_request_synchronized", &Event{Kind: KindPullRequest, PullRequest: pr(ActionUpdated, "dev", "")}},
		{"pull_request", "pull_request_merged", &Event{Kind: KindPullRequest, PullRequest: pr(ActionMerged, "ops", sha1Of("gtmerge"))}},
		{"pull_request", "pull_request_closed", &Event{Kind: KindPullRequest, PullRequest: pr(ActionClosed, "dev", "")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := mustParse(t, Gitea, c.event, c.name)
			c.want.Provider, c.want.DeliveryID = Gitea, "d-1"
			assertEvent(t, got, c.want)
		})
	}
}

func TestGiteaIgnored(t *testing.T) {
	for _, c := range []struct{ event, name string }{
		{"create", "create"}, // the push for the same tag carries it
		{"pull_request", "pull_request_label_updated"},
		{"pull_request_approved", "pull_request_opened"},
		{"issue_comment", "pull_request_opened"},
	} {
		if r := parseReason(t, Gitea, c.event, c.name); r != ReasonUnsupportedEvent {
			t.Errorf("%s %s: %q", c.event, c.name, r)
		}
	}
}
