package policy

import (
	"context"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/pipeline"
)

func TestGateLetsUngatedStagesStartAndHoldsGatedOnes(t *testing.T) {
	ctx := context.Background()
	d, err := Gate{}.MayStart(ctx, StageRequest{Stage: &pipeline.Stage{Name: "staging"}})
	if err != nil || !d.Allow {
		t.Fatalf("ungated stage: %+v %v", d, err)
	}
	gated := &pipeline.Stage{Name: "production", Approval: &pipeline.Approval{PullRequest: &pipeline.PullRequestApproval{Approvals: 1}}}
	d, err = Gate{}.MayStart(ctx, StageRequest{Stage: gated})
	if err != nil || d.Allow {
		t.Fatalf("a stage behind approval must not start: %+v %v", d, err)
	}
	if d.Rule != "approval" || !strings.Contains(d.Reason, "stage production needs an approval (pull-request review)") ||
		!strings.Contains(d.Reason, "not supported yet") {
		t.Errorf("reason %q (rule %q)", d.Reason, d.Rule)
	}
}
