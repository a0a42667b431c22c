package forge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/slipwayhq/slipway/config"
)

// PullRequest is a pull request (GitLab: merge request) as the forge reports it.
type PullRequest struct {
	Number         int64
	Author         string // user name of who opened it
	HeadSHA        string // the newest commit of its source branch
	BaseBranch     string // the branch it merges into
	MergeCommitSHA string // "" until merged; for a squash or rebase merge, the commit that landed
	Merged         bool
	State          PRState
	URL            string // its web page
}

// PRState is whether a pull request is still open; a merged one is closed (and Merged).
type PRState string

// The states of a pull request.
const (
	PROpen   PRState = "open"
	PRClosed PRState = "closed"
)

// Review is one submitted review of a pull request. Reviews come oldest first; a reviewer's
// newest review is their current say.
type Review struct {
	Reviewer  string
	State     ReviewState
	CommitSHA string // the pull request's head when the review was given
	Submitted time.Time
}

// ReviewState is the verdict of a review.
type ReviewState string

// The verdicts of a review.
const (
	ReviewApproved         ReviewState = "approved"
	ReviewChangesRequested ReviewState = "changes_requested"
	ReviewCommented        ReviewState = "commented"
	ReviewDismissed        ReviewState = "dismissed" // an approval withdrawn by a maintainer
)

// Status is a commit status: one named check (Context) of one commit.
type Status struct {
	Context     string
	State       StatusState
	Description string // cut to the forge's limit when set
	TargetURL   string
}

// StatusState is the state of a commit status.
type StatusState string

// The states of a commit status.
const (
	StatusPending StatusState = "pending"
	StatusSuccess StatusState = "success"
	StatusFailure StatusState = "failure"
	StatusError   StatusState = "error"
)

// CommentLimit is the largest pull request comment forgeType takes, in characters:
// GitHub 65,536 and GitLab 1,000,000; Gitea documents none, so its comments are held to
// GitHub's size too, which keeps them readable.
func CommentLimit(forgeType string) int {
	if forgeType == "gitlab" {
		return 1_000_000
	}
	return 65_536
}

// maxDescription is the longest status description every forge takes (GitHub's limit; Gitea
// and GitLab take 255).
const maxDescription = 140

// Client is everything a forge client does; consumers define the small part they use.
type Client interface {
	// PullRequestsForCommit returns the pull requests that brought sha into a branch (Gitea:
	// the merged pull request whose merge commit it is; GitHub and GitLab: every pull request
	// that contains it). None is not an error.
	PullRequestsForCommit(ctx context.Context, sha string) ([]PullRequest, error)
	// PullRequest reads one pull request.
	PullRequest(ctx context.Context, number int64) (PullRequest, error)
	// Reviews returns a pull request's submitted reviews, oldest first.
	Reviews(ctx context.Context, number int64) ([]Review, error)
	// TeamMembers returns the user names in a team: NAME (a team of the repository's owner)
	// or OWNER/NAME.
	TeamMembers(ctx context.Context, team string) ([]string, error)
	// UpsertComment creates the pull request's comment marked with key, or edits it when it
	// exists; it returns the comment's id.
	UpsertComment(ctx context.Context, number int64, key, body string) (int64, error)
	// SetStatus sets a commit status on sha.
	SetStatus(ctx context.Context, sha string, s Status) error
	// Statuses returns the newest status of each context on sha.
	Statuses(ctx context.Context, sha string) ([]Status, error)
}

// Errors a call can be matched against with errors.Is; the error's text names the forge, the
// call and the HTTP status.
var (
	ErrNotFound     = errors.New("not found")
	ErrUnauthorized = errors.New("unauthorized: the token is missing, wrong, expired or lacks a scope")
	ErrRateLimited  = errors.New("rate limited")
	ErrUnavailable  = errors.New("forge unavailable")
	ErrInvalid      = errors.New("refused as invalid")
)

// Options tune a client's calls. Zero values are the defaults.
type Options struct {
	// Attempts is how often one request is tried in all when it is rate limited, answered
	// with 5xx or times out (default 4).
	Attempts int
	// Backoff is the first wait between attempts; it doubles each time (default 1s).
	Backoff time.Duration
	// MaxWait is the longest one wait may be, also for a rate limit's reset; a reset further
	// away fails with ErrRateLimited at once (default 30s).
	MaxWait time.Duration
	// Timeout bounds one attempt (default 20s).
	Timeout time.Duration
	// Transport sends the requests (default http.DefaultTransport).
	Transport http.RoundTripper
}

func (o Options) withDefaults() Options {
	if o.Attempts <= 0 {
		o.Attempts = 4
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 30 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 20 * time.Second
	}
	if o.Transport == nil {
		o.Transport = http.DefaultTransport
	}
	return o
}

// New returns the client of a repository's forge: forge.type picks the library, forge.url
// the server, forge.tokenFile the token, and the repository's clone URL names the project.
func New(repo config.Repository, o Options) (Client, error) {
	fg := repo.Forge
	if fg == nil {
		return nil, fmt.Errorf("repository %s has no forge configured", repo.Name)
	}
	token, err := readToken(fg.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("repository %s forge token: %w", repo.Name, err)
	}
	path, err := ProjectPath(fg.URL, repo.URL)
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", repo.Name, err)
	}
	switch fg.Type {
	case "gitea":
		return NewGitea(fg.URL, path, token, o)
	case "github":
		return NewGitHub(fg.URL, path, token, o)
	case "gitlab":
		return NewGitLab(fg.URL, path, token, o)
	}
	return nil, fmt.Errorf("repository %s: forge type %q is not one of gitea, github, gitlab", repo.Name, fg.Type)
}

// readToken reads a token file; a trailing newline, which editors add, is not part of it.
// Errors name the file, never the content.
func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// marker is the hidden line that identifies the comment of key.
func marker(key string) string { return "<!-- slipway:" + key + " -->" }

// markedBody is a comment's body with its marker first.
func markedBody(key, body string) string { return marker(key) + "\n" + body }

// truncate cuts s to at most n runes, ending in "…" when cut.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
