// Package policy makes decisions with reasons and no side effects: whether a stage of a
// run may start (approval gates), and which objects a repository may deploy.
package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/sources/forge"
	"github.com/slipwayhq/slipway/store"
)

// StageRequest asks whether a stage of a run may start.
type StageRequest struct {
	Run      store.Run
	Pipeline *pipeline.Pipeline
	Stage    *pipeline.Stage
	// Answers are what people said to this run while it waited at this stage, oldest
	// first.
	Answers []Answer
}

// Answer is a person's approval or rejection of a run waiting at a gate.
type Answer struct {
	Actor   string
	Approve bool
	Comment string
	At      time.Time
	// Via is the approvers entry that admitted Actor: the name itself or team:NAME, as
	// MayAnswer found it when the answer was taken. An answer whose Via is not listed on
	// the stage (or whose Actor is not, for Via "") does not count.
	Via string
}

// Decision is a yes, a no or a not yet, with the rule that decided and a reason a person
// can act on.
type Decision struct {
	Allow bool
	// Wait says the gate may still open: the run waits (awaiting_approval) for an answer.
	Wait   bool
	Rule   string // e.g. "approval", "manual", "pullRequest"
	Reason string
	// Evidence backs the decision for the audit log: the pull request's number, author,
	// head and merge commit, who approved, what the rule needed. Nil when there is none.
	Evidence map[string]any
}

// Reviews is what the pull-request rule reads from a repository's forge.
type Reviews interface {
	// PullRequestsForCommit returns the pull requests that brought sha into a branch.
	PullRequestsForCommit(ctx context.Context, sha string) ([]forge.PullRequest, error)
	// Reviews returns a pull request's submitted reviews, oldest first.
	Reviews(ctx context.Context, number int64) ([]forge.Review, error)
	// TeamMembers returns the user names in a team.
	TeamMembers(ctx context.Context, team string) ([]string, error)
}

// Gate decides whether stages may start. A stage without an approval always may.
//
// A `pullRequest` approval passes when the commit being deployed is the merge commit of a
// merged pull request into the run's branch with enough approving reviews, given on the
// pull request's final head by allowed reviewers other than its author (each reviewer's
// newest verdict counts). When it does not pass, a `manual` approval on the same stage
// lets the run wait for a person; without one the stage does not start and the run fails
// with the reason, because a merged pull request's reviews do not change.
//
// A `manual` approval opens when an allowed approver approves the run and fails it when
// one rejects it.
type Gate struct {
	// Forges returns the forge of a repository (by its name in slipway.yaml); false when
	// the repository has none. Nil: no repository has one.
	Forges func(repository string) (Reviews, bool)
	// Settle is how long a commit the forge names no pull request for is asked about
	// again (after 0.5 s, doubling) before it counts as pushed directly: a forge records
	// a merge on its pull request just after the merge commit reaches the branch, and a
	// run can start in between (seen on Gitea). Zero: ask once.
	Settle time.Duration
}

// MayStart implements the run engine's stage gate.
func (g Gate) MayStart(ctx context.Context, req StageRequest) (Decision, error) {
	a := req.Stage.Approval
	if a == nil {
		return Decision{Allow: true}, nil
	}
	var pr Decision
	if a.PullRequest != nil {
		pr = g.pullRequest(ctx, req)
		if pr.Allow || a.Manual == nil {
			return pr, nil
		}
	}
	for _, ans := range req.Answers {
		if !admitted(req.Stage, ans) {
			continue
		}
		who := ans.Actor
		if ans.Via != "" && ans.Via != ans.Actor {
			who += " (" + ans.Via + ")"
		}
		if !ans.Approve {
			reason := fmt.Sprintf("stage %s rejected by %s", req.Stage.Name, who)
			if ans.Comment != "" {
				reason += ": " + ans.Comment
			}
			return Decision{Rule: "manual", Reason: reason, Evidence: pr.Evidence}, nil
		}
		return Decision{Allow: true, Rule: "manual", Reason: fmt.Sprintf("stage %s approved by %s", req.Stage.Name, who),
			Evidence: pr.Evidence}, nil
	}
	reason := fmt.Sprintf("stage %s waits for a manual approval from %s (slipway approve %s/%s %d)",
		req.Stage.Name, strings.Join(a.Manual.Approvers, " or "), req.Run.Pipeline.Repository, req.Run.Pipeline.Name, req.Run.BuildID)
	if a.PullRequest != nil {
		reason = pr.Reason + "; " + reason
	}
	return Decision{Wait: true, Rule: "manual", Reason: reason, Evidence: pr.Evidence}, nil
}

