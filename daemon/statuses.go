package daemon

import (
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/reconciler/forgestatus"
	"github.com/slipwayhq/slipway/sources/forge"
)

// forgeStatuses makes the reporter that sets a commit status for every run of the
// repositories with a forge block. A token file that cannot be read stops the daemon at
// start, like a webhook secret.
func forgeStatuses(cfg *config.Config, runs forgestatus.Runs, log *logrus.Entry) (*forgestatus.Reporter, error) {
	setters := map[string]forgestatus.Setter{}
	for _, r := range cfg.Repositories {
		if r.Forge == nil {
			continue
		}
		// Few, short attempts per send: the reporter retries with its own, longer backoff.
		c, err := forge.New(r, forge.Options{Attempts: 2, Timeout: 15 * time.Second})
		if err != nil {
			return nil, err
		}
		setters[r.Name] = c
	}
	return forgestatus.New(forgestatus.Options{Runs: runs, Forges: setters, Log: log}), nil
}
