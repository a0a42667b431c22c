package replicas

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"
	coordv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Shards is how many Leases the repositories are spread over: enough that three to ten
// replicas get even shares, few enough that renewing them stays cheap.
const Shards = 32

// Lease labels: the one LIST selects on them.
const (
	labelManagedBy = "app.kubernetes.io/managed-by"
	labelRole      = "slipway.dev/lease"
	roleMember     = "member"
	roleShard      = "shard"
)

// Leases is the part of client-go's namespaced Lease client the coordinator uses.
type Leases interface {
	List(ctx context.Context, opts metav1.ListOptions) (*coordv1.LeaseList, error)
	Create(ctx context.Context, l *coordv1.Lease, opts metav1.CreateOptions) (*coordv1.Lease, error)
	Update(ctx context.Context, l *coordv1.Lease, opts metav1.UpdateOptions) (*coordv1.Lease, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
}

// Work is what a replica runs for the repositories it owns.
type Work interface {
	// Own starts the repository's work on this replica, under ctx (the coordinator's).
	Own(ctx context.Context, repository string)
	// Disown stops it and returns once it has stopped.
	Disown(ctx context.Context, repository string)
}

// Options configure a Coordinator.
type Options struct {
	Leases        Leases
	Identity      string
	Repositories  []string
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
	Work          Work
	Log           *logrus.Entry
	// Now is the clock (nil: time.Now); tests move it.
	Now func() time.Time
}

// Coordinator keeps this replica's membership Lease and the shard Leases it wins.
type Coordinator struct {
	o      Options
	shards map[int][]string // repositories by shard

	// work orders Own and Disown with the changes to held, which the rounds and the
	// deadline watch make from two goroutines.
	work sync.Mutex
	// took tells the deadline watch that a shard was taken: a deadline to watch.
	took chan struct{}

	mu      sync.Mutex
	held    map[int]*coordv1.Lease // shard Leases held, as last written
	renewed map[int]time.Time      // when each held Lease was last renewed
	member  *coordv1.Lease         // our membership Lease, as last written
	seen    []coordv1.Lease        // the last LIST
}

// New makes a coordinator; Run runs it.
func New(o Options) (*Coordinator, error) {
	if o.Identity == "" || o.Leases == nil || o.Work == nil {
		return nil, errors.New("replicas: identity, leases and work must be set")
	}
	if !(o.RetryPeriod > 0 && o.RetryPeriod < o.RenewDeadline && o.RenewDeadline < o.LeaseDuration) {
		return nil, fmt.Errorf("replicas: need 0 < retryPeriod (%s) < renewDeadline (%s) < leaseDuration (%s)", o.RetryPeriod, o.RenewDeadline, o.LeaseDuration)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	c := &Coordinator{o: o, shards: map[int][]string{}, held: map[int]*coordv1.Lease{}, renewed: map[int]time.Time{},
		took: make(chan struct{}, 1)}
	for _, r := range o.Repositories {
		s := ShardOf(r)
		c.shards[s] = append(c.shards[s], r)
	}
	return c, nil
}

// ShardOf is the shard a repository belongs to.
func ShardOf(repository string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(repository))
	return int(h.Sum32() % Shards)
}

// Choose is the member rendezvous hashing gives shard: the one with the highest score.
// Every replica computes the same answer from the same members.
func Choose(shard int, members []string) string {
	best, bestScore := "", uint64(0)
	for _, m := range members {
		h := fnv.New64a()
		_, _ = h.Write([]byte(strconv.Itoa(shard) + "/" + m))
		if s := h.Sum64(); best == "" || s > bestScore || (s == bestScore && m < best) {
			best, bestScore = m, s
		}
	}
	return best
}

// LeaseName is the name of the Lease whose holder watches the repository.
func LeaseName(repository string) string { return shardLeaseName(ShardOf(repository)) }

func memberLeaseName(identity string) string { return "slipway-replica-" + identity }
func shardLeaseName(shard int) string        { return fmt.Sprintf("slipway-shard-%02d", shard) }

// Run takes part until ctx ends, then stops the owned repositories' work and gives up the
// Leases so the other replicas take over at once.
func (c *Coordinator) Run(ctx context.Context) {
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		c.watchDeadlines(ctx)
	}()
	for {
		wait := c.tick(ctx)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			<-watched
			c.leave()
			return
		case <-t.C:
		}
	}
}

