package webhook

import (
	"net/http"
)

// GitHub's documentation has capped a push's commit list at 20 (and, later, at 2048) and
// the payload has no total count, so 20 or more commits may be a cut list. Per commit, a
// file list is capped too (3000 or 5000 paths, depending on the page); a list that long
// is treated as cut.
const (
	githubMaxCommits = 20
	githubMaxFiles   = 3000
)

type githubPush struct {
	Ref        string        `json:"ref"`
	Before     string        `json:"before"`
	After      string        `json:"after"`
	Forced     bool          `json:"forced"`
	Commits    []commitFiles `json:"commits"`
	HeadCommit *commitFiles  `json:"head_commit"`
}

type githubUser struct {
	Login string `json:"login"`
}

type githubBranch struct {
	Ref  string `json:"ref"`
	SHA  string `json:"sha"`
	Repo *struct {
		ID int64 `json:"id"`
	} `json:"repo"`
}

type githubPullRequest struct {
	Action      string `json:"action"`
	Number      int64  `json:"number"`
	PullRequest *struct {
		Title          string       `json:"title"`
		User           githubUser   `json:"user"`
		Head           githubBranch `json:"head"`
		Base           githubBranch `json:"base"`
		Merged         bool         `json:"merged"`
		MergeCommitSHA string       `json:"merge_commit_sha"`
	} `json:"pull_request"`
	Sender githubUser `json:"sender"`
}

func parseGitHub(h http.Header, body []byte) (*Event, error) {
	event, err := eventHeader(GitHub, "X-GitHub-Event", h)
	if err != nil {
		return nil, err
	}
	switch event {
	case "push":
		var p githubPush
		if err := decodeJSON(GitHub, event, body, &p, false); err != nil {
			return nil, err
		}
		return githubPushEvent(p).toEvent()
	case "pull_request":
		var p githubPullRequest
		if err := decodeJSON(GitHub, event, body, &p, false); err != nil {
			return nil, err
		}
		return githubPullRequestEvent(p)
	}
	return nil, unsupported(GitHub, event)
}

func githubPushEvent(p githubPush) refUpdate {
	u := refUpdate{provider: GitHub, event: "push", ref: p.Ref, before: p.Before, after: p.After}
	if p.HeadCommit != nil {
		u.headID, u.message = p.HeadCommit.ID, p.HeadCommit.Message
	}
	if !p.Forced && len(p.Commits) < githubMaxCommits && !githubFilesCapped(p.Commits) {
		// A forced push's list misses what the replaced commits changed.
		u.paths = unionPaths(p.Commits)
	}
	return u
}

func githubFilesCapped(commits []commitFiles) bool {
	for _, c := range commits {
		if len(c.Added) >= githubMaxFiles || len(c.Modified) >= githubMaxFiles || len(c.Removed) >= githubMaxFiles {
			return true
		}
	}
	return false
}

// githubActions maps GitHub's pull_request actions; closed depends on merged.
var githubActions = map[string]Action{
	"opened":      ActionOpened,
	"reopened":    ActionOpened,
	"synchronize": ActionUpdated,
	"closed":      ActionClosed,
}

func githubPullRequestEvent(p githubPullRequest) (*Event, error) {
	const event = "pull_request"
	action, ok := githubActions[p.Action]
	if !ok {
		return nil, unsupported(GitHub, event+"."+p.Action)
	}
	pr := p.PullRequest
	if pr == nil {
		return nil, badPayload(GitHub, event, nil, "no pull_request object")
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
		FromFork:     pr.Head.Repo == nil || pr.Base.Repo == nil || pr.Head.Repo.ID != pr.Base.Repo.ID,
		HeadCommit:   pr.Head.SHA,
	}
	if action == ActionMerged {
		// GitHub also fills merge_commit_sha for open pull requests (its test merge);
		// only a merged one's is on the target branch.
		out.MergeCommit = pr.MergeCommitSHA
	}
	return pullRequestEvent(GitHub, out)
}
