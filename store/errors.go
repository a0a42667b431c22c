package store

import (
	"errors"
	"fmt"
)

// ErrNotFound is returned (wrapped) when the pipeline, run, task or revision asked for
// does not exist.
var ErrNotFound = errors.New("not found")

// ErrAlreadyExists is returned (wrapped) when a task or revision with the same key was
// already recorded for the run.
var ErrAlreadyExists = errors.New("already exists")

// ErrIllegalTransition is what a TransitionError wraps when the move itself is never
// allowed, whatever the current state (for example succeeded → running).
var ErrIllegalTransition = errors.New("illegal status transition")

// ErrStatusConflict is what a TransitionError wraps when the move would be legal but the
// record is no longer in the expected state: someone else moved it first.
var ErrStatusConflict = errors.New("status changed concurrently")

// TransitionError reports a refused compare-and-set status change. Callers test it with
// errors.Is(err, ErrIllegalTransition) or errors.Is(err, ErrStatusConflict), or
// errors.As to read the states.
type TransitionError struct {
	What    string // "run org/app:deploy #7", "task build of run ...", "revision ..."
	From    string // the state the caller expected
	To      string // the state the caller asked for
	Illegal bool   // From → To is never allowed; the record was not read
	Current string // when !Illegal: the state the record is actually in
}

func (e *TransitionError) Error() string {
	if e.Illegal {
		return fmt.Sprintf("%s: %s → %s is not allowed", e.What, e.From, e.To)
	}
	return fmt.Sprintf("%s: cannot move %s → %s: it is %s now", e.What, e.From, e.To, e.Current)
}

// Unwrap lets errors.Is tell an illegal move from a lost race.
func (e *TransitionError) Unwrap() error {
	if e.Illegal {
		return ErrIllegalTransition
	}
	return ErrStatusConflict
}
