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
}

// Decision is a yes, a no or a not yet, with the rule that decided and a reason a person
// can act on.
type Decision struct {
	Allow bool
	// Wait says the gate may still open: the run waits (awaiting_approval) for an answer
	// or, for a pull-request rule, for the reviews to change.
	Wait   bool
	Rule   string // e.g. "approval", "manual", "pullRequest"
	Reason string
}

// Gate decides whether stages may start. A stage without an approval always may.
//
// A `manual` approval opens when an allowed approver approves the run and fails it when
// one rejects it. A `pullRequest` approval needs the forge's reviews, which Slipway does
// not read yet: with only `pullRequest` the stage never starts and the run fails saying
// so; with `manual` too, the run waits for a manual approval instead.
type Gate struct{}

// MayStart implements the run engine's stage gate.
func (Gate) MayStart(_ context.Context, req StageRequest) (Decision, error) {
	a := req.Stage.Approval
	if a == nil {
		return Decision{Allow: true}, nil
	}
	if a.Manual == nil {
		return Decision{Rule: "pullRequest", Reason: fmt.Sprintf(
			"stage %s needs an approval (pull-request review), and pull-request approval is not supported yet: the stage did not start",
			req.Stage.Name)}, nil
	}
	for _, ans := range req.Answers {
		if CanApprove(req.Stage, ans.Actor) != nil {
			continue
		}
		if !ans.Approve {
			reason := fmt.Sprintf("stage %s rejected by %s", req.Stage.Name, ans.Actor)
			if ans.Comment != "" {
				reason += ": " + ans.Comment
			}
			return Decision{Rule: "manual", Reason: reason}, nil
		}
		return Decision{Allow: true, Rule: "manual", Reason: fmt.Sprintf("stage %s approved by %s", req.Stage.Name, ans.Actor)}, nil
	}
	reason := fmt.Sprintf("stage %s waits for a manual approval from %s (slipway approve %s/%s %d)",
		req.Stage.Name, strings.Join(a.Manual.Approvers, " or "), req.Run.Pipeline.Repository, req.Run.Pipeline.Name, req.Run.BuildID)
	if a.PullRequest != nil {
		reason += "; pull-request approval is not supported yet"
	}
	return Decision{Wait: true, Rule: "manual", Reason: reason}, nil
}

// ErrNotApprover says someone not listed as an approver answered a gate.
var ErrNotApprover = errors.New("not an approver of this stage")

// CanApprove reports whether actor may answer the stage's manual approval. Team entries
// (team:NAME) need the forge's team membership, which is not read yet: they match no one.
func CanApprove(stage *pipeline.Stage, actor string) error {
	if stage == nil || stage.Approval == nil || stage.Approval.Manual == nil {
		return fmt.Errorf("stage has no manual approval: %w", ErrNotApprover)
	}
	if actor != "" && slices.Contains(stage.Approval.Manual.Approvers, actor) {
		return nil
	}
	return fmt.Errorf("%s may not approve stage %s (approvers: %s): %w", actor, stage.Name,
		strings.Join(stage.Approval.Manual.Approvers, ", "), ErrNotApprover)
}
