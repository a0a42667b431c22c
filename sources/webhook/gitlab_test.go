package webhook

import (
	"testing"
)

func TestGitLab(t *testing.T) {
	mr := func(action Action, author, actor, merge string) *PullRequest {
		return &PullRequest{Number: 17, Action: action, Title: "Add a health endpoint", Author: author, Actor: actor,
			SourceBranch: "feature/health", TargetBranch: "main", HeadCommit: sha1Of("glmrhead"), MergeCommit: merge}
	}
	cases := []struct {
		event, name string
		want        *Event
	}{
		{"Push Hook", "push", &Event{Kind: KindPush, Push: &Push{
			Branch: "main", Before: sha1Of("gl0"), After: sha1Of("gl2"),
			Message:      "api: add health endpoint [skip ci]\n",
			ChangedPaths: []string{"api/health.go", "api/main.go", "chart/values.yaml"},
		}}},
		{"Push Hook", "push_truncated", &Event{Kind: KindPush, Push: &Push{
			Branch: "main", Before: sha1Of("gl0"), After: sha1Of("gl2"), Message: "api: add health endpoint [skip ci]\n",
		}}},
		{"Push Hook", "push_delete", &Event{Kind: KindPush, Push: &Push{
			Branch: "old-api", Before: sha1Of("gl1"), After: zero, Deleted: true,
		}}},
		{"Tag Push Hook", "tag_push", &Event{Kind: KindTag, Tag: &Tag{Name: "v2.0.0", Commit: sha1Of("gl2")}}},
		{"Merge Request Hook", "merge_request_open", &Event{Kind: KindPullRequest, PullRequest: mr(ActionOpened, "sortiz", "sortiz", "")}},
		{"Merge Request Hook", "merge_request_update", &Event{Kind: KindPullRequest, PullRequest: mr(ActionUpdated, "", "sortiz", "")}},
		{"Merge Request Hook", "merge_request_merge", &Event{Kind: KindPullRequest, PullRequest: mr(ActionMerged, "", "lpark", sha1Of("glmrmerge"))}},
		{"Merge Request Hook", "merge_request_close", &Event{Kind: KindPullRequest, PullRequest: mr(ActionClosed, "", "lpark", "")}},
		{"Merge Request Hook", "merge_request_fork", &Event{Kind: KindPullRequest, PullRequest: func() *PullRequest {
			p := mr(ActionOpened, "", "sortiz", "")
			p.FromFork = true
			return p
		}()}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := mustParse(t, GitLab, c.event, c.name)
			c.want.Provider, c.want.DeliveryID = GitLab, "d-1"
			assertEvent(t, got, c.want)
		})
	}
}

func TestGitLabIgnored(t *testing.T) {
	if r := parseReason(t, GitLab, "Merge Request Hook", "merge_request_approved"); r != ReasonUnsupportedEvent {
		t.Errorf("approved: %q", r)
	}
	if r := parseReason(t, GitLab, "Note Hook", "push"); r != ReasonUnsupportedEvent {
		t.Errorf("Note Hook: %q", r)
	}
	// A push body under the merge request header is not a merge request.
	if r := parseReason(t, GitLab, "Merge Request Hook", "push"); r != ReasonBadPayload {
		t.Errorf("mismatched body: %q", r)
	}
}

func TestGitLabDeliveryID(t *testing.T) {
	body := fixture(t, GitLab, "push")
	h := signed(GitLab, testSecret, "Push Hook", "event-uuid", body)
	ev, err := Parse(GitLab, testSecret, h, body)
	if err != nil || ev.DeliveryID != "event-uuid" {
		t.Fatalf("%v %+v", err, ev)
	}
	// The idempotency key survives GitLab's retries, so it wins.
	h.Set("Idempotency-Key", "idem-key")
	if ev, err = Parse(GitLab, testSecret, h, body); err != nil || ev.DeliveryID != "idem-key" {
		t.Fatalf("%v %+v", err, ev)
	}
	h.Set("Idempotency-Key", "bad id with spaces")
	if _, err = Parse(GitLab, testSecret, h, body); ReasonOf(err) != ReasonBadPayload {
		t.Fatalf("unprintable id: %v", err)
	}
}