// pullRequest decides the stage's pullRequest rule: Allow, or a refusal with the reason.
// A forge that cannot be read is a refusal too, so that a manual approval can still
// release the run.
func (g Gate) pullRequest(ctx context.Context, req StageRequest) Decision {
	rule := req.Stage.Approval.PullRequest
	repo, commit, branch := req.Run.Pipeline.Repository, req.Run.Commit, req.Run.Branch
	d := Decision{Rule: "pullRequest", Evidence: map[string]any{"commit": commit, "branch": branch}}
	no := func(format string, args ...any) Decision {
		d.Reason = fmt.Sprintf("stage %s: ", req.Stage.Name) + fmt.Sprintf(format, args...)
		return d
	}
	var fg Reviews
	ok := false
	if g.Forges != nil {
		fg, ok = g.Forges(repo)
	}
	if !ok {
		return no("repository %s has no forge configured in slipway.yaml: pull-request approval cannot be checked", repo)
	}
	prs, err := g.pullRequestsForCommit(ctx, fg, commit)
	if err != nil {
		return no("cannot read the pull request of commit %s: %v", short(commit), err)
	}
	var pull *forge.PullRequest
	for i := range prs {
		if prs[i].Merged && prs[i].MergeCommitSHA == commit && prs[i].BaseBranch == branch {
			pull = &prs[i]
			break
		}
	}
	if pull == nil {
		for _, p := range prs {
			if p.Merged && p.MergeCommitSHA == commit {
				return no("commit %s is the merge of PR #%d into %s, not into %s", short(commit), p.Number, p.BaseBranch, branch)
			}
		}
		return no("commit %s was pushed directly to %s, not through a pull request", short(commit), branch)
	}
	d.Evidence["pullRequest"] = pull.Number
	d.Evidence["author"] = pull.Author
	d.Evidence["head"] = pull.HeadSHA
	d.Evidence["mergeCommit"] = pull.MergeCommitSHA
	reviews, err := fg.Reviews(ctx, pull.Number)
	if err != nil {
		return no("cannot read the reviews of PR #%d: %v", pull.Number, err)
	}
	allowed, err := allowedReviewers(ctx, fg, rule.Reviewers)
	if err != nil {
		return no("cannot read the reviewers of PR #%d: %v", pull.Number, err)
	}
	approvers := countedApprovals(reviews, pull, allowed)
	d.Evidence["approvers"] = approvers
	d.Evidence["needed"] = max(rule.Approvals, 1)
	from := ""
	if len(rule.Reviewers) > 0 {
		from = " from " + strings.Join(rule.Reviewers, " or ")
	}
	if len(approvers) < max(rule.Approvals, 1) {
		return no("PR #%d has %d of %d approvals%s on its final head %s (the author's own and approvals of earlier heads do not count)",
			pull.Number, len(approvers), max(rule.Approvals, 1), from, short(pull.HeadSHA))
	}
	d.Allow = true
	d.Reason = fmt.Sprintf("stage %s: PR #%d approved by %s", req.Stage.Name, pull.Number, strings.Join(approvers, ", "))
	return d
}

