package forge

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"code.gitea.io/sdk/gitea"
)

// Gitea is a client of one Gitea repository, on code.gitea.io/sdk/gitea.
type Gitea struct {
	url     string
	token   string
	project Project
	http    *http.Client

	mu sync.Mutex
	me string // the token's user, once asked
}

// NewGitea returns a client of project on the Gitea at baseURL (without /api/v1).
func NewGitea(baseURL string, project Project, token string, o Options) (*Gitea, error) {
	if err := project.flat("gitea"); err != nil {
		return nil, err
	}
	return &Gitea{url: strings.TrimSuffix(baseURL, "/"), token: token, project: project, http: httpClient(o.withDefaults())}, nil
}

// pageSize is what list calls ask for; servers may answer fewer (Gitea's MAX_RESPONSE_ITEMS).
const pageSize = 50

// api returns the SDK client for one call: the SDK keeps the context in the client, so each
// call gets its own (cheap: no request is made; the server version check is skipped).
func (g *Gitea) api(ctx context.Context) (*gitea.Client, error) {
	return gitea.NewClient(g.url, gitea.SetToken(g.token), gitea.SetHTTPClient(g.http), gitea.SetContext(ctx),
		gitea.SetGiteaVersion(""))
}

// call runs fn with an SDK client and classifies its outcome.
func (g *Gitea) call(ctx context.Context, op string, fn func(c *gitea.Client) (*gitea.Response, error)) error {
	ctx, attempts := withAttempts(ctx)
	c, err := g.api(ctx)
	if err != nil {
		return &Error{Forge: "gitea", Op: op, Err: err}
	}
	resp, err := fn(c)
	return classify(ctx, "gitea", op, attempts, giteaHTTP(resp), err)
}

func giteaHTTP(r *gitea.Response) *http.Response {
	if r == nil {
		return nil
	}
	return r.Response
}

func (g *Gitea) o() string { return g.project.Owner }
func (g *Gitea) r() string { return g.project.Name }

// PullRequestsForCommit implements Client: Gitea names the one merged pull request whose
// merge commit sha is (GET /repos/{o}/{r}/commits/{sha}/pull).
func (g *Gitea) PullRequestsForCommit(ctx context.Context, sha string) ([]PullRequest, error) {
	var pr *gitea.PullRequest
	err := g.call(ctx, "pull request of commit "+short(sha), func(c *gitea.Client) (resp *gitea.Response, err error) {
		pr, resp, err = c.GetCommitPullRequest(g.o(), g.r(), sha)
		return resp, err
	})
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return []PullRequest{giteaPR(pr)}, nil
}

// PullRequest implements Client.
func (g *Gitea) PullRequest(ctx context.Context, number int64) (PullRequest, error) {
	var pr *gitea.PullRequest
	err := g.call(ctx, fmt.Sprintf("read pull request #%d", number), func(c *gitea.Client) (resp *gitea.Response, err error) {
		pr, resp, err = c.GetPullRequest(g.o(), g.r(), number)
		return resp, err
	})
	if err != nil {
		return PullRequest{}, err
	}
	return giteaPR(pr), nil
}

func giteaPR(pr *gitea.PullRequest) PullRequest {
	out := PullRequest{Number: pr.Index, Merged: pr.HasMerged, State: PRState(pr.State), URL: pr.HTMLURL}
	if pr.Poster != nil {
		out.Author = pr.Poster.UserName
	}
	if pr.Head != nil {
		out.HeadSHA = pr.Head.Sha
	}
	if pr.Base != nil {
		out.BaseBranch = pr.Base.Ref
	}
	if pr.MergedCommitID != nil {
		out.MergeCommitSHA = *pr.MergedCommitID
	}
	return out
}

// Reviews implements Client. Pending (unsubmitted) reviews and review requests are left out;
// a dismissed review is ReviewDismissed whatever it said.
func (g *Gitea) Reviews(ctx context.Context, number int64) ([]Review, error) {
	var out []Review
	for page := 1; ; page++ {
		var rs []*gitea.PullReview
		var next int
		err := g.call(ctx, fmt.Sprintf("list reviews of pull request #%d", number), func(c *gitea.Client) (resp *gitea.Response, err error) {
			rs, resp, err = c.ListPullReviews(g.o(), g.r(), number, gitea.ListPullReviewsOptions{ListOptions: gitea.ListOptions{Page: page, PageSize: pageSize}})
			if resp != nil {
				next = resp.NextPage
			}
			return resp, err
		})
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			var state ReviewState
			switch r.State {
			case gitea.ReviewStateApproved:
				state = ReviewApproved
			case gitea.ReviewStateRequestChanges:
				state = ReviewChangesRequested
			case gitea.ReviewStateComment:
				state = ReviewCommented
			default:
				continue
			}
			if r.Dismissed {
				state = ReviewDismissed
			}
			rv := Review{State: state, CommitSHA: r.CommitID, Submitted: r.Submitted}
			if r.Reviewer != nil {
				rv.Reviewer = r.Reviewer.UserName
			}
			out = append(out, rv)
		}
		if next == 0 || len(rs) == 0 {
			return out, nil
		}
	}
}

