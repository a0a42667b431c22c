package pipeline

import "testing"

func TestMatch(t *testing.T) {
	parse := func(triggers string) *Pipeline {
		t.Helper()
		ps, err := Load("p.yaml", []byte("name: p\n"+triggers+"stages:\n  - name: s\n    tasks: [{name: t, type: build-image, image: app, tag: v1}]\n"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return ps[0]
	}
	none := parse("")
	filtered := parse(`triggers:
  push:
    branches: [main, "release/**"]
    paths: ["2048/**", Dockerfile]
  pullRequest: {}
  schedules: [{cron: "0 2 * * *"}]
`)
	cronOnly := parse("triggers:\n  schedules: [{cron: '@daily'}]\n")
	pushAnyPath := parse("triggers:\n  push:\n    branches: ['feature/*']\n")
	tagged := parse("triggers:\n  tags: ['v*', 'release-[0-9]*']\n")
	prFiltered := parse("triggers:\n  pullRequest:\n    branches: [release]\n    paths: ['app/**']\n")

	tests := []struct {
		name string
		p    *Pipeline
		ev   Event
		want bool
	}{
		{"manual always runs", cronOnly, Event{Kind: EventManual}, true},
		{"no triggers: push to tracked branch", none, Event{Kind: EventPush, Branch: "master", TrackedBranch: "master"}, true},
		{"no triggers: push elsewhere", none, Event{Kind: EventPush, Branch: "dev", TrackedBranch: "master"}, false},
		{"no triggers: no pull requests", none, Event{Kind: EventPullRequest, Branch: "master", TrackedBranch: "master"}, false},
		{"cron-only pipeline ignores pushes", cronOnly, Event{Kind: EventPush, Branch: "main", TrackedBranch: "main"}, false},
		{"branch and path match", filtered, Event{Kind: EventPush, Branch: "main", ChangedPaths: []string{"README.md", "2048/js/game.js"}}, true},
		{"** crosses folders in branches", filtered, Event{Kind: EventPush, Branch: "release/6.0/rc1", ChangedPaths: []string{"Dockerfile"}}, true},
		{"path filter rejects", filtered, Event{Kind: EventPush, Branch: "main", ChangedPaths: []string{"docs/x.md"}}, false},
		{"no changed files", filtered, Event{Kind: EventPush, Branch: "main", ChangedPaths: []string{}}, false},
		{"unknown changed files pass", filtered, Event{Kind: EventPush, Branch: "main"}, true},
		{"branch rejects", filtered, Event{Kind: EventPush, Branch: "dev", ChangedPaths: []string{"Dockerfile"}}, false},
		{"* stays within a segment", pushAnyPath, Event{Kind: EventPush, Branch: "feature/a/b"}, false},
		{"* matches one segment", pushAnyPath, Event{Kind: EventPush, Branch: "feature/a"}, true},
		{"pull request to tracked branch", filtered, Event{Kind: EventPullRequest, Branch: "main", TrackedBranch: "main"}, true},
		{"pull request to another branch", filtered, Event{Kind: EventPullRequest, Branch: "dev", TrackedBranch: "main"}, false},
		{"pull request: its branch and paths", prFiltered, Event{Kind: EventPullRequest, Branch: "release", TrackedBranch: "main", ChangedPaths: []string{"app/main.go"}}, true},
		{"pull request: paths reject", prFiltered, Event{Kind: EventPullRequest, Branch: "release", TrackedBranch: "main", ChangedPaths: []string{"docs/x.md"}}, false},
		{"pull request: branches reject", prFiltered, Event{Kind: EventPullRequest, Branch: "main", TrackedBranch: "main", ChangedPaths: []string{"app/main.go"}}, false},
		{"its schedule", filtered, Event{Kind: EventCron, Schedule: "0 2 * * *"}, true},
		{"another schedule", filtered, Event{Kind: EventCron, Schedule: "@daily"}, false},
		{"tag matching a glob", tagged, Event{Kind: EventTag, Tag: "v1.4.0"}, true},
		{"tag matching the second glob", tagged, Event{Kind: EventTag, Tag: "release-7"}, true},
		{"tag matching no glob", tagged, Event{Kind: EventTag, Tag: "nightly-1"}, false},
		{"tag glob stays within a segment", tagged, Event{Kind: EventTag, Tag: "v1/x"}, false},
		{"no tags trigger: tags start nothing", filtered, Event{Kind: EventTag, Tag: "v1.4.0"}, false},
		{"no triggers: tags start nothing", none, Event{Kind: EventTag, Tag: "v1.4.0"}, false},
		{"tags only: pushes start nothing", tagged, Event{Kind: EventPush, Branch: "main", TrackedBranch: "main"}, false},
		{"unknown kind", filtered, Event{Kind: "label"}, false},
	}
	for _, tc := range tests {
		got, why := Match(tc.p, tc.ev)
		if got != tc.want {
			t.Errorf("%s: Match = %v (%s), want %v", tc.name, got, why, tc.want)
		}
		if why == "" {
			t.Errorf("%s: no reason given", tc.name)
		}
	}
}

func TestSkipRequested(t *testing.T) {
	for msg, want := range map[string]bool{
		"fix: typo [skip ci]":                 true,
		"docs only\n\n[CI SKIP]":              true,
		"[no ci] bump":                        true,
		"deploy it":                           false,
		"skip ci without brackets":            false,
		"Merge branch 'x' [skip slipway] now": true,
	} {
		if _, got := SkipRequested(msg); got != want {
			t.Errorf("SkipRequested(%q) = %v, want %v", msg, got, want)
		}
	}
}
