package config

import (
	"fmt"
	"net/url"
	"os"
	"time"
)

// HA makes this daemon one of several replicas sharing the repositories: each replica
// keeps a Kubernetes Lease alive, and each repository is watched by exactly one of them
// (reconciler/replicas). The meanings of the three durations are client-go leaderelection's.
type HA struct {
	Cluster       string   `yaml:"cluster" required:"true" doc:"The configured cluster (clusters[].name) that holds the Leases."`
	Namespace     string   `yaml:"namespace" required:"true" doc:"The namespace of the Leases; the daemon needs get, list, create, update and delete on coordination.k8s.io leases there."`
	LeaseDuration Duration `yaml:"leaseDuration,omitempty" default:"13s" doc:"How long a Lease not renewed stays valid: a dead replica's repositories move to others within it. More than renewDeadline + retryPeriod."`
	RenewDeadline Duration `yaml:"renewDeadline,omitempty" default:"10s" doc:"How long a replica keeps a repository's watcher running without renewing its Lease; it stops it then, before another may take over. Less than leaseDuration."`
	RetryPeriod   Duration `yaml:"retryPeriod,omitempty" default:"2s" doc:"How often a replica lists the Leases, renews its own and takes or gives up repositories. Less than renewDeadline."`
	Identity      string   `yaml:"identity,omitempty" doc:"This replica's name in the Leases, unique among replicas. Default: the POD_NAME environment variable, else HOSTNAME-PID."`
}

// ReplicaIdentity is the name this replica uses in the Leases: identity, else POD_NAME,
// else the host name and process id.
func (h *HA) ReplicaIdentity() string {
	if h.Identity != "" {
		return h.Identity
	}
	if pod := os.Getenv("POD_NAME"); pod != "" {
		return pod
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "slipway"
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

// ha checks the ha block: a postgres store (the replicas share it), a configured cluster,
// a namespace, and durations in client-go's order.
func (k checker) ha(clusters map[string]bool) {
	h := k.c.HA
	if h == nil {
		return
	}
	if u, err := url.Parse(k.c.Store); k.c.Store == "" || err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		k.at("ha", "ha needs a postgres:// store shared by the replicas (store is %q); an SQLite file cannot be shared", orDefault(k.c.Store, "sqlite://DATADIR/slipway.db"))
	}
	// Each replica's data folder is its own: keys kept there by default would differ.
	if len(k.c.StoreKeyFiles) == 0 {
		k.at("ha", "ha needs storeKeyFiles: every replica must decrypt the revisions the others stored, so the keys come from shared files (a Secret), not each replica's DATADIR/store.key")
	}
	if k.c.UISessionKeyFile == "" {
		k.at("ha", "ha needs uiSessionKeyFile: a web console session signed in on one replica must hold on the others, so the key comes from a shared file (a Secret), not each replica's DATADIR/ui-session.key")
	}
	if h.Cluster != "" && !clusters[h.Cluster] {
		k.at("ha.cluster", "ha.cluster %q is not in clusters", h.Cluster)
	}
	if h.Namespace != "" && !dnsLabel.MatchString(h.Namespace) {
		k.at("ha.namespace", "ha.namespace %q is not a namespace name (DNS-1123 label)", h.Namespace)
	}
	if h.Identity != "" && !dnsLabel.MatchString(h.Identity) {
		k.at("ha.identity", "ha.identity %q must be a DNS-1123 label, such as a pod name", h.Identity)
	}
	lease, renew, retry := h.LeaseDuration.Duration, h.RenewDeadline.Duration, h.RetryPeriod.Duration
	switch {
	case retry < 100*time.Millisecond:
		k.at("ha.retryPeriod", "ha.retryPeriod %s must be at least 100ms", retry)
	case renew <= retry:
		k.at("ha.renewDeadline", "ha.renewDeadline %s must be more than ha.retryPeriod %s", renew, retry)
	case lease <= renew:
		k.at("ha.leaseDuration", "ha.leaseDuration %s must be more than ha.renewDeadline %s", lease, renew)
	case renew+retry >= lease:
		// A timer stops a replica's work at renewDeadline; its rounds check the deadline
		// too, and even the check of a round alone (renewDeadline + retryPeriod) must
		// come before another may take over.
		k.at("ha.leaseDuration", "ha.leaseDuration %s must be more than ha.renewDeadline + ha.retryPeriod (%s): a replica stops at the latest that long after its last renewal", lease, renew+retry)
	case lease%time.Second != 0:
		k.at("ha.leaseDuration", "ha.leaseDuration %s must be whole seconds (a Lease counts in seconds)", lease)
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