// TeamMembers implements Client: teams belong to an organization (the repository's owner
// unless the name says ORG/NAME), found by name.
func (g *Gitea) TeamMembers(ctx context.Context, team string) ([]string, error) {
	org, name := splitTeam(g.o(), team)
	var id int64
	for page := 1; id == 0; page++ {
		var ts []*gitea.Team
		var next int
		err := g.call(ctx, "list teams of "+org, func(c *gitea.Client) (resp *gitea.Response, err error) {
			ts, resp, err = c.ListOrgTeams(org, gitea.ListTeamsOptions{ListOptions: gitea.ListOptions{Page: page, PageSize: pageSize}})
			if resp != nil {
				next = resp.NextPage
			}
			return resp, err
		})
		if err != nil {
			return nil, err
		}
		for _, t := range ts {
			if strings.EqualFold(t.Name, name) {
				id = t.ID
			}
		}
		if id == 0 && (next == 0 || len(ts) == 0) {
			return nil, &Error{Forge: "gitea", Op: "find team " + org + "/" + name, Kind: ErrNotFound,
				Err: fmt.Errorf("organization %s has no team %s visible to the token", org, name)}
		}
	}
	var members []string
	for page := 1; ; page++ {
		var us []*gitea.User
		var next int
		err := g.call(ctx, "list members of team "+org+"/"+name, func(c *gitea.Client) (resp *gitea.Response, err error) {
			us, resp, err = c.ListTeamMembers(id, gitea.ListTeamMembersOptions{ListOptions: gitea.ListOptions{Page: page, PageSize: pageSize}})
			if resp != nil {
				next = resp.NextPage
			}
			return resp, err
		})
		if err != nil {
			return nil, err
		}
		for _, u := range us {
			members = append(members, u.UserName)
		}
		if next == 0 || len(us) == 0 {
			return members, nil
		}
	}
}

// whoami returns the token's user name, asked once.
func (g *Gitea) whoami(ctx context.Context) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.me != "" {
		return g.me, nil
	}
	var u *gitea.User
	err := g.call(ctx, "read the token's user", func(c *gitea.Client) (resp *gitea.Response, err error) {
		u, resp, err = c.GetMyUserInfo()
		return resp, err
	})
	if err != nil {
		return "", err
	}
	g.me = u.UserName
	return g.me, nil
}

// UpsertComment implements Client. Only the token user's own comments are candidates, so
// nobody can make Slipway edit theirs by copying the marker.
func (g *Gitea) UpsertComment(ctx context.Context, number int64, key, body string) (int64, error) {
	me, err := g.whoami(ctx)
	if err != nil {
		return 0, err
	}
	op := fmt.Sprintf("comment %s on pull request #%d", key, number)
	var found int64
	for page := 1; found == 0; page++ {
		var cs []*gitea.Comment
		var next int
		err := g.call(ctx, op, func(c *gitea.Client) (resp *gitea.Response, err error) {
			cs, resp, err = c.ListIssueComments(g.o(), g.r(), number, gitea.ListIssueCommentOptions{ListOptions: gitea.ListOptions{Page: page, PageSize: pageSize}})
			if resp != nil {
				next = resp.NextPage
			}
			return resp, err
		})
		if err != nil {
			return 0, err
		}
		for _, c := range cs {
			if c.Poster != nil && c.Poster.UserName == me && strings.Contains(c.Body, marker(key)) {
				found = c.ID
				break
			}
		}
		if next == 0 || len(cs) == 0 {
			break
		}
	}
	text := markedBody(key, body)
	if found != 0 {
		return found, g.call(ctx, op, func(c *gitea.Client) (*gitea.Response, error) {
			_, resp, err := c.EditIssueComment(g.o(), g.r(), found, gitea.EditIssueCommentOption{Body: text})
			return resp, err
		})
	}
	var created *gitea.Comment
	err = g.call(ctx, op, func(c *gitea.Client) (resp *gitea.Response, err error) {
		created, resp, err = c.CreateIssueComment(g.o(), g.r(), number, gitea.CreateIssueCommentOption{Body: text})
		return resp, err
	})
	if err != nil {
		return 0, err
	}
	return created.ID, nil
}

// SetStatus implements Client.
func (g *Gitea) SetStatus(ctx context.Context, sha string, s Status) error {
	return g.call(ctx, "set status "+s.Context+" on "+short(sha), func(c *gitea.Client) (*gitea.Response, error) {
		_, resp, err := c.CreateStatus(g.o(), g.r(), sha, gitea.CreateStatusOption{State: gitea.StatusState(s.State),
			TargetURL: s.TargetURL, Description: truncate(s.Description, maxDescription), Context: s.Context})
		return resp, err
	})
}

// Statuses implements Client (Gitea's combined status: the newest per context).
func (g *Gitea) Statuses(ctx context.Context, sha string) ([]Status, error) {
	var cs *gitea.CombinedStatus
	err := g.call(ctx, "read statuses of "+short(sha), func(c *gitea.Client) (resp *gitea.Response, err error) {
		cs, resp, err = c.GetCombinedStatus(g.o(), g.r(), sha)
		return resp, err
	})
	if err != nil {
		return nil, err
	}
	out := make([]Status, 0, len(cs.Statuses))
	for _, s := range cs.Statuses {
		out = append(out, Status{Context: s.Context, State: StatusState(s.State), Description: s.Description, TargetURL: s.TargetURL})
	}
	return out, nil
}

// splitTeam reads NAME or OWNER/NAME (the last "/" splits, so GitLab's nested groups work).
func splitTeam(owner, team string) (string, string) {
	team = strings.TrimPrefix(team, "team:")
	if i := strings.LastIndex(team, "/"); i >= 0 {
		return team[:i], team[i+1:]
	}
	return owner, team
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

var _ Client = (*Gitea)(nil)
