package records

import (
	"context"
	"time"

	"github.com/slipwayhq/slipway/internal/changefeed"
	"github.com/slipwayhq/slipway/store"
)

// LogStore is what FollowLogs reads.
type LogStore interface {
	GetRun(ctx context.Context, ref store.PipelineRef, buildID int64) (store.Run, error)
	ReadLogs(ctx context.Context, ref store.PipelineRef, buildID int64, q store.LogQuery) ([]store.LogLine, error)
}

// Feed wakes a follower after each committed change match accepts; *changefeed.Feed is one.
type Feed interface {
	Follow(match func(store.Change) bool) (wake <-chan struct{}, stop func())
}

// Follow says which log to follow and from where.
type Follow struct {
	Ref     store.PipelineRef
	BuildID int64
	// AfterID: only lines after this one (the last line ID the follower has; 0: all).
	AfterID int64
	// Tasks limits the lines to these tasks ("" is the run's own lines); empty: all.
	Tasks []string
}

// Emitter receives what FollowLogs finds, in order. An error from it ends the follow.
type Emitter struct {
	// Line is called for each line, in line ID order, each once.
	Line func(Line) error
	// Run, if set, is called with the run whenever its status differs from the last one
	// passed (first with the status it has when following starts, last with the final one).
	Run func(Run) error
}

// followPage is how many lines one read takes, so a long log goes out while it is read.
const followPage = 1000

// FollowLogs sends the run's log lines after f.AfterID to emit as they are written, and
// returns the run once it is final and every line it wrote has been sent, or when ctx
// ends (with ctx's error). It never polls: it reads the store when the feed says the run
// changed. Lines are read after the run's status, so once a final status is read the read
// that follows holds every line.
func FollowLogs(ctx context.Context, st LogStore, feed Feed, f Follow, emit Emitter, now func() time.Time) (store.Run, error) {
	wake, stop := feed.Follow(changefeed.Run(f.Ref, f.BuildID))
	defer stop()
	last := f.AfterID
	var shown store.RunStatus
	for {
		run, err := st.GetRun(ctx, f.Ref, f.BuildID)
		if err != nil {
			return store.Run{}, err
		}
		for {
			lines, err := st.ReadLogs(ctx, f.Ref, f.BuildID, store.LogQuery{Tasks: f.Tasks, AfterID: last, Limit: followPage})
			if err != nil {
				return run, err
			}
			for _, l := range lines {
				if err := emit.Line(LineOf(l)); err != nil {
					return run, err
				}
				last = l.ID
			}
			if len(lines) < followPage {
				break
			}
		}
		if emit.Run != nil && run.Status != shown {
			if err := emit.Run(RunOf(run, now())); err != nil {
				return run, err
			}
			shown = run.Status
		}
		if run.Status.Final() {
			return run, nil
		}
		select {
		case <-ctx.Done():
			return run, ctx.Err()
		case <-wake:
		}
	}
}
