package policy

import (
	"context"
	"errors"
	"strings"
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

func TestMayAnswer(t *testing.T) {
	gated := &pipeline.Stage{Name: "production", Approval: &pipeline.Approval{Manual: &pipeline.ManualApproval{Approvers: []string{"ops-lead"}}}}
	ctx := context.Background()
	if via, err := (Gate{}).MayAnswer(ctx, "shop", gated, "ops-lead"); err != nil || via != "ops-lead" {
		t.Fatalf("ops-lead: %q %v", via, err)
	}
	for _, who := range []string{"", "mallory", "team:sre"} {
		if _, err := (Gate{}).MayAnswer(ctx, "shop", gated, who); !errors.Is(err, ErrNotApprover) {
			t.Errorf("%q: %v", who, err)
		}
	}
	if _, err := (Gate{}).MayAnswer(ctx, "shop", &pipeline.Stage{Name: "staging"}, "ops-lead"); !errors.Is(err, ErrNotApprover) {
		t.Errorf("a stage without a manual approval: %v", err)
	}
}

func TestMayAnswerResolvesTeams(t *testing.T) {
	gated := &pipeline.Stage{Name: "production", Approval: &pipeline.Approval{Manual: &pipeline.ManualApproval{
		Approvers: []string{"ops-lead", "team:sre", "team:dba"}}}}
	ctx := context.Background()
	f := &fakeForge{teams: map[string][]string{"sre": {"carol", "Dave"}, "dba": {"erin"}}}
	g := prGate(f)
	for who, want := range map[string]string{"ops-lead": "ops-lead", "carol": "team:sre", "dave": "team:sre", "erin": "team:dba"} {
		if via, err := g.MayAnswer(ctx, "shop", gated, who); err != nil || via != want {
			t.Errorf("%s: via %q, %v; want %q", who, via, err, want)
		}
	}
	_, err := g.MayAnswer(ctx, "shop", gated, "mallory")
	if !errors.Is(err, ErrNotApprover) || err.Error() != "mallory may not approve stage production (approvers: ops-lead, team:sre, team:dba): not an approver of this stage" {
		t.Errorf("mallory: %v", err)
	}

	// A repository without a forge cannot resolve teams: nobody is admitted through one.
	_, err = prGate(f).MayAnswer(ctx, "other", gated, "carol")
	if !errors.Is(err, ErrNotApprover) || !strings.Contains(err.Error(), "team:sre, team:dba cannot be resolved, because repository other has no forge configured") {
		t.Errorf("no forge: %v", err)
	}

	// A team that cannot be read: not decided, unless another entry admits the actor.
	delete(f.teams, "dba")
	if _, err = g.MayAnswer(ctx, "shop", gated, "erin"); !errors.Is(err, ErrApproversUnknown) || errors.Is(err, ErrNotApprover) ||
		!strings.Contains(err.Error(), "cannot tell whether erin may approve stage production: team:dba: not found") {
		t.Errorf("team unreadable: %v", err)
	}
	if via, err := g.MayAnswer(ctx, "shop", gated, "carol"); err != nil || via != "team:sre" {
		t.Errorf("carol with team:dba unreadable: %q %v", via, err)
	}
}

func TestTeamAnswersCountThroughVia(t *testing.T) {
	gated := &pipeline.Stage{Name: "production", Approval: &pipeline.Approval{Manual: &pipeline.ManualApproval{Approvers: []string{"team:sre"}}}}
	run := store.Run{Pipeline: store.PipelineRef{Repository: "shop", Name: "deploy"}, BuildID: 7}
	ctx := context.Background()
	// An answer that MayAnswer did not admit through a listed team does not count.
	for _, ans := range []Answer{{Actor: "carol", Approve: true}, {Actor: "carol", Approve: true, Via: "team:dba"}} {
		if d, _ := (Gate{}).MayStart(ctx, StageRequest{Run: run, Stage: gated, Answers: []Answer{ans}}); d.Allow || !d.Wait {
			t.Errorf("answer %+v opened the gate: %+v", ans, d)
		}
	}
	d, _ := Gate{}.MayStart(ctx, StageRequest{Run: run, Stage: gated, Answers: []Answer{{Actor: "carol", Approve: true, Via: "team:sre"}}})
	if !d.Allow || d.Rule != "manual" || d.Reason != "stage production approved by carol (team:sre)" {
		t.Errorf("carol of team:sre: %+v", d)
	}
	d, _ = Gate{}.MayStart(ctx, StageRequest{Run: run, Stage: gated, Answers: []Answer{{Actor: "carol", Via: "team:sre", Comment: "no"}}})
	if d.Allow || d.Wait || d.Reason != "stage production rejected by carol (team:sre): no" {
		t.Errorf("carol's rejection: %+v", d)
	}
}
