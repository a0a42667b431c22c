package replicas

import (
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Member is one live replica as the last LIST showed it.
type Member struct {
	Identity     string    `json:"identity"`
	Self         bool      `json:"self"`
	RenewTime    time.Time `json:"renewTime"`
	Expires      time.Time `json:"expires"`
	Repositories []string  `json:"repositories"`
}

// Status is who owns what, as this replica last saw it.
type Status struct {
	Identity string   `json:"identity"`
	Members  []Member `json:"members"`
	// Unowned are the repositories no live replica holds right now (during a move).
	Unowned []string `json:"unowned"`
}

// Owns reports whether this replica holds the repository's shard.
func (c *Coordinator) Owns(repository string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.held[ShardOf(repository)]
	return ok
}

// Owned are the repositories this replica works on, sorted.
func (c *Coordinator) Owned() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for s := range c.held {
		out = append(out, c.shards[s]...)
	}
	sort.Strings(out)
	return out
}

// Status reports the members and what each owns, from the last LIST (and this replica's
// own Leases, which it knows first-hand).
func (c *Coordinator) Status() Status {
	now := c.o.Now()
	c.mu.Lock()
	seen := c.seen
	member := c.member
	heldShards := map[int]bool{}
	for s := range c.held {
		heldShards[s] = true
	}
	c.mu.Unlock()
	members := map[string]*Member{}
	if member != nil && !expired(member, now) {
		members[c.o.Identity] = &Member{Identity: c.o.Identity, Self: true, RenewTime: member.Spec.RenewTime.Time, Expires: expiry(member)}
	}
	for i := range seen {
		l := &seen[i]
		if l.Labels[labelRole] == roleMember && holder(l) != "" && holder(l) != c.o.Identity && !expired(l, now) {
			members[holder(l)] = &Member{Identity: holder(l), RenewTime: l.Spec.RenewTime.Time, Expires: expiry(l)}
		}
	}
	owner := map[int]string{}
	for i := range seen {
		l := &seen[i]
		if s, ok := shardOf(l); ok && holder(l) != "" && !expired(l, now) {
			owner[s] = holder(l)
		}
	}
	for s, o := range owner {
		if o == c.o.Identity && !heldShards[s] {
			delete(owner, s) // given up since the LIST
		}
	}
	for s := range heldShards {
		owner[s] = c.o.Identity
	}
	st := Status{Identity: c.o.Identity, Members: []Member{}, Unowned: []string{}}
	for s, repos := range c.shards {
		m := members[owner[s]]
		if m == nil {
			st.Unowned = append(st.Unowned, repos...)
			continue
		}
		m.Repositories = append(m.Repositories, repos...)
	}
	for _, m := range members {
		if m.Repositories == nil {
			m.Repositories = []string{}
		}
		sort.Strings(m.Repositories)
		st.Members = append(st.Members, *m)
	}
	sort.Slice(st.Members, func(i, j int) bool { return st.Members[i].Identity < st.Members[j].Identity })
	sort.Strings(st.Unowned)
	return st
}

var (
	ownedDesc   = prometheus.NewDesc("slipway_replica_repositories_owned", "Repositories this replica watches (holds the Lease of their shard).", nil, nil)
	membersDesc = prometheus.NewDesc("slipway_replica_members", "Live replicas, as this replica last listed their Leases.", nil, nil)
)

// Describe implements prometheus.Collector.
func (c *Coordinator) Describe(ch chan<- *prometheus.Desc) {
	ch <- ownedDesc
	ch <- membersDesc
}

// Collect implements prometheus.Collector.
func (c *Coordinator) Collect(ch chan<- prometheus.Metric) {
	st := c.Status()
	ch <- prometheus.MustNewConstMetric(ownedDesc, prometheus.GaugeValue, float64(len(c.Owned())))
	ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(len(st.Members)))
}
