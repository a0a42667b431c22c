package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime/trace"
	"sync"
)

// maxGroup bounds how many writes share one transaction: the writer connection is held
// for the whole group, and a reader's snapshot cannot see any of it before the commit.
const maxGroup = 128

// groupCommit commits the writes of concurrent callers together on SQLite. With
// synchronous=FULL every commit is an fsync (milliseconds on most disks), and all writes
// queue for the one writer connection: a thousand runs each recording a dozen steps would
// otherwise wait for each other's fsyncs in turn. The first caller to find no group being
// written becomes the leader and writes every waiting caller's fn, each inside a savepoint
// of its own, in one BEGIN IMMEDIATE transaction; a fn that fails is rolled back to its
// savepoint alone and its caller gets the error, the others commit. If the group as a whole
// cannot be written (the lock is busy, SQLite rolled the whole transaction back, the
// commit failed), each fn of it is written again in a transaction of its own, exactly as
// without grouping, so no caller sees an error another caused.
type groupCommit struct {
	db      *DB
	mu      sync.Mutex
	pending []*groupWrite
	leading bool
}

type groupWrite struct {
	ctx  context.Context
	fn   func(tx *sql.Tx) error
	err  error
	done chan struct{}
}

// write queues fn and returns once it is committed or has failed. The caller waits even if
// its ctx ends meanwhile: a fn already in a group may still commit, and the caller must
// not be told otherwise; a fn not yet started when its ctx ended is not run.
func (g *groupCommit) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	w := &groupWrite{ctx: ctx, fn: fn, done: make(chan struct{})}
	g.mu.Lock()
	g.pending = append(g.pending, w)
	lead := !g.leading
	g.leading = true
	g.mu.Unlock()
	if lead {
		g.lead()
	}
	<-w.done
	return w.err
}

// lead writes groups until nobody waits.
func (g *groupCommit) lead() {
	for {
		g.mu.Lock()
		n := min(len(g.pending), maxGroup)
		if n == 0 {
			g.leading = false
			g.mu.Unlock()
			return
		}
		batch := g.pending[:n:n]
		g.pending = g.pending[n:]
		g.mu.Unlock()
		g.commit(batch)
	}
}

// commit writes one group and tells each of its callers how its write went.
func (g *groupCommit) commit(batch []*groupWrite) {
	var live []*groupWrite
	for _, w := range batch {
		if err := w.ctx.Err(); err != nil {
			w.err = err
			close(w.done)
			continue
		}
		live = append(live, w)
	}
	if len(live) == 0 {
		return
	}
	if len(live) == 1 {
		w := live[0]
		trace.Log(w.ctx, "store", "group of 1")
		w.err = g.db.writeWith(w.ctx, g.db.dialect.writeTx(), w.fn)
		close(w.done)
		return
	}
	if err := g.writeGroup(live); err != nil {
		// One at a time, as without grouping; the errors are each fn's own.
		for _, w := range live {
			w.err = g.db.writeWith(w.ctx, g.db.dialect.writeTx(), w.fn)
		}
	}
	for _, w := range live {
		close(w.done)
	}
}

// writeGroup writes the group in one transaction, each fn in a savepoint; the fns' own
// errors are set on them. An error returned means nothing of the group was committed.
func (g *groupCommit) writeGroup(batch []*groupWrite) error {
	// The group's transaction is nobody's alone: no caller's cancellation ends it.
	ctx := context.WithoutCancel(batch[0].ctx)
	// A region per group and per commit in an execution trace (free when none is taken):
	// where a write's wait goes, the group it joined or its fsync.
	defer trace.StartRegion(ctx, "store.group").End()
	trace.Logf(ctx, "store", "group of %d", len(batch))
	tx, err := g.db.writer.BeginTx(ctx, g.db.dialect.writeTx())
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	for _, w := range batch {
		if _, err := tx.ExecContext(ctx, `SAVEPOINT slipway_write`); err != nil {
			_ = tx.Rollback()
			return err
		}
		w.err = w.fn(tx)
		if w.err != nil {
			if g.db.dialect.retryable(w.err) {
				// Busy inside a group: let every fn retry on its own.
				_ = tx.Rollback()
				return w.err
			}
			if _, err := tx.ExecContext(ctx, `ROLLBACK TO slipway_write`); err != nil {
				_ = tx.Rollback()
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `RELEASE slipway_write`); err != nil {
			_ = tx.Rollback()
			return err
		}
	}
	commit := trace.StartRegion(ctx, "store.commit")
	err = tx.Commit()
	commit.End()
	if err != nil {
		return errors.Join(fmt.Errorf("commit: %w", err), tx.Rollback())
	}
	g.db.commits.Add(1)
	for _, w := range batch {
		if w.err == nil {
			g.db.writes.Add(1)
		}
	}
	return nil
}
