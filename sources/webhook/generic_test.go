package webhook

import (
	"strings"
	"testing"
)

func TestGeneric(t *testing.T) {
	cases := []struct {
		event, name string
		want        *Event
	}{
		{"push", "push", &Event{Kind: KindPush, Push: &Push{
			Branch: "main", Before: sha1Of("gn0"), After: sha1Of("gn1"), Message: "config: lower cache TTL",
			ChangedPaths: []string{"config/cache.yaml", "deploy/app.yaml"},
		}}},
		{"push", "push_unknown_paths", &Event{Kind: KindPush, Push: &Push{
			Branch: "main", Before: sha1Of("gn1"), After: sha1Of("gn2"),
		}}},
		{"push", "push_tag", &Event{Kind: KindTag, Tag: &Tag{Name: "r42", Commit: sha1Of("gn2")}}},
		{"pull_request", "pull_request", &Event{Kind: KindPullRequest, PullRequest: &PullRequest{
			Number: 5, Action: ActionMerged, Title: "Lower the cache TTL", Author: "kim", Actor: "lee",
			SourceBranch: "ttl", TargetBranch: "main", HeadCommit: sha1Of("gnhead"), MergeCommit: sha1Of("gnmerge"),
		}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := mustParse(t, Generic, c.event, c.name)
			c.want.Provider, c.want.DeliveryID = Generic, "d-1"
			assertEvent(t, got, c.want)
		})
	}
}

// [] says "no files changed", which is not the same as unknown (nil).
func TestGenericEmptyPaths(t *testing.T) {
	body := []byte(`{"ref":"refs/heads/main","after":"` + sha1Of("x") + `","changedPaths":[]}`)
	ev, err := Parse(Generic, testSecret, signed(Generic, testSecret, "push", "d", body), body)
	if err != nil || ev.Push.ChangedPaths == nil || len(ev.Push.ChangedPaths) != 0 {
		t.Fatalf("%v %#v", err, ev)
	}
}

func TestGenericRejects(t *testing.T) {
	sha := sha1Of("x")
	cases := map[string]struct {
		event, body string
		want        Reason
	}{
		"unknown field":       {"push", string(fixture(t, Generic, "push_typo")), ReasonBadPayload},
		"empty paths":         {"push", `{"ref":"refs/heads/main","after":"` + sha + `","changedPaths":[]}`, ""},
		"short sha":           {"push", `{"ref":"refs/heads/main","after":"abc123"}`, ReasonBadPayload},
		"bare branch name":    {"push", `{"ref":"main","after":"` + sha + `"}`, ReasonUnsupportedEvent},
		"notes ref":           {"push", `{"ref":"refs/notes/commits","after":"` + sha + `"}`, ReasonUnsupportedEvent},
		"trailing data":       {"push", `{"ref":"refs/heads/main","after":"` + sha + `"} {}`, ReasonBadPayload},
		"form encoded":        {"push", `payload=%7B%7D`, ReasonBadPayload},
		"empty body":          {"push", ``, ReasonBadPayload},
		"ping":                {"ping", `{}`, ReasonUnsupportedEvent},
		"bad action":          {"pull_request", `{"number":1,"action":"edited","sourceBranch":"a","targetBranch":"b","headCommit":"` + sha + `"}`, ReasonBadPayload},
		"merge commit early":  {"pull_request", `{"number":1,"action":"opened","sourceBranch":"a","targetBranch":"b","headCommit":"` + sha + `","mergeCommit":"` + sha + `"}`, ReasonBadPayload},
		"no number":           {"pull_request", `{"action":"opened","sourceBranch":"a","targetBranch":"b","headCommit":"` + sha + `"}`, ReasonBadPayload},
		"no head commit":      {"pull_request", `{"number":1,"action":"opened","sourceBranch":"a","targetBranch":"b"}`, ReasonBadPayload},
		"number is a float":   {"pull_request", `{"number":1.5,"action":"opened","sourceBranch":"a","targetBranch":"b","headCommit":"` + sha + `"}`, ReasonBadPayload},
		"sha-256 repository":  {"push", `{"ref":"refs/heads/main","after":"` + strings.Repeat("ab", 32) + `"}`, ""},
		"no event header":     {"", `{}`, ReasonBadPayload},
		"long unknown field":  {"push", `{"` + strings.Repeat("y", 5000) + `":1}`, ReasonBadPayload},
		"event name too long": {strings.Repeat("x", 500), `{}`, ReasonUnsupportedEvent},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			body := []byte(c.body)
			_, err := Parse(Generic, testSecret, signed(Generic, testSecret, c.event, "d", body), body)
			if got := ReasonOf(err); got != c.want {
				t.Fatalf("reason %q, want %q (%v)", got, c.want, err)
			}
			if err != nil && len(err.Error()) > 300 {
				t.Fatalf("error message not bounded: %d bytes", len(err.Error()))
			}
		})
	}
}
