package store

import (
	"context"
	"database/sql"
	"slices"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/test/testenv"
)

// waitChanges waits until sink has heard want (in order, nothing else), or fails.
func waitChanges(t *testing.T, sink *recordingSink, want []Change) {
	t.Helper()
	var got []Change
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		got = append(got, sink.take()...)
		if len(got) >= len(want) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // an echo or a double would arrive by now
	got = append(got, sink.take()...)
	if !slices.Equal(got, want) {
		t.Fatalf("changes heard:\n got %v\nwant %v", got, want)
	}
}

// Two processes on one PostgreSQL database (here two handles, each with its own pool and
// LISTEN connection) hear each other's committed writes, each its own exactly once; a
// handle on another schema hears neither. Run in both passes: the relay is PostgreSQL's.
func TestChangeRelayAcrossHandles(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	ctx := testCtx(t)
	sinkA, sinkB, sinkOther := &recordingSink{}, &recordingSink{}, &recordingSink{}
	a, err := OpenPostgres(ctx, dsn, WithChangeSink(sinkA))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	b, err := OpenPostgres(ctx, dsn, WithChangeSink(sinkB))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	other, err := OpenPostgres(ctx, testenv.PostgresSchema(t), WithChangeSink(sinkOther))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })
	// A writer without a sink (`slipway run` beside the daemon) is heard too.
	cli, err := OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })

	// Each write is waited for before the next: a handle hears its own writes at once and
	// the others' through NOTIFY, so the order across handles is not given.
	heardByBoth := func(c Change) {
		t.Helper()
		waitChanges(t, sinkA, []Change{c})
		waitChanges(t, sinkB, []Change{c})
	}
	run := mustRun(t, a, testPipeline)
	created := Change{Kind: ChangeRun, Pipeline: testPipeline, BuildID: run.BuildID}
	heardByBoth(created)
	if err := b.AppendLogs(ctx, testPipeline, run.BuildID, "web", []LogLine{{Text: "hi"}}); err != nil {
		t.Fatal(err)
	}
	heardByBoth(Change{Kind: ChangeLogs, Pipeline: testPipeline, BuildID: run.BuildID, Task: "web"})
	if _, err := cli.TransitionRun(ctx, testPipeline, run.BuildID, RunQueued, RunRunning, ""); err != nil {
		t.Fatal(err)
	}
	heardByBoth(created)
	if got := sinkOther.take(); len(got) != 0 {
		t.Fatalf("a store in another schema heard %v", got)
	}

	// A failed write sends nothing.
	if _, err := a.TransitionRun(ctx, testPipeline, run.BuildID, RunQueued, RunCancelled, ""); err == nil {
		t.Fatal("a move from the wrong status succeeded")
	}
	waitChanges(t, sinkB, nil)
}

// When its LISTEN connection is cut, a store connects again and hears later changes.
func TestChangeRelayReconnects(t *testing.T) {
	ctx := testCtx(t)
	sink, listener, writer := listenerAndWriter(ctx, t)

	cutListen(ctx, t, writer, listener)
	// Write until one is heard (a later change, or the resync sent once it listens again).
	deadline := time.Now().Add(30 * time.Second)
	for {
		run := mustRun(t, writer, testPipeline)
		if got := sink.take(); len(got) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no change heard after the LISTEN connection was cut (last BUILD_ID %d)", run.BuildID)
		}
		time.Sleep(200 * time.Millisecond)
	}
	waitReconnected(ctx, t, writer.writer, listener.relay.channel)
}

// listenerAndWriter opens two stores on a fresh schema: one that listens into the sink it
// returns, and one to write through.
func listenerAndWriter(ctx context.Context, t *testing.T) (*recordingSink, *DB, *DB) {
	t.Helper()
	dsn := testenv.PostgresSchema(t)
	sink := &recordingSink{}
	listener, err := OpenPostgres(ctx, dsn, WithChangeSink(sink))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = listener.Close() })
	writer, err := OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = writer.Close() })
	return sink, listener, writer
}

// cutListen terminates listener's LISTEN connection through writer's.
func cutListen(ctx context.Context, t *testing.T, writer, listener *DB) {
	t.Helper()
	var n int
	if err := writer.writer.QueryRowContext(ctx, `
		SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE query = 'LISTEN ' || $1`, listener.relay.channel).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d LISTEN connections cut (%v), want 1", n, err)
	}
}

// waitReconnected checks one LISTEN connection is back on channel.
func waitReconnected(ctx context.Context, t *testing.T, db *sql.DB, channel string) {
	t.Helper()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM pg_stat_activity WHERE query = 'LISTEN ' || $1`,
		channel).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d LISTEN connections on %s after the reconnect, want 1", n, channel)
	}
}

// Notifications sent while the LISTEN connection is down are lost, so once it is back
// the store hands its sink a resync: the follower re-reads and finds the write made while
// it was away, with no further write to wake it.
func TestChangeRelayResyncsAfterReconnect(t *testing.T) {
	ctx := testCtx(t)
	sink, listener, writer := listenerAndWriter(ctx, t)

	cutListen(ctx, t, writer, listener)
	// One write, at once: the listener is down or about to notice it is.
	run := mustRun(t, writer, testPipeline)
	deadline := time.Now().Add(30 * time.Second)
	for !slices.Contains(sink.take(), Change{Kind: ChangeResync}) {
		if time.Now().After(deadline) {
			t.Fatal("no resync after the LISTEN connection came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitReconnected(ctx, t, writer.writer, listener.relay.channel)
	// What the woken follower reads.
	if got, err := listener.GetRun(ctx, testPipeline, run.BuildID); err != nil || got.Status != RunQueued {
		t.Fatalf("the follower's re-read: %+v, %v", got, err)
	}
}
