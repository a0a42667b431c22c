package trigger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/slipwayhq/slipway/policy"
	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/store"
)

// RunRequester leaves requests for the process holding a run and reads their outcome;
// the store is one.
type RunRequester interface {
	RequestRun(ctx context.Context, nr store.NewRunRequest) (store.RunRequest, error)
	GetRunRequest(ctx context.Context, id int64) (store.RunRequest, error)
}

// defaultRelayWait is how long a relayed request waits for its holder's outcome: the
// holder is woken at once through the store's change relay, or within its poll (2 s).
const defaultRelayWait = 5 * time.Second

// relayPoll is how often the outcome is read while waiting.
const relayPoll = 100 * time.Millisecond

// PendingError says a relayed request was recorded but its holder had not taken it and
// answered within the wait. It is still pending: the holder acts on it when it takes it,
// and it ends with the run otherwise (the run ends, or is marked interrupted).
type PendingError struct {
	Request store.RunRequest
	Wait    time.Duration
}

func (e *PendingError) Error() string {
	return fmt.Sprintf("%s #%d is held by another Slipway process (%s), which did not answer request %d within %s; it is still pending",
		e.Request.Pipeline.Name, e.Request.BuildID, e.Request.Holder, e.Request.ID, e.Wait)
}

// RelayedError is the refusal of a relayed request by the process holding the run. It
// wraps the error that process's engine gave (reconciler.ErrNotActive, ErrNotAwaiting,
// policy.ErrNotApprover, policy.ErrApproversUnknown, store.ErrRunEnded), so callers tell
// them apart as they would a local call's.
type RelayedError struct {
	Request store.RunRequest
	err     error
}

func (e *RelayedError) Error() string {
	return fmt.Sprintf("%s %s #%d: %s", e.Request.Kind, e.Request.Pipeline.Name, e.Request.BuildID, e.Request.Detail)
}

func (e *RelayedError) Unwrap() error { return e.err }

// relay records nr for the process holding the run and waits, up to the hub's relay
// wait, for its outcome: nil once done, a *RelayedError for a refusal, a *PendingError if
// the holder did not answer in time. local is why this process could not act itself
// (reconciler.ErrNotActive); a run that has ended is refused with both.
func (h *Hub) relay(ctx context.Context, local error, nr store.NewRunRequest) error {
	q, err := h.requests.RequestRun(ctx, nr)
	if errors.Is(err, store.ErrRunEnded) {
		return fmt.Errorf("%w; %w", local, err)
	}
	if err != nil {
		return err
	}
	wait := h.relayWait
	if wait <= 0 {
		wait = defaultRelayWait
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(relayPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return &PendingError{Request: q, Wait: wait}
		case <-deadline.C:
			return &PendingError{Request: q, Wait: wait}
		case <-tick.C:
		}
		cur, err := h.requests.GetRunRequest(ctx, q.ID)
		if err != nil {
			if ctx.Err() != nil {
				return &PendingError{Request: q, Wait: wait}
			}
			return err
		}
		if cur.Outcome != store.RequestPending {
			return relayOutcome(cur)
		}
	}
}

// relayOutcome is the error a finished request's outcome stands for.
func relayOutcome(q store.RunRequest) error {
	var err error
	switch q.Outcome {
	case store.RequestDone:
		return nil
	case store.RequestNotActive:
		err = reconciler.ErrNotActive
	case store.RequestNotAwaiting:
		err = reconciler.ErrNotAwaiting
	case store.RequestNotApprover:
		err = policy.ErrNotApprover
	case store.RequestApproversUnknown:
		err = policy.ErrApproversUnknown
	case store.RequestRunEnded:
		err = store.ErrRunEnded
	default:
		err = errors.New(string(q.Outcome))
	}
	return &RelayedError{Request: q, err: err}
}
