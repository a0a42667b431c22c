// Package forge talks to the forge a repository lives on (Gitea, GitHub, GitLab) through
// each forge's own Go client library: the pull requests that brought a commit, their
// reviews, team membership, one marked comment per pull request, and commit statuses. All
// three share plain types, the same retries (rate limits, 5xx, timeouts; see Options) and
// typed errors (ErrNotFound, ErrUnauthorized, ErrRateLimited, ErrUnavailable, ErrInvalid).
package forge
