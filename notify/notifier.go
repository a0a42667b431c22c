package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/store"
)

// Queue is the store's notification outbox.
type Queue interface {
	UndispatchedEvents(ctx context.Context, limit int) ([]store.NotificationEvent, error)
	DispatchEvent(ctx context.Context, eventID int64, deliveries []store.NewDelivery) error
	ClaimDeliveries(ctx context.Context, target string, lease time.Duration, limit int) ([]store.Delivery, error)
	MarkDeliverySent(ctx context.Context, id int64) error
	MarkDeliveryFailed(ctx context.Context, id int64, reason string, retryAt time.Time, giveUp bool) error
	NextDeliveryDue(ctx context.Context, target string) (time.Time, bool, error)
	PruneNotifications(ctx context.Context, before time.Time) (int64, error)
}

// Target is a configured target with its sender.
type Target struct {
	Config config.NotificationTarget
	Sender Sender
}

// Options configure a Notifier.
type Options struct {
	Queue       Queue
	Records     Records
	Targets     []Target
	Retry       config.NotificationRetry
	ExternalURL string
	// Wake receives a value after each committed change that may have written an event
	// (internal/changefeed); Sweep is how often the outbox is read anyway, for events other
	// processes (a CLI run) wrote. <= 0: DefaultSweep.
	Wake  <-chan struct{}
	Sweep time.Duration
	// SendTimeout bounds one attempt; <= 0: DefaultSendTimeout.
	SendTimeout time.Duration
	// Keep is how long finished deliveries are kept; <= 0: DefaultKeep.
	Keep time.Duration
	Now  func() time.Time // nil: time.Now
	Log  *logrus.Entry
}

// Defaults of Options.
const (
	DefaultSweep       = 5 * time.Second
	DefaultSendTimeout = 30 * time.Second
	DefaultKeep        = 7 * 24 * time.Hour
)

// Notifier fans outbox events out to the targets that want them and sends the deliveries.
// Each target has its own sender goroutine, so a slow or failing target never holds up
// another, and none of it holds up a run: runs only write the outbox row.
type Notifier struct {
	o     Options
	kicks map[string]chan struct{}
}

// New makes a notifier; Run starts it.
func New(o Options) *Notifier {
	if o.Sweep <= 0 {
		o.Sweep = DefaultSweep
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = DefaultSendTimeout
	}
	if o.Keep <= 0 {
		o.Keep = DefaultKeep
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	n := &Notifier{o: o, kicks: map[string]chan struct{}{}}
	for _, t := range o.Targets {
		n.kicks[t.Config.Name] = make(chan struct{}, 1)
	}
	return n
}

// lease is how long a claimed delivery is not due again: longer than any attempt, so only
// a crash mid-attempt makes it due again.
func (n *Notifier) lease() time.Duration { return 2*n.o.SendTimeout + 10*time.Second }

// Run dispatches and sends until ctx ends.
func (n *Notifier) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, t := range n.o.Targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.sendLoop(ctx, t)
		}()
	}
	n.dispatchLoop(ctx)
	wg.Wait()
}

func (n *Notifier) dispatchLoop(ctx context.Context) {
	tick := time.NewTicker(n.o.Sweep)
	defer tick.Stop()
	lastPrune := time.Time{}
	for {
		if err := n.Dispatch(ctx); err != nil && ctx.Err() == nil {
			n.o.Log.WithError(err).Warn("notifications: reading the outbox")
		}
		if now := n.o.Now(); now.Sub(lastPrune) > time.Hour {
			lastPrune = now
			if _, err := n.o.Queue.PruneNotifications(ctx, now.Add(-n.o.Keep)); err != nil && ctx.Err() == nil {
				n.o.Log.WithError(err).Warn("notifications: pruning")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-n.o.Wake:
		case <-tick.C:
		}
	}
}

// Dispatch turns every undispatched event into deliveries for the targets that want it,
// and wakes their senders.
func (n *Notifier) Dispatch(ctx context.Context) error {
	for {
		evs, err := n.o.Queue.UndispatchedEvents(ctx, 100)
		if err != nil {
			return err
		}
		for _, e := range evs {
			ds, err := n.deliveries(ctx, e)
			if err != nil {
				return fmt.Errorf("event %d: %w", e.ID, err)
			}
			if err := n.o.Queue.DispatchEvent(ctx, e.ID, ds); err != nil {
				return err
			}
			for _, d := range ds {
				n.kick(d.Target)
			}
		}
		if len(evs) < 100 {
			return nil
		}
	}
}

func (n *Notifier) deliveries(ctx context.Context, e store.NotificationEvent) ([]store.NewDelivery, error) {
	m, err := build(ctx, n.o.Records, n.o.ExternalURL, e)
	if errors.Is(err, errGone) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out []store.NewDelivery
	for _, t := range n.o.Targets {
		if t.Config.Wants(m.Event, m.Repository, m.Pipeline) {
			out = append(out, store.NewDelivery{Target: t.Config.Name, Event: m.Event, Message: body})
		}
	}
	return out, nil
}

func (n *Notifier) kick(target string) {
	select {
	case n.kicks[target] <- struct{}{}:
	default:
	}
}

// sendLoop sends the target's due deliveries, then sleeps until the next is due or a new
// one is queued.
func (n *Notifier) sendLoop(ctx context.Context, t Target) {
	log := n.o.Log.WithField("target", t.Config.Name)
	for {
		wait := n.o.Sweep
		if err := n.SendDue(ctx, t); err != nil && ctx.Err() == nil {
			log.WithError(err).Warn("notifications: reading the queue")
		} else if next, ok, err := n.o.Queue.NextDeliveryDue(ctx, t.Config.Name); err == nil && ok {
			wait = min(max(next.Sub(n.o.Now()), 10*time.Millisecond), n.o.Sweep)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-n.kicks[t.Config.Name]:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// SendDue makes one attempt at each due delivery of the target, oldest first, and records
// each outcome as soon as it is known: a sent delivery is marked before the next is tried.
func (n *Notifier) SendDue(ctx context.Context, t Target) error {
	log := n.o.Log.WithField("target", t.Config.Name)
	for {
		ds, err := n.o.Queue.ClaimDeliveries(ctx, t.Config.Name, n.lease(), 20)
		if err != nil || len(ds) == 0 {
			return err
		}
		for _, d := range ds {
			var m Message
			err := json.Unmarshal(d.Message, &m)
			if err == nil {
				sctx, cancel := context.WithTimeout(ctx, n.o.SendTimeout)
				err = t.Sender.Send(sctx, m, d.Message)
				cancel()
			}
			fields := logrus.Fields{"event": d.Event, "delivery": d.ID, "attempt": d.Attempts}
			// The outcome is recorded even as the daemon stops: the attempt happened.
			rctx := context.WithoutCancel(ctx)
			if err == nil {
				if merr := n.o.Queue.MarkDeliverySent(rctx, d.ID); merr != nil {
					return merr
				}
				log.WithFields(fields).Info("notification sent")
				continue
			}
			giveUp := d.Attempts >= n.o.Retry.MaxAttempts
			retryAt := n.o.Now().Add(n.o.Retry.Backoff(d.Attempts))
			if merr := n.o.Queue.MarkDeliveryFailed(rctx, d.ID, err.Error(), retryAt, giveUp); merr != nil {
				return merr
			}
			if giveUp {
				log.WithFields(fields).WithError(err).Error("notification given up")
			} else {
				log.WithFields(fields).WithError(err).WithField("retry_at", retryAt.Format(time.RFC3339)).Warn("notification failed; will retry")
			}
			if ctx.Err() != nil {
				return nil
			}
		}
	}
}
