package webhook

import (
	"net/http"
)

type giteaPush struct {
	Ref          string        `json:"ref"`
	Before       string        `json:"before"`
	After        string        `json:"after"`
	Commits      []commitFiles `json:"commits"`
	TotalCommits int           `json:"total_commits"`
	HeadCommit   *commitFiles  `json:"head_commit"`
}

type giteaBranch struct {
	Ref    string `json:"ref"`
	SHA    string `json:"sha"`
	RepoID int64  `json:"repo_id"`
}

type giteaPullRequest struct {
	Action      string `json:"action"`
	Number      int64  `json:"number"`
	PullRequest *struct {
		Title string `json:"title"`
		User  struct {
			Login string `json:"login"`
		} `json:"user"`
		Head           giteaBranch `json:"head"`
		Base           giteaBranch `json:"base"`
		Merged         bool        `json:"merged"`
		MergeCommitSHA *string     `json:"merge_commit_sha"`
	} `json:"pull_request"`
	Sender struct {
		Login string `json:"login"`
	} `json:"sender"`
}

func parseGitea(h http.Header, body []byte) (*Event, error) {
	event, err := eventHeader(Gitea, "X-Gitea-Event", h)
	if err != nil {
		return nil, err
	}
	switch event {
	case "push":
		var p giteaPush
		if err := decodeJSON(Gitea, event, body, &p, false); err != nil {
			return nil, err
		}
		return giteaPushEvent(p).toEvent()
	case "pull_request":
		var p giteaPullRequest
		if err := decodeJSON(Gitea, event, body, &p, false); err != nil {
			return nil, err
		}
		return giteaPullRequestEvent(p)
	}
	// "create" and "delete" come with a "push" for the same ref (tags and branches
	// alike); acting on both would start two runs.
	return nil, unsupported(Gitea, event)
}

func giteaPushEvent(p giteaPush) refUpdate {
	u := refUpdate{provider: Gitea, event: "push", ref: p.Ref, before: p.Before, after: p.After}
	if p.HeadCommit != nil {
		u.headID, u.message = p.HeadCommit.ID, p.HeadCommit.Message
	}
	// Gitea lists at most [ui] FEED_MAX_COMMIT_NUM commits (default 5) and counts all.
	if p.TotalCommits <= len(p.Commits) {
		u.paths = unionPaths(p.Commits)
	}
	return u
}

// giteaActions maps Gitea's pull_request actions (pull_request_sync deliveries say
// "synchronized"); closed depends on merged.
var giteaActions = map[string]Action{
	"opened":       ActionOpened,
	"reopened":     ActionOpened,
	"synchronized": ActionUpdated,
	"closed":       ActionClosed,
}

func giteaPullRequestEvent(p giteaPullRequest) (*Event, error) {
	const event = "pull_request"
	action, ok := giteaActions[p.Action]
	if !ok {
		return nil, unsupported(Gitea, event+"."+p.Action)
	}
	pr := p.PullRequest
	if pr == nil {
		return nil, badPayload(Gitea, event, nil, "no pull_request object")
	}
	if action == ActionClosed && pr.Merged {
		action = ActionMerged
	}
	out := &PullRequest{
		Number:       p.Number,
		Action:       action,
		Title:        pr.Title,
		Author:       pr.User.Login,
		Actor:        p.Sender.Login,
		SourceBranch: pr.Head.Ref,
		TargetBranch: pr.Base.Ref,
		FromFork:     pr.Head.RepoID != pr.Base.RepoID,
		HeadCommit:   pr.Head.SHA,
	}
	if action == ActionMerged && pr.MergeCommitSHA != nil {
		out.MergeCommit = *pr.MergeCommitSHA
	}
	return pullRequestEvent(Gitea, out)
}
