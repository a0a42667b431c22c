package forge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/google/go-github/v84/github"
)

// GitHub is a client of one GitHub (or GitHub Enterprise Server) repository, on
// github.com/google/go-github.
type GitHub struct {
	api     *github.Client
	project Project

	mu sync.Mutex
	me string
}

// NewGitHub returns a client of project on GitHub: baseURL https://github.com (or
// https://api.github.com) is github.com; any other is GitHub Enterprise Server, whose API is
// under /api/v3.
func NewGitHub(baseURL string, project Project, token string, o Options) (*GitHub, error) {
	if err := project.flat("github"); err != nil {
		return nil, err
	}
	c := github.NewClient(httpClient(o.withDefaults())).WithAuthToken(token)
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("forge url %q: %w", baseURL, err)
	}
	if h := strings.ToLower(u.Host); h != "github.com" && h != "api.github.com" {
		if c, err = c.WithEnterpriseURLs(baseURL, baseURL); err != nil {
			return nil, fmt.Errorf("forge url %q: %w", baseURL, err)
		}
	}
	return &GitHub{api: c, project: project}, nil
}

// call runs fn and classifies its outcome; go-github's own rate-limit errors (it refuses
// calls locally until a known reset) count as ErrRateLimited.
func (g *GitHub) call(ctx context.Context, op string, fn func(ctx context.Context) (*github.Response, error)) error {
	ctx, attempts := withAttempts(ctx)
	resp, err := fn(ctx)
	if err == nil {
		return nil
	}
	var hr *http.Response
	if resp != nil {
		hr = resp.Response
	}
	out := classify(ctx, "github", op, attempts, hr, err)
	var rl *github.RateLimitError
	var abuse *github.AbuseRateLimitError
	if e, ok := out.(*Error); ok && (errors.As(err, &rl) || errors.As(err, &abuse)) {
		e.Kind = ErrRateLimited
	}
	return out
}

func (g *GitHub) o() string { return g.project.Owner }
func (g *GitHub) r() string { return g.project.Name }

