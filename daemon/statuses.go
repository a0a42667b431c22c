package daemon

import (
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/policy"
	"github.com/slipwayhq/slipway/reconciler/forgestatus"
	"github.com/slipwayhq/slipway/sources/forge"
)

// ForgeClients makes the forge client of every repository with a forge block, by
// repository name. A token file that cannot be read stops the caller at start, like a
// webhook secret.
func ForgeClients(cfg *config.Config) (map[string]forge.Client, error) {
	clients := map[string]forge.Client{}
	for _, r := range cfg.Repositories {
		if r.Forge == nil {
			continue
		}
		// Few, short attempts per call: the status reporter retries with its own, longer
		// backoff, and a gate that cannot read the forge says so in its reason.
		c, err := forge.New(r, forge.Options{Attempts: 2, Timeout: 15 * time.Second})
		if err != nil {
			return nil, err
		}
		clients[r.Name] = c
	}
	return clients, nil
}

// UseForges makes the runners made from now on check pull-request approvals through these
// forge clients (ForgeClients).
func (d *Parts) UseForges(clients map[string]forge.Client) {
	d.forges = clients
}

// mergeSettle is how long the gate asks again for the pull request of a commit the forge
// names none for yet (policy.Gate.Settle): a direct push waits this long at a gate.
const mergeSettle = 4 * time.Second

// gate is the runner's stage gate over the forges set by UseForges.
func (d *Parts) gate() policy.Gate {
	clients := d.forges
	return policy.Gate{Forges: func(repository string) (policy.Reviews, bool) {
		c, ok := clients[repository]
		return c, ok
	}, Settle: mergeSettle}
}

// forgeStatuses makes the reporter that sets a commit status for every run of the
// repositories with a forge client.
func forgeStatuses(clients map[string]forge.Client, runs forgestatus.Runs, log *logrus.Entry) *forgestatus.Reporter {
	setters := make(map[string]forgestatus.Setter, len(clients))
	for name, c := range clients {
		setters[name] = c
	}
	return forgestatus.New(forgestatus.Options{Runs: runs, Forges: setters, Log: log})
}
