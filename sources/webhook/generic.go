package webhook

import (
	"net/http"
)

// genericPush and genericPullRequest are the body schema of the generic provider,
// documented in doc.go and docs/webhooks.md.
type genericPush struct {
	Ref          string   `json:"ref"`
	Before       string   `json:"before"`
	After        string   `json:"after"`
	Message      string   `json:"message"`
	ChangedPaths []string `json:"changedPaths"`
}

type genericPullRequest struct {
	Number       int64  `json:"number"`
	Action       string `json:"action"`
	Title        string `json:"title"`
	Author       string `json:"author"`
	Actor        string `json:"actor"`
	SourceBranch string `json:"sourceBranch"`
	TargetBranch string `json:"targetBranch"`
	FromFork     bool   `json:"fromFork"`
	HeadCommit   string `json:"headCommit"`
	MergeCommit  string `json:"mergeCommit"`
}

func parseGeneric(h http.Header, body []byte) (*Event, error) {
	event, err := eventHeader(Generic, "X-Slipway-Event", h)
	if err != nil {
		return nil, err
	}
	switch event {
	case "push":
		var p genericPush
		if err := decodeJSON(Generic, event, body, &p, true); err != nil {
			return nil, err
		}
		u := refUpdate{provider: Generic, event: event, ref: p.Ref, before: p.Before, after: p.After, message: p.Message}
		if p.ChangedPaths != nil {
			// The sender states what changed; [] is "nothing", absent is "unknown".
			u.paths = unionPaths([]commitFiles{{Modified: p.ChangedPaths}})
		}
		return u.toEvent()
	case "pull_request":
		var p genericPullRequest
		if err := decodeJSON(Generic, event, body, &p, true); err != nil {
			return nil, err
		}
		action := Action(p.Action)
		switch action {
		case ActionOpened, ActionUpdated, ActionMerged, ActionClosed:
		default:
			return nil, badPayload(Generic, event, nil, "action %s is not opened, updated, merged or closed", quote(p.Action))
		}
		if action != ActionMerged && p.MergeCommit != "" {
			return nil, badPayload(Generic, event, nil, "mergeCommit is only for action merged")
		}
		return pullRequestEvent(Generic, &PullRequest{
			Number: p.Number, Action: action, Title: p.Title, Author: p.Author, Actor: p.Actor,
			SourceBranch: p.SourceBranch, TargetBranch: p.TargetBranch, FromFork: p.FromFork,
			HeadCommit: p.HeadCommit, MergeCommit: p.MergeCommit,
		})
	}
	return nil, unsupported(Generic, event)
}