// watchDeadlines stops a shard's work the moment its renewDeadline passes, apart from the
// rounds: a round waits on the API server, which may be slow or hang, and the work must
// stop before leaseDuration whatever it does. A renewal only moves a deadline later, so
// sleeping until the earliest one known is never too long; a shard taken brings a new
// deadline, which wakes it to look again.
func (c *Coordinator) watchDeadlines(ctx context.Context) {
	for {
		wait := c.o.RenewDeadline
		now := c.o.Now()
		c.mu.Lock()
		for _, t := range c.renewed {
			wait = min(wait, t.Add(c.o.RenewDeadline).Sub(now))
		}
		c.mu.Unlock()
		t := time.NewTimer(max(wait, 0) + time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-c.took:
			t.Stop()
		case <-t.C:
			c.enforceDeadline(ctx)
		}
	}
}

// tick is one round, then the deadline check (watchDeadlines makes it too, between
// rounds). It returns how long to wait for the next round: what is left, once this
// round's calls are done, of a retryPeriod from its LIST or of the wait for a Lease to
// expire. Waiting a whole period after a slow round would add the round's length to
// every failover.
func (c *Coordinator) tick(ctx context.Context) time.Duration {
	at := c.round(ctx)
	c.enforceDeadline(ctx)
	return max(0, at.Sub(c.o.Now()))
}

// round lists, renews, takes and gives up; it returns when to come back.
func (c *Coordinator) round(ctx context.Context) time.Time {
	next := c.o.RetryPeriod
	list, err := c.o.Leases.List(ctx, metav1.ListOptions{LabelSelector: labelManagedBy + "=slipway," + labelRole})
	if err != nil {
		if ctx.Err() == nil {
			c.o.Log.WithError(err).Warn("replicas: list the leases")
		}
		return c.o.Now().Add(next)
	}
	now := c.o.Now()
	c.renewMember(ctx, list.Items, now)
	members := c.liveMembers(list.Items, now)
	byShard := map[int]*coordv1.Lease{}
	for i := range list.Items {
		l := &list.Items[i]
		if s, ok := shardOf(l); ok {
			byShard[s] = l
		}
	}
	var takes, renewals []func()
	for shard := range Shards {
		l := byShard[shard]
		c.mu.Lock()
		_, held := c.held[shard]
		c.mu.Unlock()
		if len(c.shards[shard]) == 0 && !held {
			continue // none of our repositories: not worth a Lease
		}
		want := Choose(shard, members) == c.o.Identity
		switch {
		case held && (l == nil || holder(l) != c.o.Identity):
			// Someone took or deleted it: our view was wrong; stop at once.
			c.o.Log.WithField("shard", shard).Warn("replicas: lost a shard's lease")
			c.drop(ctx, shard)
		case held && !want:
			c.release(ctx, shard, l)
		case held:
			// After the takes: a failover waits on those, while a renewal has
			// renewDeadline to spare. It records the round's start as the renewal time,
			// a little early for both sides: the safe way to be wrong.
			renewals = append(renewals, func() { c.renew(ctx, shard, l, now) })
		case want && l == nil:
			takes = append(takes, func() { c.create(ctx, shard, now) })
		case want && (holder(l) == "" || expired(l, now)):
			takes = append(takes, func() { c.take(ctx, shard, l, now) })
		case want:
			// Held by a replica we think dead or leaving: come back when it expires.
			if d := expiry(l).Sub(now) + 50*time.Millisecond; d > 0 && d < next {
				next = d
			}
		}
	}
	parallel(takes)
	parallel(renewals)
	// Wake when a member's Lease expires too: its shards are then ours to take.
	for i := range list.Items {
		l := &list.Items[i]
		if l.Labels[labelRole] == roleMember && holder(l) != c.o.Identity {
			if d := expiry(l).Sub(now) + 50*time.Millisecond; d > 0 && d < next {
				next = d
			}
		}
	}
	c.mu.Lock()
	c.seen = list.Items
	c.mu.Unlock()
	return now.Add(next)
}

// parallel runs the calls a few at a time and returns when all have: one update after
// another, a replica holding most shards of a slow API server would spend longer than
// renewDeadline on a round.
func parallel(calls []func()) {
	var g errgroup.Group
	g.SetLimit(updatesAtOnce)
	for _, f := range calls {
		g.Go(func() error { f(); return nil })
	}
	_ = g.Wait()
}

