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
	h := hubPullRequest{provider: Gitea, actions: giteaActions, action: p.Action, number: p.Number, actor: p.Sender.Login}
	if pr := p.PullRequest; pr != nil {
		h.present, h.title, h.author, h.merged = true, pr.Title, pr.User.Login, pr.Merged
		h.source, h.target, h.head = pr.Head.Ref, pr.Base.Ref, pr.Head.SHA
		h.fromFork = pr.Head.RepoID != pr.Base.RepoID
		if pr.MergeCommitSHA != nil {
			h.mergeCommit = *pr.MergeCommitSHA
		}
	}
	return h.event()
}
