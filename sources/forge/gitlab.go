package forge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	gitlab "gitlab.com/gitlab-org/api/client-go"
	"golang.org/x/time/rate"
)

// GitLab is a client of one GitLab project, on gitlab.com/gitlab-org/api/client-go. Pull
// requests are merge requests (Number is the IID), teams are groups.
type GitLab struct {
	api     *gitlab.Client
	project Project

	mu sync.Mutex
	me string
}

// NewGitLab returns a client of project on the GitLab at baseURL (without /api/v4).
func NewGitLab(baseURL string, project Project, token string, o Options) (*GitLab, error) {
	// The library's own retries and its header-driven limiter are off: retryTransport does
	// both, the same way for every forge.
	c, err := gitlab.NewClient(token, gitlab.WithBaseURL(baseURL), gitlab.WithHTTPClient(httpClient(o.withDefaults())),
		gitlab.WithoutRetries(), gitlab.WithCustomLimiter(rate.NewLimiter(rate.Inf, 0)))
	if err != nil {
		return nil, fmt.Errorf("forge url %q: %w", baseURL, err)
	}
	return &GitLab{api: c, project: project}, nil
}

func (g *GitLab) call(ctx context.Context, op string, fn func(opt gitlab.RequestOptionFunc) (*gitlab.Response, error)) error {
	ctx, attempts := withAttempts(ctx)
	resp, err := fn(gitlab.WithContext(ctx))
	var hr *http.Response
	if resp != nil {
		hr = resp.Response
	}
	return classify(ctx, "gitlab", op, attempts, hr, err)
}

func (g *GitLab) pid() string { return g.project.String() }

// PullRequestsForCommit implements Client (the merge requests associated with a commit).
func (g *GitLab) PullRequestsForCommit(ctx context.Context, sha string) ([]PullRequest, error) {
	var mrs []*gitlab.BasicMergeRequest
	err := g.call(ctx, "merge requests of commit "+short(sha), func(opt gitlab.RequestOptionFunc) (resp *gitlab.Response, err error) {
		mrs, resp, err = g.api.Commits.ListMergeRequestsByCommit(g.pid(), sha, opt)
		return resp, err
	})
	if err != nil {
		return nil, err
	}
	out := make([]PullRequest, 0, len(mrs))
	for _, mr := range mrs {
		out = append(out, gitlabMR(mr))
	}
	return out, nil
}

// PullRequest implements Client.
func (g *GitLab) PullRequest(ctx context.Context, number int64) (PullRequest, error) {
	var mr *gitlab.MergeRequest
	err := g.call(ctx, fmt.Sprintf("read merge request !%d", number), func(opt gitlab.RequestOptionFunc) (resp *gitlab.Response, err error) {
		mr, resp, err = g.api.MergeRequests.GetMergeRequest(g.pid(), number, nil, opt)
		return resp, err
	})
	if err != nil {
		return PullRequest{}, err
	}
	return gitlabMR(&mr.BasicMergeRequest), nil
}

func gitlabMR(mr *gitlab.BasicMergeRequest) PullRequest {
	out := PullRequest{Number: mr.IID, HeadSHA: mr.SHA, BaseBranch: mr.TargetBranch, URL: mr.WebURL, State: PROpen}
	if mr.Author != nil {
		out.Author = mr.Author.Username
	}
	switch mr.State {
	case "merged":
		out.Merged, out.State = true, PRClosed
		// A squash lands the squash commit; a fast-forward merge lands the head itself.
		for _, sha := range []string{mr.MergeCommitSHA, mr.SquashCommitSHA, mr.SHA} {
			if sha != "" {
				out.MergeCommitSHA = sha
				break
			}
		}
	case "closed":
		out.State = PRClosed
	}
	return out
}

// Reviews implements Client from the merge request's approvals. GitLab does not record which
// commit an approval was given on: each is reported on the merge request's current head,
// which holds when the project removes approvals on new pushes (Settings > Merge requests >
// "Remove all approvals when commits are added"), as docs/forges.md requires.
func (g *GitLab) Reviews(ctx context.Context, number int64) ([]Review, error) {
	mr, err := g.PullRequest(ctx, number)
	if err != nil {
		return nil, err
	}
	var a *gitlab.MergeRequestApprovals
	err = g.call(ctx, fmt.Sprintf("read approvals of merge request !%d", number), func(opt gitlab.RequestOptionFunc) (resp *gitlab.Response, err error) {
		a, resp, err = g.api.MergeRequests.GetMergeRequestApprovals(g.pid(), number, opt)
		return resp, err
	})
	if err != nil {
		return nil, err
	}
	var out []Review
	for _, u := range a.ApprovedBy {
		if u != nil && u.User != nil {
			out = append(out, Review{Reviewer: u.User.Username, State: ReviewApproved, CommitSHA: mr.HeadSHA})
		}
	}
	return out, nil
}