// updatesAtOnce bounds the Lease updates a replica has in flight.
const updatesAtOnce = 8

// enforceDeadline stops the work of every shard whose Lease was not renewed within
// renewDeadline: from leaseDuration on another replica may take it.
func (c *Coordinator) enforceDeadline(ctx context.Context) {
	now := c.o.Now()
	c.mu.Lock()
	var late []int
	for s, t := range c.renewed {
		if now.Sub(t) > c.o.RenewDeadline {
			late = append(late, s)
		}
	}
	c.mu.Unlock()
	for _, s := range late {
		c.o.Log.WithField("shard", s).Warn("replicas: a shard's lease was not renewed within renewDeadline; its repositories stop here")
		c.drop(ctx, s)
	}
}

func holder(l *coordv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

func expiry(l *coordv1.Lease) time.Time {
	if l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		return time.Time{}
	}
	return l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second)
}

func expired(l *coordv1.Lease, now time.Time) bool { return !expiry(l).After(now) }

// liveMembers are the identities of the unexpired membership Leases, ours included while
// we renew it.
func (c *Coordinator) liveMembers(items []coordv1.Lease, now time.Time) []string {
	var out []string
	for i := range items {
		l := &items[i]
		if l.Labels[labelRole] == roleMember && holder(l) != "" && !expired(l, now) && holder(l) != c.o.Identity {
			out = append(out, holder(l))
		}
	}
	c.mu.Lock()
	if c.member != nil && !expired(c.member, now) {
		out = append(out, c.o.Identity)
	}
	c.mu.Unlock()
	sort.Strings(out)
	return out
}

func (c *Coordinator) spec(now time.Time, acquired *metav1.MicroTime, transitions int32) coordv1.LeaseSpec {
	id := c.o.Identity
	secs := int32(c.o.LeaseDuration / time.Second)
	renew := metav1.NewMicroTime(now)
	if acquired == nil {
		acquired = &renew
	}
	return coordv1.LeaseSpec{HolderIdentity: &id, LeaseDurationSeconds: &secs, AcquireTime: acquired,
		RenewTime: &renew, LeaseTransitions: &transitions}
}

// renewMember creates or renews our membership Lease.
func (c *Coordinator) renewMember(ctx context.Context, items []coordv1.Lease, now time.Time) {
	name := memberLeaseName(c.o.Identity)
	var cur *coordv1.Lease
	for i := range items {
		if items[i].Name == name {
			cur = items[i].DeepCopy()
		}
	}
	var err error
	var l *coordv1.Lease
	if cur == nil {
		l, err = c.o.Leases.Create(ctx, &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name,
			Labels: map[string]string{labelManagedBy: "slipway", labelRole: roleMember}}, Spec: c.spec(now, nil, 0)}, metav1.CreateOptions{})
	} else {
		cur.Spec = c.spec(now, cur.Spec.AcquireTime, 0)
		l, err = c.o.Leases.Update(ctx, cur, metav1.UpdateOptions{})
	}
	if err != nil {
		if ctx.Err() == nil {
			c.o.Log.WithError(err).Warn("replicas: renew this replica's membership lease")
		}
		return
	}
	c.mu.Lock()
	c.member = l
	c.mu.Unlock()
}

func (c *Coordinator) create(ctx context.Context, shard int, now time.Time) {
	l, err := c.o.Leases.Create(ctx, &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: shardLeaseName(shard),
		Labels: map[string]string{labelManagedBy: "slipway", labelRole: roleShard, labelRole + "-shard": strconv.Itoa(shard)}},
		Spec: c.spec(now, nil, 0)}, metav1.CreateOptions{})
	if err != nil {
		if !apierrors.IsAlreadyExists(err) && ctx.Err() == nil {
			c.o.Log.WithError(err).WithField("shard", shard).Warn("replicas: create a shard's lease")
		}
		return
	}
	c.acquired(ctx, shard, l, now)
}

