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
	h := hubPullRequest{provider: GitHub, actions: githubActions, action: p.Action, number: p.Number, actor: p.Sender.Login}
	if pr := p.PullRequest; pr != nil {
		h.present, h.title, h.author, h.merged = true, pr.Title, pr.User.Login, pr.Merged
		h.source, h.target, h.head = pr.Head.Ref, pr.Base.Ref, pr.Head.SHA
		h.fromFork = pr.Head.Repo == nil || pr.Base.Repo == nil || pr.Head.Repo.ID != pr.Base.Repo.ID
		// GitHub also fills merge_commit_sha for open pull requests (its test merge);
		// only a merged one's is on the target branch, and only that one is kept.
		h.mergeCommit = pr.MergeCommitSHA
	}
	return h.event()
}
