package reconciler

import (
	"context"
	"errors"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/policy"
	"github.com/slipwayhq/slipway/store"
)

// RunRequests is where other processes (replicas, or the daemon beside `slipway run`)
// leave cancels and approval answers for the runs this process holds.
type RunRequests interface {
	TakeRunRequests(ctx context.Context, holder string) ([]store.RunRequest, error)
	FinishRunRequest(ctx context.Context, q store.RunRequest, outcome store.RequestOutcome, detail string) error
	RecordAudit(ctx context.Context, e store.AuditEntry) (store.AuditEntry, error)
}

// ChangeFollower wakes the dispatcher when the store says a request was left;
// *changefeed.Feed is one.
type ChangeFollower interface {
	Follow(match func(store.Change) bool) (wake <-chan struct{}, stop func())
}

// defaultRequestPoll is how often requests are looked for when no wake-up came: on SQLite
// another process's write wakes nobody here, and on PostgreSQL a wake-up can be lost.
const defaultRequestPoll = 2 * time.Second

// CancelReason is the reason a run cancelled at actor's request ends with.
func CancelReason(actor string) string { return "cancelled by request of " + actor }

// serveRequests takes the requests left for this process's runs, when woken and every
// poll, until ctx ends.
func (d *Dispatcher) serveRequests(ctx context.Context, reqs RunRequests, changes ChangeFollower, poll time.Duration) {
	var wake <-chan struct{}
	if changes != nil {
		w, stop := changes.Follow(func(c store.Change) bool { return c.Kind == store.ChangeRequest })
		defer stop()
		wake = w
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		qs, err := reqs.TakeRunRequests(ctx, d.holder)
		if err != nil && ctx.Err() == nil {
			d.log.WithError(err).Warn("take the requests other processes left for this one's runs")
		}
		for _, q := range qs {
			d.handleRequest(ctx, reqs, q)
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-t.C:
		}
	}
}

// handleRequest acts on a request as the API would on a local call (Cancel or Answer,
// with the same checks), records it in the audit log under the actor who asked, and
// records the outcome for the process waiting on it.
func (d *Dispatcher) handleRequest(ctx context.Context, reqs RunRequests, q store.RunRequest) {
	log := d.log.WithFields(logrus.Fields{"pipeline": q.Pipeline.Name, "build_id": q.BuildID, "request": q.ID,
		"kind": q.Kind, "actor": q.Actor})
	e := store.AuditEntry{Actor: q.Actor, Pipeline: q.Pipeline, BuildID: q.BuildID}
	var err error
	switch q.Kind {
	case store.RequestCancel:
		e.Action, e.Reason = store.AuditCancel, CancelReason(q.Actor)
		err = d.Cancel(ctx, q.Pipeline, q.BuildID, e.Reason)
	case store.RequestApprove, store.RequestReject:
		e.Action, e.Reason = store.AuditApprove, q.Comment
		if q.Kind == store.RequestReject {
			e.Action = store.AuditReject
		}
		err = d.Answer(ctx, q.Pipeline, q.BuildID, policy.Answer{Actor: q.Actor, Approve: q.Kind == store.RequestApprove,
			Comment: q.Comment, At: q.Created})
	default:
		err = errors.New("unknown kind of request " + string(q.Kind))
	}
	outcome, detail := requestOutcome(err), ""
	if err != nil {
		detail = err.Error()
	} else if _, aerr := reqs.RecordAudit(context.WithoutCancel(ctx), e); aerr != nil {
		// As on a local call: it was done, but the caller learns it went unrecorded.
		outcome, detail = store.RequestFailed, "done, but the audit log did not record it: "+aerr.Error()
	}
	log.WithField("outcome", outcome).Info("request from another process handled")
	if err := reqs.FinishRunRequest(context.WithoutCancel(ctx), q, outcome, detail); err != nil {
		log.WithError(err).Error("record the outcome of a request from another process")
	}
}

// requestOutcome is the recorded outcome of Cancel's or Answer's error.
func requestOutcome(err error) store.RequestOutcome {
	switch {
	case err == nil:
		return store.RequestDone
	case errors.Is(err, ErrNotActive):
		return store.RequestNotActive
	case errors.Is(err, ErrNotAwaiting):
		return store.RequestNotAwaiting
	case errors.Is(err, policy.ErrNotApprover):
		return store.RequestNotApprover
	case errors.Is(err, policy.ErrApproversUnknown):
		return store.RequestApproversUnknown
	}
	return store.RequestFailed
}
