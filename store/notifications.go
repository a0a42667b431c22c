package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// WithNotifications has the store keep a notification outbox: each run that finishes or
// starts waiting for an approval, and each drift event recorded, also writes a
// NotificationEvent in the same transaction, so the notifier can never miss one (a crash
// between the change and a separate enqueue would lose it). Off, nothing is written.
func WithNotifications() Option { return func(o *options) { o.notifications = true } }

// NotificationKind says what a NotificationEvent is about.
type NotificationKind string

// The kinds of NotificationEvent.
const (
	NotifyRun   NotificationKind = "run"   // a run finished or waits for approval
	NotifyDrift NotificationKind = "drift" // a drift event was recorded
)

// NotificationEvent is a change the notifier has to tell targets about.
type NotificationEvent struct {
	ID       int64
	Kind     NotificationKind
	Pipeline PipelineRef
	BuildID  int64
	// Status is the run's status (NotifyRun) or the drift action (NotifyDrift) when the
	// event was written.
	Status       string
	DriftEventID int64
	CreatedAt    time.Time
}

// NewDelivery is one message for one target, made from an event.
type NewDelivery struct {
	Target  string
	Event   string // run.succeeded, drift.detected, ...
	Message []byte // what every attempt sends, built once
}

// Delivery is a NewDelivery in the queue.
type Delivery struct {
	ID      int64
	EventID int64
	NewDelivery
	State     DeliveryState
	Attempts  int // including the one a claim starts
	LastError string
	CreatedAt time.Time
}

// DeliveryState is where a delivery is.
type DeliveryState string

// The delivery states.
const (
	DeliveryPending DeliveryState = "pending"
	DeliverySent    DeliveryState = "sent"
	DeliveryFailed  DeliveryState = "failed" // given up after the last attempt
)

// notifiesRun reports whether a run moving to status is a notification.
func notifiesRun(status RunStatus) bool { return status.Final() || status == RunAwaitingApproval }

// enqueueRun writes the notification of run (row id) reaching status, in tx.
func (s *DB) enqueueRun(ctx context.Context, tx *sql.Tx, runRowID int64, status RunStatus) error {
	if !s.opts.notifications || !notifiesRun(status) {
		return nil
	}
	_, err := tx.ExecContext(ctx, `
		INSERT INTO notification_events (kind, pipeline_id, build_id, status, created_at)
		SELECT $1, pipeline_id, build_id, $2, $3 FROM runs WHERE id = $4`,
		string(NotifyRun), string(status), s.now(), runRowID)
	if err != nil {
		return fmt.Errorf("enqueue notification: %w", err)
	}
	return nil
}

// enqueueDrift writes the notification of a drift event, in tx.
func (s *DB) enqueueDrift(ctx context.Context, tx *sql.Tx, pipelineRowID, buildID, driftEventID int64, action DriftAction) error {
	if !s.opts.notifications || (action != DriftReported && action != DriftCorrected && action != DriftCorrectionFailed) {
		return nil
	}
	_, err := tx.ExecContext(ctx, `
		INSERT INTO notification_events (kind, pipeline_id, build_id, status, drift_event_id, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`,
		string(NotifyDrift), pipelineRowID, buildID, string(action), driftEventID, s.now())
	if err != nil {
		return fmt.Errorf("enqueue notification: %w", err)
	}
	return nil
}

// UndispatchedEvents returns up to limit events not yet turned into deliveries, oldest first.
func (s *DB) UndispatchedEvents(ctx context.Context, limit int) ([]NotificationEvent, error) {
	var out []NotificationEvent
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `
			SELECT e.id, e.kind, p.repository, p.name, e.build_id, e.status, COALESCE(e.drift_event_id, 0), e.created_at
			FROM notification_events e JOIN pipelines p ON p.id = e.pipeline_id
			WHERE e.dispatched_at IS NULL ORDER BY e.id LIMIT $1`, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e NotificationEvent
			var kind string
			var created int64
			if err := rows.Scan(&e.ID, &kind, &e.Pipeline.Repository, &e.Pipeline.Name, &e.BuildID, &e.Status, &e.DriftEventID, &created); err != nil {
				return err
			}
			e.Kind = NotificationKind(kind)
			e.CreatedAt = fromMicros(sql.NullInt64{Int64: created, Valid: true})
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("read notification events: %w", err)
	}
	return out, nil
}

