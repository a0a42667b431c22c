package reconciler

import (
	"fmt"

	"github.com/slipwayhq/slipway/store"
)

// SuspendedError refuses a push's or a schedule's run of a suspended pipeline.
type SuspendedError struct{ Pipeline store.Pipeline }

func (e *SuspendedError) Error() string {
	p := e.Pipeline
	msg := fmt.Sprintf("pipeline %s is suspended (by %s at %s", p.Ref.Name, p.SuspendedBy, p.SuspendedAt.Format("2006-01-02T15:04:05Z"))
	if p.SuspendReason != "" {
		msg += ": " + p.SuspendReason
	}
	return msg + "); pushes and schedules start no runs until slipway resume"
}
