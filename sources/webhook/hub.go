package webhook

// hubPullRequest is what a GitHub or Gitea pull_request delivery says, read from the
// provider's payload: the two differ only in their action names, in how a branch names
// its repository (fromFork) and in how the merge commit is given.
type hubPullRequest struct {
	provider string
	actions  map[string]Action // the provider's action names; closed depends on merged
	action   string
	number   int64
	actor    string
	// present says the payload has its pull_request object; the fields below come from it.
	present              bool
	title, author        string
	source, target, head string
	fromFork, merged     bool
	mergeCommit          string // kept for a merged pull request only
}

func (h hubPullRequest) event() (*Event, error) {
	const event = "pull_request"
	action, ok := h.actions[h.action]
	if !ok {
		return nil, unsupported(h.provider, event+"."+h.action)
	}
	if !h.present {
		return nil, badPayload(h.provider, event, nil, "no pull_request object")
	}
	if action == ActionClosed && h.merged {
		action = ActionMerged
	}
	out := &PullRequest{
		Number:       h.number,
		Action:       action,
		Title:        h.title,
		Author:       h.author,
		Actor:        h.actor,
		SourceBranch: h.source,
		TargetBranch: h.target,
		FromFork:     h.fromFork,
		HeadCommit:   h.head,
	}
	if action == ActionMerged {
		out.MergeCommit = h.mergeCommit
	}
	return pullRequestEvent(h.provider, out)
}