// take acquires a free or expired shard Lease. The update carries the resourceVersion
// read, so of several replicas taking it at once only one succeeds.
func (c *Coordinator) take(ctx context.Context, shard int, cur *coordv1.Lease, now time.Time) {
	l := cur.DeepCopy()
	transitions := int32(0)
	if l.Spec.LeaseTransitions != nil {
		transitions = *l.Spec.LeaseTransitions
	}
	if holder(cur) != c.o.Identity {
		transitions++
	}
	l.Spec = c.spec(now, nil, transitions)
	l, err := c.o.Leases.Update(ctx, l, metav1.UpdateOptions{})
	if err != nil {
		if !apierrors.IsConflict(err) && ctx.Err() == nil {
			c.o.Log.WithError(err).WithField("shard", shard).Warn("replicas: take a shard's lease")
		}
		return
	}
	c.acquired(ctx, shard, l, now)
}

func (c *Coordinator) acquired(ctx context.Context, shard int, l *coordv1.Lease, now time.Time) {
	c.work.Lock()
	defer c.work.Unlock()
	c.mu.Lock()
	c.held[shard], c.renewed[shard] = l, now
	c.mu.Unlock()
	select {
	case c.took <- struct{}{}:
	default:
	}
	c.o.Log.WithFields(logrus.Fields{"shard": shard, "repositories": c.shards[shard]}).Info("replicas: took a shard")
	for _, r := range c.shards[shard] {
		c.o.Work.Own(ctx, r)
	}
}

func (c *Coordinator) renew(ctx context.Context, shard int, cur *coordv1.Lease, now time.Time) {
	l := cur.DeepCopy()
	l.Spec = c.spec(now, cur.Spec.AcquireTime, ptrValue(cur.Spec.LeaseTransitions))
	l, err := c.o.Leases.Update(ctx, l, metav1.UpdateOptions{})
	switch {
	case apierrors.IsConflict(err):
		// Written by someone else since our LIST: the next tick sees by whom.
		return
	case err != nil:
		if ctx.Err() == nil {
			c.o.Log.WithError(err).WithField("shard", shard).Warn("replicas: renew a shard's lease")
		}
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.held[shard]; !ok {
		// Its deadline passed while the update was under way, and its work stopped: the
		// Lease, though ours, is left to expire and be taken again like any other.
		return
	}
	c.held[shard], c.renewed[shard] = l, now
}

// release stops the shard's work, then frees its Lease for the member the hash prefers.
func (c *Coordinator) release(ctx context.Context, shard int, cur *coordv1.Lease) {
	c.drop(ctx, shard)
	l := cur.DeepCopy()
	l.Spec.HolderIdentity = nil
	l.Spec.RenewTime = nil
	l.Spec.AcquireTime = nil
	if _, err := c.o.Leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil {
		// It then expires as a dead replica's would.
		c.o.Log.WithError(err).WithField("shard", shard).Warn("replicas: free a shard's lease")
	}
	c.o.Log.WithField("shard", shard).Info("replicas: handed a shard over")
}

// drop stops the shard's work and forgets the Lease (not touching it).
func (c *Coordinator) drop(ctx context.Context, shard int) {
	c.work.Lock()
	defer c.work.Unlock()
	c.mu.Lock()
	_, held := c.held[shard]
	delete(c.held, shard)
	delete(c.renewed, shard)
	c.mu.Unlock()
	if !held {
		return
	}
	for _, r := range c.shards[shard] {
		c.o.Work.Disown(ctx, r)
	}
}

// leave stops all work, frees the held Leases and deletes the membership Lease, so the
// others take over without waiting for expiry.
func (c *Coordinator) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), c.o.RenewDeadline)
	defer cancel()
	c.mu.Lock()
	held := map[int]*coordv1.Lease{}
	for s, l := range c.held {
		held[s] = l
	}
	c.mu.Unlock()
	for s, l := range held {
		c.release(ctx, s, l)
	}
	if err := c.o.Leases.Delete(ctx, memberLeaseName(c.o.Identity), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		c.o.Log.WithError(err).Warn("replicas: delete this replica's membership lease")
	}
	c.mu.Lock()
	c.member = nil
	c.mu.Unlock()
}

func ptrValue(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

// shardOf is the shard a shard Lease stands for, from its label; false for other Leases.
func shardOf(l *coordv1.Lease) (int, bool) {
	if l.Labels[labelRole] != roleShard {
		return 0, false
	}
	s, err := strconv.Atoi(l.Labels[labelRole+"-shard"])
	return s, err == nil
}