// pullRequestsForCommit asks the forge for the commit's pull requests, again within
// g.Settle while it names none.
func (g Gate) pullRequestsForCommit(ctx context.Context, fg Reviews, commit string) ([]forge.PullRequest, error) {
	deadline := time.Now().Add(g.Settle)
	for wait := 500 * time.Millisecond; ; wait *= 2 {
		prs, err := fg.PullRequestsForCommit(ctx, commit)
		if err != nil || len(prs) > 0 || !time.Now().Add(wait).Before(deadline) {
			return prs, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// allowedReviewers resolves the rule's reviewers (users and team:NAME) to user names; nil
// means anyone.
func allowedReviewers(ctx context.Context, fg Reviews, reviewers []string) (map[string]bool, error) {
	if len(reviewers) == 0 {
		return nil, nil
	}
	allowed := map[string]bool{}
	for _, r := range reviewers {
		team, isTeam := strings.CutPrefix(r, "team:")
		if !isTeam {
			allowed[strings.ToLower(r)] = true
			continue
		}
		members, err := fg.TeamMembers(ctx, team)
		if err != nil {
			return nil, err
		}
		for _, m := range members {
			allowed[strings.ToLower(m)] = true
		}
	}
	return allowed, nil
}

// countedApprovals returns, sorted, the reviewers whose newest verdict approves the pull
// request's final head, leaving out its author and reviewers not allowed (allowed nil:
// anyone). A comment is no verdict: it neither gives nor withdraws an approval. An approval
// of an earlier head does not count, whether or not the later pushes changed files.
func countedApprovals(reviews []forge.Review, pr *forge.PullRequest, allowed map[string]bool) []string {
	newest := map[string]forge.Review{}
	for _, r := range reviews {
		if r.State == forge.ReviewCommented {
			continue
		}
		who := strings.ToLower(r.Reviewer)
		if old, ok := newest[who]; !ok || !r.Submitted.Before(old.Submitted) {
			newest[who] = r
		}
	}
	out := []string{} // [] rather than null in the audit log's evidence
	for who, r := range newest {
		if r.State != forge.ReviewApproved || r.CommitSHA != pr.HeadSHA || strings.EqualFold(who, pr.Author) {
			continue
		}
		if allowed != nil && !allowed[who] {
			continue
		}
		out = append(out, r.Reviewer)
	}
	slices.Sort(out)
	return out
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

// ErrNotApprover says someone not listed as an approver answered a gate.
var ErrNotApprover = errors.New("not an approver of this stage")

// ErrApproversUnknown says whether someone may answer a gate could not be decided: a
// team's members could not be read from the forge. Asking again later may work.
var ErrApproversUnknown = errors.New("the stage's approvers cannot be read now")

// MayAnswer reports whether actor may answer the stage's manual approval in a run of the
// repository, and by which approvers entry: the actor's own name, or team:NAME when the
// forge lists them as a member of that team. Team members are read when someone answers,
// so a change of membership counts at once. It fails with ErrNotApprover, or with
// ErrApproversUnknown when a team that could admit actor cannot be read.
func (g Gate) MayAnswer(ctx context.Context, repository string, stage *pipeline.Stage, actor string) (string, error) {
	if stage == nil || stage.Approval == nil || stage.Approval.Manual == nil {
		return "", fmt.Errorf("stage has no manual approval: %w", ErrNotApprover)
	}
	approvers := stage.Approval.Manual.Approvers
	if actor != "" && slices.Contains(approvers, actor) {
		return actor, nil
	}
	notListed := fmt.Errorf("%s may not approve stage %s (approvers: %s): %w", actor, stage.Name,
		strings.Join(approvers, ", "), ErrNotApprover)
	if actor == "" {
		return "", notListed
	}
	var teams []string
	for _, a := range approvers {
		if strings.HasPrefix(a, "team:") {
			teams = append(teams, a)
		}
	}
	if len(teams) == 0 {
		return "", notListed
	}
	var fg Reviews
	ok := false
	if g.Forges != nil {
		fg, ok = g.Forges(repository)
	}
	if !ok {
		return "", fmt.Errorf("%s may not approve stage %s: %s cannot be resolved, because repository %s has no forge configured in slipway.yaml (approvers: %s): %w",
			actor, stage.Name, strings.Join(teams, ", "), repository, strings.Join(approvers, ", "), ErrNotApprover)
	}
	var unread []error
	for _, team := range teams {
		members, err := fg.TeamMembers(ctx, strings.TrimPrefix(team, "team:"))
		if err != nil {
			unread = append(unread, fmt.Errorf("%s: %w", team, err))
			continue
		}
		if slices.ContainsFunc(members, func(m string) bool { return strings.EqualFold(m, actor) }) {
			return team, nil
		}
	}
	if len(unread) > 0 {
		return "", fmt.Errorf("cannot tell whether %s may approve stage %s: %w: %w", actor, stage.Name, errors.Join(unread...), ErrApproversUnknown)
	}
	return "", notListed
}

// admitted reports whether an answer comes from an approver of the stage: its actor is
// listed by name, or it was taken from a member of a listed team (Via).
func admitted(stage *pipeline.Stage, ans Answer) bool {
	if stage == nil || stage.Approval == nil || stage.Approval.Manual == nil || ans.Actor == "" {
		return false
	}
	approvers := stage.Approval.Manual.Approvers
	if slices.Contains(approvers, ans.Actor) {
		return true
	}
	return strings.HasPrefix(ans.Via, "team:") && slices.Contains(approvers, ans.Via)
}
