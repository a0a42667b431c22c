package daemon

import (
	"fmt"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/internal/changefeed"
	"github.com/slipwayhq/slipway/notify"
	"github.com/slipwayhq/slipway/store"
)

// notifyStore is what the notifier needs of the store: the outbox and the records messages
// are made from.
type notifyStore interface {
	notify.Queue
	notify.Records
}

// newNotifier wires slipway.yaml's notification targets to the store's outbox, woken by
// the change feed; nil when no target is configured. stop ends its change-feed follow.
func (d *Parts) newNotifier(log *logrus.Entry) (n *notify.Notifier, stop func(), err error) {
	cfg := d.Config.Notifications
	if len(cfg.Targets) == 0 {
		return nil, func() {}, nil
	}
	st, ok := d.Store.(notifyStore)
	if !ok {
		return nil, nil, fmt.Errorf("notifications: the store %s keeps no notification outbox", d.Config.Store)
	}
	client := &http.Client{Timeout: notify.DefaultSendTimeout,
		// A redirect would send the signed body somewhere the configuration does not name.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var targets []notify.Target
	for _, t := range cfg.Targets {
		s, err := notify.NewSender(t, client, time.Now)
		if err != nil {
			return nil, nil, err
		}
		targets = append(targets, notify.Target{Config: t, Sender: s})
	}
	wake, stop := d.Changes.Follow(changefeed.Kinds(store.ChangeRun, store.ChangeDrift))
	return notify.New(notify.Options{Queue: st, Records: st, Targets: targets, Retry: cfg.Retry,
		ExternalURL: d.Config.ExternalURL, Wake: wake, Log: log}), stop, nil
}