// DispatchEvent queues the event's deliveries (due at once) and marks it dispatched, in one
// transaction: a crash leaves either both or neither. An event dispatched already (by
// another process) is left as it is.
func (s *DB) DispatchEvent(ctx context.Context, eventID int64, deliveries []NewDelivery) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		now := s.now()
		res, err := tx.ExecContext(ctx, `UPDATE notification_events SET dispatched_at = $1 WHERE id = $2 AND dispatched_at IS NULL`, now, eventID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		for _, d := range deliveries {
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO notification_deliveries (event_id, target, event, message, state, next_at, created_at)
				VALUES ($1, $2, $3, $4, 'pending', $5, $5)`,
				eventID, d.Target, d.Event, string(d.Message), now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("dispatch notification event %d: %w", eventID, err)
	}
	return nil
}

// deliveryColumns is what scanDeliveries reads, in order.
const deliveryColumns = `id, event_id, target, event, message, state, attempts, last_error, created_at`

// scanDeliveries reads and closes rows of deliveryColumns.
func scanDeliveries(rows *sql.Rows) ([]Delivery, error) {
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		var d Delivery
		var msg, state string
		var created int64
		if err := rows.Scan(&d.ID, &d.EventID, &d.Target, &d.Event, &msg, &state, &d.Attempts, &d.LastError, &created); err != nil {
			return nil, err
		}
		d.Message, d.State = []byte(msg), DeliveryState(state)
		d.CreatedAt = fromMicros(sql.NullInt64{Int64: created, Valid: true})
		out = append(out, d)
	}
	return out, rows.Err()
}

// ClaimDeliveries takes up to limit of the target's pending deliveries that are due, oldest
// first, for one attempt each: their attempts go up and they are not due again until lease
// has passed, so a second notifier does not send them meanwhile and a crash mid-attempt
// only delays them.
func (s *DB) ClaimDeliveries(ctx context.Context, target string, lease time.Duration, limit int) ([]Delivery, error) {
	var out []Delivery
	err := s.write(ctx, func(tx *sql.Tx) error {
		now := s.now()
		rows, err := tx.QueryContext(ctx, `
			UPDATE notification_deliveries SET attempts = attempts + 1, next_at = $1
			WHERE id IN (SELECT id FROM notification_deliveries
				WHERE target = $2 AND state = 'pending' AND next_at <= $3 ORDER BY id LIMIT $4)
			RETURNING `+deliveryColumns,
			now+lease.Microseconds(), target, now, limit)
		if err != nil {
			return err
		}
		out, err = scanDeliveries(rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim deliveries of %s: %w", target, err)
	}
	// RETURNING gives no order.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].ID < out[j-1].ID; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, nil
}

// ErrDeliveryNotPending says a delivery was sent or given up already.
var ErrDeliveryNotPending = errors.New("delivery is not pending")

// MarkDeliverySent records that the delivery arrived; it is never sent again.
func (s *DB) MarkDeliverySent(ctx context.Context, id int64) error {
	return s.finishDelivery(ctx, id, `state = 'sent', finished_at = $1, last_error = ''`, s.now())
}

// MarkDeliveryFailed records a failed attempt: the delivery is due again at retryAt, or,
// with giveUp, failed for good.
func (s *DB) MarkDeliveryFailed(ctx context.Context, id int64, reason string, retryAt time.Time, giveUp bool) error {
	if giveUp {
		return s.finishDelivery(ctx, id, `state = 'failed', finished_at = $1, last_error = $2`, s.now(), reason)
	}
	return s.finishDelivery(ctx, id, `next_at = $1, last_error = $2`, toMicros(retryAt), reason)
}

func (s *DB) finishDelivery(ctx context.Context, id int64, set string, args ...any) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE notification_deliveries SET `+set+
			fmt.Sprintf(` WHERE id = $%d AND state = 'pending'`, len(args)+1), append(args, id)...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrDeliveryNotPending
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delivery %d: %w", id, err)
	}
	return nil
}

// NextDeliveryDue returns when the target's earliest pending delivery is due; false when
// it has none.
func (s *DB) NextDeliveryDue(ctx context.Context, target string) (time.Time, bool, error) {
	var next sql.NullInt64
	err := s.read(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT MIN(next_at) FROM notification_deliveries WHERE target = $1 AND state = 'pending'`, target).Scan(&next)
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next delivery of %s: %w", target, err)
	}
	return fromMicros(next), next.Valid, nil
}

// ListDeliveries returns the deliveries of every event, oldest first (tests, operators).
func (s *DB) ListDeliveries(ctx context.Context) ([]Delivery, error) {
	var out []Delivery
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `
			SELECT `+deliveryColumns+` FROM notification_deliveries ORDER BY id`)
		if err != nil {
			return err
		}
		out, err = scanDeliveries(rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	return out, nil
}

// PruneNotifications deletes events dispatched before before whose deliveries all ended
// (sent or given up), with those deliveries.
func (s *DB) PruneNotifications(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
			DELETE FROM notification_events WHERE dispatched_at IS NOT NULL AND dispatched_at < $1
			AND NOT EXISTS (SELECT 1 FROM notification_deliveries d WHERE d.event_id = notification_events.id AND d.state = 'pending')`,
			toMicros(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune notifications: %w", err)
	}
	return n, nil
}

// GetDriftEvent returns one drift event of the pipeline by id, or ErrNotFound (pruned).
func (s *DB) GetDriftEvent(ctx context.Context, ref PipelineRef, id int64) (DriftEvent, error) {
	e := DriftEvent{NewDriftEvent: NewDriftEvent{Pipeline: ref}}
	err := s.read(ctx, func(tx *sql.Tx) error {
		pid, err := pipelineID(ctx, tx, ref)
		if err != nil {
			return err
		}
		o := &e.Object
		var action string
		var changed sql.NullInt64
		var detected int64
		err = tx.QueryRowContext(ctx, `
			SELECT id, build_id, task, cluster, api_group, api_version, kind, namespace, name,
				action, gone, patch, manager, changed_at, detected_at, error
			FROM drift_events WHERE pipeline_id = $1 AND id = $2`, pid, id).Scan(&e.ID, &e.BuildID, &e.Task, &e.Cluster,
			&o.Group, &o.Version, &o.Kind, &o.Namespace, &o.Name, &action, &e.Gone, &e.Patch, &e.Manager, &changed, &detected, &e.Error)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		e.Action = DriftAction(action)
		e.ChangedAt = fromMicros(changed)
		e.DetectedAt = fromMicros(sql.NullInt64{Int64: detected, Valid: true})
		return err
	})
	if err != nil {
		return DriftEvent{}, fmt.Errorf("drift event %d of %s: %w", id, ref, err)
	}
	return e, nil
}
