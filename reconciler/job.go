package reconciler

import (
	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/store"
)

// Job is one run to be: what the Dispatcher queues and Runner.Execute runs. Every run is
// a Job, whatever started it — a push, a webhook, a poll, a person, a schedule, a re-run,
// a rollback or the CLI's `slipway run`.
type Job struct {
	Ref     store.PipelineRef
	Trigger store.Trigger
	// Parent is the run this one re-runs or rolls back to (0: none).
	Parent int64
	// Audit, when set, says who asked for the run: it is recorded in the audit log in the
	// transaction that records the run (store.NewRun.Audit), so the run is never on record
	// without it, nor it without the run.
	Audit *store.AuditEntry

	// checkout and pipeline are the commit and its validated pipeline file; a rollback
	// has neither: it re-applies what run Parent stored.
	checkout *Checkout
	pipeline *pipeline.Pipeline
	// promote is set for a promotion: pipeline is then the promotion's one stage.
	promote *promotion
}

// RunJob is a run of pipeline p at the checkout's commit.
func RunJob(co *Checkout, p *pipeline.Pipeline, trigger store.Trigger, parent int64) Job {
	return Job{Ref: store.PipelineRef{Repository: co.Repo.Name, Name: p.Name}, Trigger: trigger, Parent: parent,
		checkout: co, pipeline: p}
}

// RollbackJob is a run that re-applies every revision run `to` of the pipeline stored,
// prunes what later revisions added, and waits for health.
func RollbackJob(ref store.PipelineRef, to int64) Job {
	return Job{Ref: ref, Trigger: store.TriggerRollback, Parent: to}
}

// IsRollback reports whether the job re-applies stored revisions instead of running stages.
func (j Job) IsRollback() bool { return j.pipeline == nil }

// Pipeline is the pipeline the job runs; nil for a rollback.
func (j Job) Pipeline() *pipeline.Pipeline { return j.pipeline }

// Checkout is the commit the job runs at; nil for a rollback.
func (j Job) Checkout() *Checkout { return j.checkout }
