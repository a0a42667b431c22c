package policy

import (
	"context"
	"errors"
	"testing"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/store"
)

func TestGateLetsUngatedStagesStart(t *testing.T) {
	d, err := Gate{}.MayStart(context.Background(), StageRequest{Stage: &pipeline.Stage{Name: "staging"}})
	if err != nil || !d.Allow || d.Wait {
		t.Fatalf("ungated stage: %+v %v", d, err)
	}
}

func TestGateWaitsForAManualApprover(t *testing.T) {
	gated := &pipeline.Stage{Name: "production", Approval: &pipeline.Approval{Manual: &pipeline.ManualApproval{Approvers: []string{"ops-lead", "sre"}}}}
	run := store.Run{Pipeline: store.PipelineRef{Repository: "shop", Name: "deploy"}, BuildID: 7}
	ctx := context.Background()
	d, err := Gate{}.MayStart(ctx, StageRequest{Run: run, Stage: gated})
	if err != nil || d.Allow || !d.Wait || d.Reason != "stage production waits for a manual approval from ops-lead or sre (slipway approve shop/deploy 7)" {
		t.Fatalf("no answer yet: %+v %v", d, err)
	}
	// Someone not listed is not counted, whatever they say.
	d, _ = Gate{}.MayStart(ctx, StageRequest{Run: run, Stage: gated, Answers: []Answer{{Actor: "mallory", Approve: true}}})
	if d.Allow || !d.Wait {
		t.Fatalf("an answer from a non-approver opened the gate: %+v", d)
	}
	d, _ = Gate{}.MayStart(ctx, StageRequest{Run: run, Stage: gated, Answers: []Answer{{Actor: "mallory", Approve: true}, {Actor: "sre", Approve: true}}})
	if !d.Allow || d.Reason != "stage production approved by sre" {
		t.Fatalf("approved by sre: %+v", d)
	}
	d, _ = Gate{}.MayStart(ctx, StageRequest{Run: run, Stage: gated, Answers: []Answer{{Actor: "ops-lead", Comment: "not on a Friday"}}})
	if d.Allow || d.Wait || d.Reason != "stage production rejected by ops-lead: not on a Friday" {
		t.Fatalf("rejected: %+v", d)
	}
}

func TestCanApprove(t *testing.T) {
	gated := &pipeline.Stage{Name: "production", Approval: &pipeline.Approval{Manual: &pipeline.ManualApproval{Approvers: []string{"ops-lead"}}}}
	if err := CanApprove(gated, "ops-lead"); err != nil {
		t.Fatal(err)
	}
	for _, who := range []string{"", "mallory", "team:sre"} {
		if err := CanApprove(gated, who); !errors.Is(err, ErrNotApprover) {
			t.Errorf("%q: %v", who, err)
		}
	}
	if err := CanApprove(&pipeline.Stage{Name: "staging"}, "ops-lead"); !errors.Is(err, ErrNotApprover) {
		t.Errorf("a stage without a manual approval: %v", err)
	}
}
