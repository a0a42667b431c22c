package webhook

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

const zero = "0000000000000000000000000000000000000000"

func TestGitHub(t *testing.T) {
	pr := func(action Action, merge string) *PullRequest {
		return &PullRequest{Number: 42, Action: action, Title: "Checkout: one-click payment", Author: "jo-dev",
			Actor: "mira-k", SourceBranch: "feature/one-click", TargetBranch: "main",
			HeadCommit: sha1Of("prhead"), MergeCommit: merge}
	}
	cases := []struct {
		event, name string
		want        *Event
	}{
		{"push", "push", &Event{Kind: KindPush, Push: &Push{
			Branch: "main", Before: sha1Of("gh0"), After: sha1Of("gh3"),
			Message:      "chore: drop old banner\n\nNo longer used since the redesign.",
			ChangedPaths: []string{".pipeline.yaml", "deploy/app.yaml", "web/banner.png", "web/button.css", "web/index.html"},
		}}},
		{"push", "push_forced", &Event{Kind: KindPush, Push: &Push{
			Branch: "main", Before: sha1Of("gh9"), After: sha1Of("gh1"), Message: "deploy: raise replicas to 3",
		}}},
		{"push", "push_created", &Event{Kind: KindPush, Push: &Push{
			Branch: "feature/cart", Before: zero, After: sha1Of("gh2"), Created: true, Message: "web: new checkout button",
		}}},
		{"push", "push_delete", &Event{Kind: KindPush, Push: &Push{
			Branch: "feature/cart", Before: sha1Of("gh2"), After: zero, Deleted: true,
		}}},
		{"push", "push_tag", &Event{Kind: KindTag, Tag: &Tag{Name: "v1.4.0", Commit: sha1Of("gh3")}}},
		{"push", "push_tag_delete", &Event{Kind: KindTag, Tag: &Tag{Name: "v1.3.9", Deleted: true}}},
		{"pull_request", "pull_request_opened", &Event{Kind: KindPullRequest, PullRequest: pr(ActionOpened, "")}},
		{"pull_request", "pull_request_reopened", &Event{Kind: KindPullRequest, PullRequest: pr(ActionOpened, "")}},
		{"pull_request", "pull_request_synchronize", &Event{Kind: KindPullRequest, PullRequest: pr(ActionUpdated, "")}},
		{"pull_request", "pull_request_merged", &Event{Kind: KindPullRequest, PullRequest: pr(ActionMerged, sha1Of("prmerge"))}},
		{"pull_request", "pull_request_closed", &Event{Kind: KindPullRequest, PullRequest: pr(ActionClosed, "")}},
		{"pull_request", "pull_request_fork", &Event{Kind: KindPullRequest, PullRequest: func() *PullRequest {
			p := pr(ActionOpened, "")
			p.FromFork = true
			return p
		}()}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := mustParse(t, GitHub, c.event, c.name)
			c.want.Provider, c.want.DeliveryID = GitHub, "d-1"
			assertEvent(t, got, c.want)
		})
	}
}

func TestGitHubIgnored(t *testing.T) {
	for _, c := range []struct{ event, name string }{
		{"ping", "ping"},
		{"pull_request", "pull_request_labeled"},
		{"issue_comment", "ping"},
	} {
		if r := parseReason(t, GitHub, c.event, c.name); r != ReasonUnsupportedEvent {
			t.Errorf("%s %s: %q", c.event, c.name, r)
		}
	}
}

// githubPushBody makes a push of n commits, each touching one file of its own.
func githubPushBody(t testing.TB, n int) []byte {
	type commit struct {
		ID       string   `json:"id"`
		Message  string   `json:"message"`
		Added    []string `json:"added"`
		Modified []string `json:"modified"`
		Removed  []string `json:"removed"`
	}
	commits := make([]commit, n)
	for i := range commits {
		commits[i] = commit{ID: sha1Of(fmt.Sprint(i)), Message: fmt.Sprintf("change %d", i),
			Added: []string{}, Modified: []string{fmt.Sprintf("svc/%03d/deploy.yaml", i)}, Removed: []string{}}
	}
	b, err := json.Marshal(map[string]any{
		"ref": "refs/heads/main", "before": sha1Of("base"), "after": commits[n-1].ID,
		"created": false, "deleted": false, "forced": false,
		"commits": commits, "head_commit": commits[n-1],
		"repository": map[string]any{"full_name": "acme/shop"}, "sender": map[string]any{"login": "bot"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGitHubTruncated(t *testing.T) {
	for n, known := range map[int]bool{1: true, 19: true, 20: false, 100: false} {
		body := githubPushBody(t, n)
		ev, err := Parse(GitHub, testSecret, signed(GitHub, testSecret, "push", "", body), body)
		if err != nil {
			t.Fatal(err)
		}
		if got := ev.Push.ChangedPaths != nil; got != known {
			t.Errorf("%d commits: paths known %v, want %v", n, got, known)
		}
		if known && len(ev.Push.ChangedPaths) != n {
			t.Errorf("%d commits: %d paths", n, len(ev.Push.ChangedPaths))
		}
		if ev.Push.Message != fmt.Sprintf("change %d", n-1) {
			t.Errorf("%d commits: message %q", n, ev.Push.Message)
		}
		// No delivery header: the id comes from the body.
		if !strings.HasPrefix(ev.DeliveryID, "sha256:") || len(ev.DeliveryID) != len("sha256:")+64 {
			t.Errorf("derived delivery id %q", ev.DeliveryID)
		}
	}
}

func assertEvent(t *testing.T, got, want *Event) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		w, _ := json.MarshalIndent(want, "", "  ")
		t.Fatalf("got\n%s\nwant\n%s", g, w)
	}
}
