package webhook

import (
	"net/http"
)

type gitlabPush struct {
	ObjectKind        string        `json:"object_kind"`
	Ref               string        `json:"ref"`
	Before            string        `json:"before"`
	After             string        `json:"after"`
	CheckoutSHA       *string       `json:"checkout_sha"`
	Commits           []commitFiles `json:"commits"`
	TotalCommitsCount int           `json:"total_commits_count"`
}

type gitlabMergeRequest struct {
	ObjectKind string `json:"object_kind"`
	User       struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectAttributes *struct {
		IID             int64   `json:"iid"`
		Title           string  `json:"title"`
		Action          string  `json:"action"`
		SourceBranch    string  `json:"source_branch"`
		TargetBranch    string  `json:"target_branch"`
		SourceProjectID int64   `json:"source_project_id"`
		TargetProjectID int64   `json:"target_project_id"`
		MergeCommitSHA  *string `json:"merge_commit_sha"`
		LastCommit      *struct {
			ID string `json:"id"`
		} `json:"last_commit"`
	} `json:"object_attributes"`
}

func parseGitLab(h http.Header, body []byte) (*Event, error) {
	event, err := eventHeader(GitLab, "X-Gitlab-Event", h)
	if err != nil {
		return nil, err
	}
	switch event {
	case "Push Hook", "Tag Push Hook":
		var p gitlabPush
		if err := decodeJSON(GitLab, event, body, &p, false); err != nil {
			return nil, err
		}
		if p.ObjectKind != "push" && p.ObjectKind != "tag_push" {
			return nil, badPayload(GitLab, event, nil, "object_kind %s in a %s", quote(p.ObjectKind), event)
		}
		return gitlabPushEvent(p).toEvent()
	case "Merge Request Hook":
		var p gitlabMergeRequest
		if err := decodeJSON(GitLab, event, body, &p, false); err != nil {
			return nil, err
		}
		return gitlabMergeRequestEvent(p)
	}
	return nil, unsupported(GitLab, event)
}

func gitlabPushEvent(p gitlabPush) refUpdate {
	u := refUpdate{provider: GitLab, event: p.ObjectKind, ref: p.Ref, before: p.Before, after: p.After}
	head := p.After
	if p.CheckoutSHA != nil && *p.CheckoutSHA != "" {
		// For a tag, after is the annotated tag object; checkout_sha is its commit.
		head = *p.CheckoutSHA
		u.headID = head
	}
	u.message = messageOf(p.Commits, head)
	// GitLab sends at most 20 commits (the newest) and counts all of them.
	if p.TotalCommitsCount <= len(p.Commits) {
		u.paths = unionPaths(p.Commits)
	}
	return u
}

// gitlabActions maps object_attributes.action. "update" covers pushes to the source
// branch and edits alike: the payload's oldrev, which would tell them apart, is not
// reliably present, and taking an edit for new commits is the safe mistake.
var gitlabActions = map[string]Action{
	"open":   ActionOpened,
	"reopen": ActionOpened,
	"update": ActionUpdated,
	"merge":  ActionMerged,
	"close":  ActionClosed,
}

func gitlabMergeRequestEvent(p gitlabMergeRequest) (*Event, error) {
	const event = "Merge Request Hook"
	a := p.ObjectAttributes
	if p.ObjectKind != "merge_request" || a == nil {
		return nil, badPayload(GitLab, event, nil, "not a merge_request object")
	}
	action, ok := gitlabActions[a.Action]
	if !ok {
		return nil, unsupported(GitLab, event+"."+a.Action)
	}
	pr := &PullRequest{
		Number:       a.IID,
		Action:       action,
		Title:        a.Title,
		Actor:        p.User.Username,
		SourceBranch: a.SourceBranch,
		TargetBranch: a.TargetBranch,
		FromFork:     a.SourceProjectID != a.TargetProjectID,
	}
	if a.Action == "open" {
		// GitLab names the author only by id; whoever opened it is the author.
		pr.Author = p.User.Username
	}
	if a.LastCommit != nil {
		pr.HeadCommit = a.LastCommit.ID
	}
	if action == ActionMerged && a.MergeCommitSHA != nil {
		pr.MergeCommit = *a.MergeCommitSHA
	}
	return pullRequestEvent(GitLab, pr)
}
