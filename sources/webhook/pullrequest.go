package webhook

// pullRequestEvent checks what every provider must supply and wraps pr in an Event.
func pullRequestEvent(provider string, pr *PullRequest) (*Event, error) {
	const event = "pull_request"
	switch {
	case pr.Number <= 0:
		return nil, badPayload(provider, event, nil, "no pull request number")
	case pr.SourceBranch == "" || pr.TargetBranch == "":
		return nil, badPayload(provider, event, nil, "no source or target branch")
	case !isSHA(pr.HeadCommit) || isZero(pr.HeadCommit):
		return nil, badPayload(provider, event, nil, "head commit is not a commit id")
	case pr.MergeCommit != "" && (!isSHA(pr.MergeCommit) || isZero(pr.MergeCommit)):
		return nil, badPayload(provider, event, nil, "merge commit is not a commit id")
	}
	return &Event{Kind: KindPullRequest, PullRequest: pr}, nil
}