// TeamMembers implements Client: a team is a group, NAME a subgroup of the project's
// namespace or a full group path; inherited members count.
func (g *GitLab) TeamMembers(ctx context.Context, team string) ([]string, error) {
	group := strings.TrimPrefix(team, "team:")
	if !strings.Contains(group, "/") {
		group = g.project.Owner + "/" + group
	}
	var out []string
	opts := &gitlab.ListGroupMembersOptions{ListOptions: gitlab.ListOptions{PerPage: pageSize}}
	for {
		var ms []*gitlab.GroupMember
		var resp *gitlab.Response
		err := g.call(ctx, "list members of group "+group, func(opt gitlab.RequestOptionFunc) (_ *gitlab.Response, err error) {
			ms, resp, err = g.api.Groups.ListAllGroupMembers(group, opts, opt)
			return resp, err
		})
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			out = append(out, m.Username)
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

func (g *GitLab) whoami(ctx context.Context) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.me != "" {
		return g.me, nil
	}
	var u *gitlab.User
	err := g.call(ctx, "read the token's user", func(opt gitlab.RequestOptionFunc) (resp *gitlab.Response, err error) {
		u, resp, err = g.api.Users.CurrentUser(opt)
		return resp, err
	})
	if err != nil {
		return "", err
	}
	g.me = u.Username
	return g.me, nil
}

// UpsertComment implements Client with merge request notes; only the token user's own
// notes are candidates.
func (g *GitLab) UpsertComment(ctx context.Context, number int64, key, body string) (int64, error) {
	me, err := g.whoami(ctx)
	if err != nil {
		return 0, err
	}
	op := fmt.Sprintf("comment %s on merge request !%d", key, number)
	var found int64
	opts := &gitlab.ListMergeRequestNotesOptions{ListOptions: gitlab.ListOptions{PerPage: pageSize}}
	for found == 0 {
		var ns []*gitlab.Note
		var resp *gitlab.Response
		err := g.call(ctx, op, func(opt gitlab.RequestOptionFunc) (_ *gitlab.Response, err error) {
			ns, resp, err = g.api.Notes.ListMergeRequestNotes(g.pid(), number, opts, opt)
			return resp, err
		})
		if err != nil {
			return 0, err
		}
		for _, n := range ns {
			if !n.System && n.Author.Username == me && strings.Contains(n.Body, marker(key)) {
				found = n.ID
				break
			}
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	text := gitlab.Ptr(markedBody(key, body))
	if found != 0 {
		return found, g.call(ctx, op, func(opt gitlab.RequestOptionFunc) (*gitlab.Response, error) {
			_, resp, err := g.api.Notes.UpdateMergeRequestNote(g.pid(), number, found, &gitlab.UpdateMergeRequestNoteOptions{Body: text}, opt)
			return resp, err
		})
	}
	var n *gitlab.Note
	err = g.call(ctx, op, func(opt gitlab.RequestOptionFunc) (resp *gitlab.Response, err error) {
		n, resp, err = g.api.Notes.CreateMergeRequestNote(g.pid(), number, &gitlab.CreateMergeRequestNoteOptions{Body: text}, opt)
		return resp, err
	})
	if err != nil {
		return 0, err
	}
	return n.ID, nil
}

// gitlabState maps a status state; GitLab has no "error": a run that could not finish
// (cancelled, superseded) is "canceled".
func gitlabState(s StatusState) gitlab.BuildStateValue {
	switch s {
	case StatusSuccess:
		return gitlab.Success
	case StatusFailure:
		return gitlab.Failed
	case StatusError:
		return gitlab.Canceled
	}
	return gitlab.Pending
}

// SetStatus implements Client. GitLab refuses to set a state a status already has ("Cannot
// transition status"); that is taken as done.
func (g *GitLab) SetStatus(ctx context.Context, sha string, s Status) error {
	opts := &gitlab.SetCommitStatusOptions{State: gitlabState(s.State), Name: gitlab.Ptr(s.Context),
		Description: gitlab.Ptr(truncate(s.Description, maxDescription))}
	if s.TargetURL != "" {
		opts.TargetURL = gitlab.Ptr(s.TargetURL)
	}
	err := g.call(ctx, "set status "+s.Context+" on "+short(sha), func(opt gitlab.RequestOptionFunc) (*gitlab.Response, error) {
		_, resp, err := g.api.Commits.SetCommitStatus(g.pid(), sha, opts, opt)
		return resp, err
	})
	if errors.Is(err, ErrInvalid) && strings.Contains(err.Error(), "Cannot transition status") {
		return nil
	}
	return err
}

// Statuses implements Client (GitLab answers the newest status per name unless asked for all).
func (g *GitLab) Statuses(ctx context.Context, sha string) ([]Status, error) {
	var out []Status
	opts := &gitlab.GetCommitStatusesOptions{ListOptions: gitlab.ListOptions{PerPage: pageSize}}
	for {
		var ss []*gitlab.CommitStatus
		var resp *gitlab.Response
		err := g.call(ctx, "read statuses of "+short(sha), func(opt gitlab.RequestOptionFunc) (_ *gitlab.Response, err error) {
			ss, resp, err = g.api.Commits.GetCommitStatuses(g.pid(), sha, opts, opt)
			return resp, err
		})
		if err != nil {
			return nil, err
		}
		for _, s := range ss {
			state := StatusState(s.Status)
			switch s.Status {
			case "failed":
				state = StatusFailure
			case "canceled":
				state = StatusError
			case "running", "created", "waiting_for_resource", "preparing", "scheduled", "manual":
				state = StatusPending
			}
			out = append(out, Status{Context: s.Name, State: state, Description: s.Description, TargetURL: s.TargetURL})
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

var _ Client = (*GitLab)(nil)
