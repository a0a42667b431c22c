package reconciler

import (
	"context"
	"fmt"
	"time"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/store"
)

// WindowClosedError is a stage that deploys to an environment whose deploy window is closed,
// with onClosedWindow: fail.
type WindowClosedError struct {
	Environment string
	Why         string
}

func (e *WindowClosedError) Error() string {
	return fmt.Sprintf("environment %s is outside its deploy windows: %s", e.Environment, e.Why)
}

// awaitWindows holds a stage until every environment its tasks deploy to is inside its
// deploy windows. A closed window with onClosedWindow: fail fails the stage; with wait the
// run waits in awaiting_window, visibly, without holding a place among the runs in flight
// or spending its timeout, and looks again when a window may have opened.
func (r *Runner) awaitWindows(ctx context.Context, rc *runContext, st stagePlan, deadline *runDeadline) error {
	if st.stage == nil || rc.pipeline == nil {
		return nil
	}
	var envs []*pipeline.Environment
	for _, t := range st.stage.Tasks {
		if e := rc.pipeline.Environment(t.EnvironmentName()); e != nil && len(e.Windows) > 0 {
			envs = append(envs, e)
		}
	}
	waiting := false
	for {
		var closed *pipeline.Environment
		var ws pipeline.WindowState
		for _, e := range envs {
			if ws = e.WindowAt(time.Now()); !ws.Open {
				closed = e
				break
			}
		}
		if closed == nil {
			if !waiting {
				return nil
			}
			deadline.resume()
			if !rc.state.place.take(ctx, rc.run, false) {
				return ctx.Err()
			}
			rc.log.WithField("stage", st.name).Info("deploy window open: the stage starts")
			return r.setRunStatus(ctx, rc.run, rc.state, store.RunRunning, "")
		}
		if closed.OnClosedWindow == pipeline.ClosedWindowFail {
			if waiting {
				deadline.resume()
			}
			return &WindowClosedError{Environment: closed.Name, Why: ws.Why}
		}
		reason := fmt.Sprintf("stage %s waits for a deploy window of environment %s: %s", st.name, closed.Name, ws.Why)
		if !waiting {
			waiting = true
			rc.state.place.release()
			deadline.pause()
		}
		if err := r.setRunStatus(ctx, rc.run, rc.state, store.RunAwaitingWindow, reason); err != nil {
			deadline.resume()
			return err
		}
		rc.log.WithField("stage", st.name).Info(reason)
		// Look again at the moment the answer may change, and at least every minute (the
		// clock may jump; a window's zone may change its offset).
		wait := min(time.Until(ws.Recheck), time.Minute)
		timer := time.NewTimer(max(wait, 100*time.Millisecond))
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			deadline.resume()
			return ctx.Err()
		}
	}
}