// PullRequestsForCommit implements Client (ListPullRequestsWithCommit: the merged pull
// request that brought a commit of the default branch, or the open ones containing it).
func (g *GitHub) PullRequestsForCommit(ctx context.Context, sha string) ([]PullRequest, error) {
	var out []PullRequest
	opts := &github.ListOptions{PerPage: pageSize}
	for {
		var prs []*github.PullRequest
		var resp *github.Response
		err := g.call(ctx, "pull requests of commit "+short(sha), func(ctx context.Context) (_ *github.Response, err error) {
			prs, resp, err = g.api.PullRequests.ListPullRequestsWithCommit(ctx, g.o(), g.r(), sha, opts)
			return resp, err
		})
		if err != nil {
			return nil, err
		}
		for _, pr := range prs {
			out = append(out, githubPR(pr))
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

// PullRequest implements Client.
func (g *GitHub) PullRequest(ctx context.Context, number int64) (PullRequest, error) {
	var pr *github.PullRequest
	err := g.call(ctx, fmt.Sprintf("read pull request #%d", number), func(ctx context.Context) (resp *github.Response, err error) {
		pr, resp, err = g.api.PullRequests.Get(ctx, g.o(), g.r(), int(number))
		return resp, err
	})
	if err != nil {
		return PullRequest{}, err
	}
	return githubPR(pr), nil
}

func githubPR(pr *github.PullRequest) PullRequest {
	// GitHub fills merge_commit_sha of an open pull request with its test merge: only a
	// merged one's is a commit that landed.
	merged := pr.GetMerged() || pr.MergedAt != nil
	out := PullRequest{Number: int64(pr.GetNumber()), Author: pr.GetUser().GetLogin(), HeadSHA: pr.GetHead().GetSHA(),
		BaseBranch: pr.GetBase().GetRef(), Merged: merged, State: PRState(pr.GetState()), URL: pr.GetHTMLURL()}
	if merged {
		out.MergeCommitSHA = pr.GetMergeCommitSHA()
	}
	return out
}

// Reviews implements Client; pending reviews are left out.
func (g *GitHub) Reviews(ctx context.Context, number int64) ([]Review, error) {
	var out []Review
	opts := &github.ListOptions{PerPage: pageSize}
	for {
		var rs []*github.PullRequestReview
		var resp *github.Response
		err := g.call(ctx, fmt.Sprintf("list reviews of pull request #%d", number), func(ctx context.Context) (_ *github.Response, err error) {
			rs, resp, err = g.api.PullRequests.ListReviews(ctx, g.o(), g.r(), int(number), opts)
			return resp, err
		})
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			var state ReviewState
			switch r.GetState() {
			case "APPROVED":
				state = ReviewApproved
			case "CHANGES_REQUESTED":
				state = ReviewChangesRequested
			case "COMMENTED":
				state = ReviewCommented
			case "DISMISSED":
				state = ReviewDismissed
			default:
				continue
			}
			out = append(out, Review{Reviewer: r.GetUser().GetLogin(), State: state, CommitSHA: r.GetCommitID(),
				Submitted: r.GetSubmittedAt().Time})
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

// TeamMembers implements Client: NAME is the team's slug in the repository owner's
// organization (or ORG/SLUG).
func (g *GitHub) TeamMembers(ctx context.Context, team string) ([]string, error) {
	org, slug := splitTeam(g.o(), team)
	var out []string
	opts := &github.TeamListTeamMembersOptions{ListOptions: github.ListOptions{PerPage: pageSize}}
	for {
		var us []*github.User
		var resp *github.Response
		err := g.call(ctx, "list members of team "+org+"/"+slug, func(ctx context.Context) (_ *github.Response, err error) {
			us, resp, err = g.api.Teams.ListTeamMembersBySlug(ctx, org, slug, opts)
			return resp, err
		})
		if err != nil {
			return nil, err
		}
		for _, u := range us {
			out = append(out, u.GetLogin())
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

func (g *GitHub) whoami(ctx context.Context) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.me != "" {
		return g.me, nil
	}
	var u *github.User
	err := g.call(ctx, "read the token's user", func(ctx context.Context) (resp *github.Response, err error) {
		u, resp, err = g.api.Users.Get(ctx, "")
		return resp, err
	})
	if err != nil {
		return "", err
	}
	g.me = u.GetLogin()
	return g.me, nil
}

// UpsertComment implements Client (pull request comments are issue comments on GitHub);
// only the token user's own comments are candidates.
func (g *GitHub) UpsertComment(ctx context.Context, number int64, key, body string) (int64, error) {
	me, err := g.whoami(ctx)
	if err != nil {
		return 0, err
	}
	op := fmt.Sprintf("comment %s on pull request #%d", key, number)
	var found int64
	opts := &github.IssueListCommentsOptions{ListOptions: github.ListOptions{PerPage: pageSize}}
	for found == 0 {
		var cs []*github.IssueComment
		var resp *github.Response
		err := g.call(ctx, op, func(ctx context.Context) (_ *github.Response, err error) {
			cs, resp, err = g.api.Issues.ListComments(ctx, g.o(), g.r(), int(number), opts)
			return resp, err
		})
		if err != nil {
			return 0, err
		}
		for _, c := range cs {
			if c.GetUser().GetLogin() == me && strings.Contains(c.GetBody(), marker(key)) {
				found = c.GetID()
				break
			}
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	text := github.Ptr(markedBody(key, body))
	if found != 0 {
		return found, g.call(ctx, op, func(ctx context.Context) (*github.Response, error) {
			_, resp, err := g.api.Issues.EditComment(ctx, g.o(), g.r(), found, &github.IssueComment{Body: text})
			return resp, err
		})
	}
	var c *github.IssueComment
	err = g.call(ctx, op, func(ctx context.Context) (resp *github.Response, err error) {
		c, resp, err = g.api.Issues.CreateComment(ctx, g.o(), g.r(), int(number), &github.IssueComment{Body: text})
		return resp, err
	})
	if err != nil {
		return 0, err
	}
	return c.GetID(), nil
}

// SetStatus implements Client.
func (g *GitHub) SetStatus(ctx context.Context, sha string, s Status) error {
	st := github.RepoStatus{State: github.Ptr(string(s.State)), Context: github.Ptr(s.Context),
		Description: github.Ptr(truncate(s.Description, maxDescription))}
	if s.TargetURL != "" {
		st.TargetURL = github.Ptr(s.TargetURL)
	}
	return g.call(ctx, "set status "+s.Context+" on "+short(sha), func(ctx context.Context) (*github.Response, error) {
		_, resp, err := g.api.Repositories.CreateStatus(ctx, g.o(), g.r(), sha, st)
		return resp, err
	})
}

// Statuses implements Client (the combined status: the newest per context).
func (g *GitHub) Statuses(ctx context.Context, sha string) ([]Status, error) {
	var cs *github.CombinedStatus
	err := g.call(ctx, "read statuses of "+short(sha), func(ctx context.Context) (resp *github.Response, err error) {
		cs, resp, err = g.api.Repositories.GetCombinedStatus(ctx, g.o(), g.r(), sha, &github.ListOptions{PerPage: 100})
		return resp, err
	})
	if err != nil {
		return nil, err
	}
	out := make([]Status, 0, len(cs.Statuses))
	for _, s := range cs.Statuses {
		out = append(out, Status{Context: s.GetContext(), State: StatusState(s.GetState()), Description: s.GetDescription(),
			TargetURL: s.GetTargetURL()})
	}
	return out, nil
}

var _ Client = (*GitHub)(nil)
