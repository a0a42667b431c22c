package changefeed

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/store"
)

// ref is the pipeline the tests' runs belong to.
var ref = store.PipelineRef{Repository: "shop", Name: "web"}

// feedStore opens a new store that tells feed of its changes.
func feedStore(t *testing.T) (*Feed, *store.DB) {
	t.Helper()
	feed := New()
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "s.db"), store.WithChangeSink(feed))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return feed, st
}

// queuedRun creates a queued run of ref at commit.
func queuedRun(t *testing.T, st *store.DB, commit string) store.Run {
	t.Helper()
	run, err := st.CreateRun(context.Background(), store.NewRun{Pipeline: ref, Commit: commit, Trigger: store.TriggerManual, Holder: "h"})
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func TestFollowerWokenByCommittedWritesOfItsRun(t *testing.T) {
	ctx := context.Background()
	feed, st := feedStore(t)
	first, other := queuedRun(t, st, "c1"), queuedRun(t, st, "c2")

	wake, stop := feed.Follow(Run(ref, first.BuildID))
	defer stop()
	audit, stopAudit := feed.Follow(Kinds(store.ChangeAudit))
	defer stopAudit()

	if err := st.AppendLogs(ctx, ref, other.BuildID, "", []store.LogLine{{Text: "not mine"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
		t.Fatal("woken by another run's logs")
	default:
	}
	// Two writes before the follower reads merge into one wake-up.
	for _, text := range []string{"a", "b"} {
		if err := st.AppendLogs(ctx, ref, first.BuildID, "", []store.LogLine{{Text: text}}); err != nil {
			t.Fatal(err)
		}
	}
	mustWake(t, wake)
	select {
	case <-wake:
		t.Fatal("two unread changes woke the follower twice")
	default:
	}
	if _, err := st.TransitionRun(ctx, ref, first.BuildID, store.RunQueued, store.RunRunning, ""); err != nil {
		t.Fatal(err)
	}
	mustWake(t, wake)
	if _, err := st.RecordAudit(ctx, store.AuditEntry{Actor: "alice", Action: store.AuditSuspend, Pipeline: ref}); err != nil {
		t.Fatal(err)
	}
	mustWake(t, audit)

	stop()
	if _, err := st.TransitionRun(ctx, ref, first.BuildID, store.RunRunning, store.RunSucceeded, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
		t.Fatal("woken after stop")
	default:
	}
}

// A failed write tells nobody: followers only re-read what committed.
func TestFailedWriteWakesNobody(t *testing.T) {
	ctx := context.Background()
	feed, st := feedStore(t)
	run := queuedRun(t, st, "c1")
	wake, stop := feed.Follow(nil)
	defer stop()
	if _, err := st.TransitionRun(ctx, ref, run.BuildID, store.RunRunning, store.RunSucceeded, ""); err == nil {
		t.Fatal("a run still queued moved from running")
	}
	select {
	case <-wake:
		t.Fatal("a failed transition woke a follower")
	default:
	}
}

func mustWake(t *testing.T, wake <-chan struct{}) {
	t.Helper()
	select {
	case <-wake:
	case <-time.After(time.Second):
		t.Fatal("not woken by a committed change")
	}
}

// A resync (the store's relay was away and may have missed changes) wakes every
// follower, whatever it follows.
func TestResyncWakesEveryFollower(t *testing.T) {
	feed := New()
	run, stopRun := feed.Follow(Run(ref, 1))
	defer stopRun()
	hints, stopHints := feed.Follow(Kinds(store.ChangeHint))
	defer stopHints()
	feed.Changed(store.Change{Kind: store.ChangeLogs, Pipeline: ref, BuildID: 2})
	select {
	case <-run:
		t.Fatal("woken by another run's change")
	case <-hints:
		t.Fatal("woken by a change of another kind")
	default:
	}
	feed.Changed(store.Change{Kind: store.ChangeResync})
	mustWake(t, run)
	mustWake(t, hints)
}
