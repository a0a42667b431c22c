package pipeline

import (
	"fmt"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// EventKind is what happened.
type EventKind string

// The events that can start a run. The values are also the TRIGGER built-in variable, except
// EventTag: a tag push's run is a push run (TRIGGER push) whose GIT_TAG is set.
const (
	EventPush        EventKind = "push"
	EventPullRequest EventKind = "pull_request"
	EventCron        EventKind = "cron"
	EventTag         EventKind = "tag"
	EventManual      EventKind = "manual"
)

// Event is a change a pipeline may react to.
type Event struct {
	Kind EventKind
	// Branch is the pushed branch, or a pull request's target branch.
	Branch string
	// TrackedBranch is the repository's configured branch: the default for branch filters.
	// With several tracked branches it is the pushed branch when that one is tracked (the
	// watcher only hears tracked branches).
	TrackedBranch string
	// Tag is the pushed tag's name (without refs/tags/), for EventTag.
	Tag string
	// ChangedPaths are the files changed, relative to the repository root. nil means unknown
	// (a first run, a force push): path filters then let the event through, because skipping
	// a deploy on missing information is worse than running one.
	ChangedPaths []string
	// Schedule is the cron expression that fired, for EventCron.
	Schedule string
}

// Match reports whether p runs for ev, and why (for logs and the UI). It is a pure function.
func Match(p *Pipeline, ev Event) (bool, string) {
	switch ev.Kind {
	case EventManual:
		return true, "manual runs are always allowed"
	case EventPush:
		if p.Triggers == nil {
			// No triggers at all: the GitOps default, every push to the tracked branch.
			return matchFilter(ev, nil, nil, "push")
		}
		if p.Triggers.Push == nil {
			return false, "the pipeline has no push trigger"
		}
		return matchFilter(ev, p.Triggers.Push.Branches, p.Triggers.Push.Paths, "push")
	case EventPullRequest:
		if p.Triggers == nil || p.Triggers.PullRequest == nil {
			return false, "the pipeline has no pullRequest trigger"
		}
		return matchFilter(ev, p.Triggers.PullRequest.Branches, p.Triggers.PullRequest.Paths, "pull request")
	case EventTag:
		if p.Triggers == nil || len(p.Triggers.Tags) == 0 {
			return false, "the pipeline has no tags trigger"
		}
		if g, ok := firstMatch(p.Triggers.Tags, ev.Tag); ok {
			return true, fmt.Sprintf("tag %q matches %q", ev.Tag, g)
		}
		return false, fmt.Sprintf("tag %q matches none of %s", ev.Tag, strings.Join(p.Triggers.Tags, ", "))
	case EventCron:
		if p.Triggers != nil {
			for _, s := range p.Triggers.Schedules {
				if strings.TrimSpace(s.Cron) == strings.TrimSpace(ev.Schedule) {
					return true, fmt.Sprintf("schedule %q", s.Cron)
				}
			}
		}
		return false, fmt.Sprintf("the pipeline has no schedule %q", ev.Schedule)
	}
	return false, fmt.Sprintf("unknown event kind %q", ev.Kind)
}

func matchFilter(ev Event, branches, paths []string, what string) (bool, string) {
	if len(branches) == 0 {
		if ev.Branch != ev.TrackedBranch {
			return false, fmt.Sprintf("%s to branch %q, not the tracked branch %q", what, ev.Branch, ev.TrackedBranch)
		}
	} else if g, ok := firstMatch(branches, ev.Branch); !ok {
		return false, fmt.Sprintf("%s to branch %q matches none of %s", what, ev.Branch, strings.Join(branches, ", "))
	} else if len(paths) == 0 {
		return true, fmt.Sprintf("%s to branch %q matches %q", what, ev.Branch, g)
	}
	if len(paths) == 0 {
		return true, fmt.Sprintf("%s to the tracked branch %q", what, ev.Branch)
	}
	if ev.ChangedPaths == nil {
		return true, fmt.Sprintf("%s to branch %q; changed files unknown, so path filters pass", what, ev.Branch)
	}
	for _, changed := range ev.ChangedPaths {
		if g, ok := firstMatch(paths, changed); ok {
			return true, fmt.Sprintf("%s to branch %q changed %q, matching %q", what, ev.Branch, changed, g)
		}
	}
	return false, fmt.Sprintf("%s to branch %q changed no file matching %s", what, ev.Branch, strings.Join(paths, ", "))
}

// MatchesAny reports whether one of the globs matches name (a branch, a tag), as branch
// filters match.
func MatchesAny(globs []string, name string) bool {
	_, ok := firstMatch(globs, name)
	return ok
}

// firstMatch returns the first glob that matches name. Invalid globs never match; validation
// has already reported them.
func firstMatch(globs []string, name string) (string, bool) {
	for _, g := range globs {
		if ok, err := doublestar.Match(g, name); err == nil && ok {
			return g, true
		}
	}
	return "", false
}

// SkipRequested reports whether a commit message asks push triggers to leave the commit
// alone, and which marker it used. The markers are those GitHub Actions, GitLab CI and
// Woodpecker understand, plus Slipway's own.
func SkipRequested(message string) (string, bool) {
	lower := strings.ToLower(message)
	for _, m := range []string{"[skip ci]", "[ci skip]", "[no ci]", "[skip slipway]"} {
		if strings.Contains(lower, m) {
			return m, true
		}
	}
	return "", false
}
