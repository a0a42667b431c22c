// Package policy makes decisions with reasons and no side effects: whether a stage of a
// run may start (approval gates), and later which objects a repository may deploy.
package policy

import (
	"context"
	"fmt"
	"strings"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/store"
)

// StageRequest asks whether a stage of a run may start.
type StageRequest struct {
	Run      store.Run
	Pipeline *pipeline.Pipeline
	Stage    *pipeline.Stage
}

// Decision is a yes or no with the rule that decided and a reason a person can act on.
type Decision struct {
	Allow  bool
	Rule   string // e.g. "approval"
	Reason string
}

// Gate decides whether stages may start. A stage without an approval always may.
//
// Approval gates (pull-request review, manual approval) are not supported yet: a stage
// that asks for one never starts, and the run fails saying so. Letting it through would
// deploy what its author meant to protect.
type Gate struct{}

// MayStart implements the run engine's stage gate.
func (Gate) MayStart(_ context.Context, req StageRequest) (Decision, error) {
	a := req.Stage.Approval
	if a == nil {
		return Decision{Allow: true}, nil
	}
	var kinds []string
	if a.PullRequest != nil {
		kinds = append(kinds, "pull-request review")
	}
	if a.Manual != nil {
		kinds = append(kinds, "manual approval")
	}
	return Decision{Rule: "approval", Reason: fmt.Sprintf(
		"stage %s needs an approval (%s), and approval gates are not supported yet: the stage did not start",
		req.Stage.Name, strings.Join(kinds, " or "))}, nil
}
