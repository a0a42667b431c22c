package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sirupsen/logrus"
)

// On PostgreSQL several processes (replicas, `slipway run`) write the same database, and
// each one's followers (live logs, the web UI, notifications) must hear the others'
// writes. Every write that tells its own sink a Change also sends it with pg_notify in the
// same transaction, so it goes out exactly when the write commits; each process with a
// sink LISTENs on one connection of its own and hands what the others sent to its sink.
// A process hears its own changes directly, as on SQLite, and drops their echo.

// relayPayloadMax keeps a notification under PostgreSQL's 8000-byte limit; a change
// whose names are longer is not relayed (its own process still hears it).
const relayPayloadMax = 7900

// relayBackoff bounds the wait between reconnects of a lost LISTEN connection.
const (
	relayBackoffMin = 100 * time.Millisecond
	relayBackoffMax = 5 * time.Second
)

// relayedChange is a Change on the wire: short keys keep the payload small.
type relayedChange struct {
	Origin     string     `json:"o"`
	Kind       ChangeKind `json:"k"`
	Repository string     `json:"r,omitempty"`
	Name       string     `json:"n,omitempty"`
	BuildID    int64      `json:"b,omitempty"`
	Task       string     `json:"t,omitempty"`
}

// relay is a store's side of the cross-process change relay.
type relay struct {
	channel string // the notification channel, one per schema
	origin  string // this handle's id, to drop the echo of its own changes
	stop    context.CancelFunc
	done    sync.WaitGroup
}

// relayChannel names the channel of the schema: stores in different schemas of one
// database (tests, two installations) do not hear each other.
func relayChannel(schema string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(schema))
	return fmt.Sprintf("slipway_changes_%08x", h.Sum32())
}

// announce sends c to the other processes on the database when tx commits. On SQLite,
// where one file has no other live writers to wake through the database, it does nothing.
func (s *DB) announce(ctx context.Context, tx *sql.Tx, c Change) error {
	if s.relay == nil {
		return nil
	}
	payload, err := json.Marshal(relayedChange{Origin: s.relay.origin, Kind: c.Kind,
		Repository: c.Pipeline.Repository, Name: c.Pipeline.Name, BuildID: c.BuildID, Task: c.Task})
	if err != nil || len(payload) > relayPayloadMax {
		return nil // names too long to relay: the writer's own followers still hear it
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, s.relay.channel, string(payload)); err != nil {
		return fmt.Errorf("relay the change: %w", err)
	}
	return nil
}

// writeChange runs fn in a write transaction that announces c to the other processes when
// it commits, and then tells this process's sink: the one way a write that changes a run,
// task, log, drift event, audit entry or hint lets its followers know.
func (s *DB) writeChange(ctx context.Context, c Change, fn func(tx *sql.Tx) error) error {
	return s.writeChanges(ctx, []Change{c}, fn)
}

// writeChanges is writeChange for a write that changes several things at once (a task's
// last log lines and its end), announced in order.
func (s *DB) writeChanges(ctx context.Context, cs []Change, fn func(tx *sql.Tx) error) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		for _, c := range cs {
			if err := s.announce(ctx, tx, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		for _, c := range cs {
			s.opts.changed(c)
		}
	}
	return err
}

// startRelay sets up the relay of a PostgreSQL store: the channel for announce and, when
// the store has a sink, a LISTEN connection that feeds it. The first LISTEN is made before
// it returns, so a change committed after Open returns is heard.
func (s *DB) startRelay(ctx context.Context, cfg *pgx.ConnConfig) error {
	var schema string
	if err := s.writer.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	r := &relay{channel: relayChannel(schema), origin: hex.EncodeToString(id[:])}
	if s.opts.changes == nil {
		s.relay = r
		return nil
	}
	conn, err := r.listen(ctx, cfg)
	if err != nil {
		return err
	}
	lctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	r.stop = stop
	r.done.Add(1)
	go func() {
		defer r.done.Done()
		r.follow(lctx, cfg, conn, s.opts.changes, s.opts.log)
	}()
	s.relay = r
	return nil
}

// close stops the LISTEN connection, if there is one, and waits for it to end.
func (r *relay) close() {
	if r != nil && r.stop != nil {
		r.stop()
		r.done.Wait()
	}
}

func (r *relay) listen(ctx context.Context, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("relay: connect: %w", err)
	}
	// The channel is relayChannel's [a-z0-9_] name: no quoting needed.
	if _, err := conn.Exec(ctx, `LISTEN `+r.channel); err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("relay: listen: %w", err)
	}
	return conn, nil
}

// follow hands the notifications on conn to sink until ctx ends, reconnecting with
// jittered backoff when the connection is lost. PostgreSQL drops the notifications sent
// while no LISTEN was open, so once it listens again it hands sink a ChangeResync: every
// follower re-reads the store. That is enough, and simpler than a numbered change log
// replayed from the last one seen, because a Change carries no data: followers only
// learn "read again", and they read from where they were (a log cursor, a queue, a
// table of hints), so one wake-up after the gap covers any number of missed changes.
// The resync is sent after LISTEN succeeds, so a write committed between the two is
// either re-read then or notified on the new connection.
func (r *relay) follow(ctx context.Context, cfg *pgx.ConnConfig, conn *pgx.Conn, sink ChangeSink, log logrus.FieldLogger) {
	defer func() {
		if conn != nil {
			_ = conn.Close(context.WithoutCancel(ctx))
		}
	}()
	delay := relayBackoffMin
	for ctx.Err() == nil {
		if conn == nil {
			wait := delay/2 + time.Duration(mrand.Int64N(int64(delay)))
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			c, err := r.listen(ctx, cfg)
			if err != nil {
				delay = min(2*delay, relayBackoffMax)
				log.WithError(err).WithField("retryIn", delay).Debug("store change relay still down")
				continue
			}
			conn, delay = c, relayBackoffMin
			log.Info("store change relay listening again; followers re-read what they missed")
			sink.Changed(Change{Kind: ChangeResync})
		}
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.WithError(err).Warn("store change relay lost its connection; reconnecting")
			_ = conn.Close(context.WithoutCancel(ctx))
			conn = nil
			continue
		}
		var rc relayedChange
		if json.Unmarshal([]byte(n.Payload), &rc) == nil && rc.Origin != r.origin && rc.Kind != "" {
			sink.Changed(Change{Kind: rc.Kind, Pipeline: PipelineRef{Repository: rc.Repository, Name: rc.Name},
				BuildID: rc.BuildID, Task: rc.Task})
		}
	}
}
