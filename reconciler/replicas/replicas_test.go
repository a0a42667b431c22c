package replicas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sirupsen/logrus"
	coordv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// owners records which replica runs each repository's work and fails the test the moment
// two would at once.
type owners struct {
	t  *testing.T
	mu sync.Mutex
	by map[string]string
}

type work struct {
	o  *owners
	id string
}

func (w work) Own(_ context.Context, repo string) {
	w.o.mu.Lock()
	defer w.o.mu.Unlock()
	if cur, ok := w.o.by[repo]; ok {
		w.o.t.Errorf("%s takes %s while %s runs it", w.id, repo, cur)
	}
	w.o.by[repo] = w.id
}

func (w work) Disown(_ context.Context, repo string) {
	w.o.mu.Lock()
	defer w.o.mu.Unlock()
	if w.o.by[repo] != w.id {
		w.o.t.Errorf("%s stops %s, which it does not run (%q does)", w.id, repo, w.o.by[repo])
	}
	delete(w.o.by, repo)
}

func (o *owners) count() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := map[string]int{}
	for _, id := range o.by {
		n[id]++
	}
	return n
}

type fixture struct {
	t     *testing.T
	cs    *fake.Clientset
	now   time.Time
	own   *owners
	repos []string
}

func newFixture(t *testing.T, repos int) *fixture {
	f := &fixture{t: t, cs: fake.NewClientset(), now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC),
		own: &owners{t: t, by: map[string]string{}}}
	for i := range repos {
		f.repos = append(f.repos, fmt.Sprintf("repo-%02d", i))
	}
	return f
}

func (f *fixture) replica(id string) *Coordinator {
	return f.replicaOn(id, f.cs.CoordinationV1().Leases("slipway"))
}

func (f *fixture) replicaOn(id string, leases Leases) *Coordinator {
	c, err := New(Options{Leases: leases, Identity: id, Repositories: f.repos,
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
		Work: work{f.own, id}, Log: quietLog(), Now: func() time.Time { return f.now }})
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// rounds ticks every replica n times, advancing the clock by step after each round.
func (f *fixture) rounds(n int, step time.Duration, cs ...*Coordinator) {
	for range n {
		for _, c := range cs {
			c.tick(context.Background())
		}
		f.now = f.now.Add(step)
	}
}

func (f *fixture) checkAllOwnedOnce(cs ...*Coordinator) {
	f.t.Helper()
	f.own.mu.Lock()
	defer f.own.mu.Unlock()
	for _, r := range f.repos {
		if f.own.by[r] == "" {
			f.t.Errorf("%s is owned by no replica", r)
		}
	}
	for _, c := range cs {
		for _, r := range c.Owned() {
			if f.own.by[r] != c.o.Identity {
				f.t.Errorf("%s says it owns %s, work runs on %q", c.o.Identity, r, f.own.by[r])
			}
		}
	}
}

func TestSpreadAndMoveOnJoin(t *testing.T) {
	f := newFixture(t, 30)
	a := f.replica("a")
	f.rounds(2, time.Second, a)
	if n := f.own.count(); n["a"] != 30 {
		t.Fatalf("alone, a owns %d of 30", n["a"])
	}
	b, c := f.replica("b"), f.replica("c")
	f.rounds(4, time.Second, a, b, c)
	f.checkAllOwnedOnce(a, b, c)
	n := f.own.count()
	if n["a"]+n["b"]+n["c"] != 30 || n["a"] == 0 || n["b"] == 0 || n["c"] == 0 {
		t.Errorf("30 repositories over three replicas: %v", n)
	}
	// The same members choose the same owner for each shard, whoever computes it.
	for _, r := range f.repos {
		if want := Choose(ShardOf(r), []string{"a", "b", "c"}); f.own.by[r] != want {
			t.Errorf("%s runs on %s, rendezvous hashing says %s", r, f.own.by[r], want)
		}
	}
	st := b.Status()
	if len(st.Members) != 3 || len(st.Unowned) != 0 {
		t.Errorf("status: %+v", st)
	}
	want := fmt.Sprintf(`# HELP slipway_replica_members Live replicas, as this replica last listed their Leases.
# TYPE slipway_replica_members gauge
slipway_replica_members 3
# HELP slipway_replica_repositories_owned Repositories this replica watches (holds the Lease of their shard).
# TYPE slipway_replica_repositories_owned gauge
slipway_replica_repositories_owned %d
`, n["b"])
	if err := testutil.CollectAndCompare(b, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	for _, m := range st.Members {
		if len(m.Repositories) != n[m.Identity] || m.Self != (m.Identity == "b") || !m.Expires.Equal(m.RenewTime.Add(15*time.Second)) {
			t.Errorf("member %+v, owns %d", m, n[m.Identity])
		}
	}
}

// settleThenKill runs rounds of a, b and c until the repositories are spread, then c dies
// right after a round: its work is gone with it, its Leases stay. It returns what c owned
// and the time of c's last renewal.
func (f *fixture) settleThenKill(a, b, c *Coordinator) (lost []string, died time.Time) {
	f.t.Helper()
	f.rounds(4, time.Second, a, b, c)
	f.checkAllOwnedOnce(a, b, c)
	lost = c.Owned()
	if len(lost) == 0 {
		f.t.Fatal("c owns nothing")
	}
	f.own.mu.Lock()
	for _, r := range lost {
		delete(f.own.by, r)
	}
	f.own.mu.Unlock()
	return lost, f.now.Add(-time.Second)
}

func TestDeadReplicaMovesWithinLeaseDuration(t *testing.T) {
	f := newFixture(t, 30)
	a, b, c := f.replica("a"), f.replica("b"), f.replica("c")
	lost, died := f.settleThenKill(a, b, c)
	for f.now.Before(died.Add(15 * time.Second)) {
		a.tick(context.Background())
		b.tick(context.Background())
		f.now = f.now.Add(500 * time.Millisecond)
		if n := len(a.Owned()) + len(b.Owned()); n != 30-len(lost) {
			t.Fatalf("at %s after c's last renewal, a and b own %d: its Leases were taken before they expired",
				f.now.Sub(died), n)
		}
	}
	f.rounds(1, 0, a, b)
	for _, r := range lost {
		if !a.Owns(r) && !b.Owns(r) {
			t.Errorf("%s of the dead replica was not taken over once its lease expired", r)
		}
	}
	f.checkAllOwnedOnce(a, b)
}

// slowLeases is an API server whose every update takes per on the fixture's clock; it
// records the names of the Leases updated, in order.
type slowLeases struct {
	Leases
	f       *fixture
	per     time.Duration
	mu      sync.Mutex // a round sends several updates at once
	updated []string
}

func (s *slowLeases) Update(ctx context.Context, l *coordv1.Lease, o metav1.UpdateOptions) (*coordv1.Lease, error) {
	s.mu.Lock()
	s.f.now = s.f.now.Add(s.per)
	s.updated = append(s.updated, l.Name)
	s.mu.Unlock()
	return s.Leases.Update(ctx, l, o)
}

func TestSurvivorsTakeOverAtTheExpiryInstant(t *testing.T) {
	f := newFixture(t, 30)
	api := map[string]*slowLeases{}
	var cs []*Coordinator
	for _, id := range []string{"a", "b", "c"} {
		api[id] = &slowLeases{Leases: f.cs.CoordinationV1().Leases("slipway"), f: f}
		cs = append(cs, f.replicaOn(id, api[id]))
	}
	a, b, c := cs[0], cs[1], cs[2]
	lost, died := f.settleThenKill(a, b, c)
	expires := died.Add(15 * time.Second)

	// a's rounds take 100 ms an update: the next is due a retryPeriod after the LIST, not
	// after the round's end.
	api["a"].per = 100 * time.Millisecond
	for f.now.Before(expires.Add(-3 * time.Second)) {
		b.tick(context.Background())
		listed := f.now
		if wait, want := a.tick(context.Background()), listed.Add(2*time.Second).Sub(f.now); wait != want || f.now == listed {
			t.Fatalf("after a round of %s, wait %s, want %s", f.now.Sub(listed), wait, want)
		}
		f.now = listed.Add(2 * time.Second)
	}
	// The round before the expiry comes back at the expiry, less its own length.
	f.now = expires.Add(-1500 * time.Millisecond)
	b.tick(context.Background())
	wait := a.tick(context.Background())
	if want := expires.Add(50 * time.Millisecond).Sub(f.now); wait != want {
		t.Fatalf("%s before c's Leases expire, a waits %s after a round of %s, want %s",
			expires.Sub(f.now), wait, 100*time.Millisecond*time.Duration(len(api["a"].updated)), want)
	}
	// At that instant each survivor takes its share of c's shards in one round, before it
	// renews its own Leases.
	f.now = f.now.Add(wait)
	dead := map[string]bool{}
	for _, r := range lost {
		dead[LeaseName(r)] = true
	}
	tookAll := 0
	for _, s := range []*Coordinator{a, b} {
		id := s.o.Identity
		api[id].updated = nil
		s.tick(context.Background())
		took, renewedAt := 0, -1
		for i, name := range api[id].updated {
			switch {
			case dead[name]:
				took++
				if renewedAt >= 0 {
					t.Errorf("%s took %s after renewing its own %s: %v", id, name, api[id].updated[renewedAt], api[id].updated)
				}
			case name != memberLeaseName(id) && renewedAt < 0:
				renewedAt = i
			}
		}
		if took > 0 && renewedAt < 0 {
			t.Errorf("%s took c's shards but renewed none of its own in that round: %v", id, api[id].updated)
		}
		t.Logf("%s took %d of c's shards at the expiry instant", id, took)
		tookAll += took
	}
	if tookAll != len(dead) {
		t.Errorf("a and b took %d of c's %d shards in the round at the expiry", tookAll, len(dead))
	}
	for _, r := range lost {
		if !a.Owns(r) && !b.Owns(r) {
			t.Errorf("%s of the dead replica not taken over in the round at its Leases' expiry", r)
		}
	}
	f.checkAllOwnedOnce(a, b)
}

func TestRenewDeadlineStopsWork(t *testing.T) {
	f := newFixture(t, 10)
	a := f.replica("a")
	f.rounds(2, time.Second, a)
	if len(a.Owned()) != 10 {
		t.Fatalf("a owns %v", a.Owned())
	}
	f.cs.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("API server unreachable")
	})
	f.cs.PrependReactor("list", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("API server unreachable")
	})
	start := f.now.Add(-time.Second) // the last renewal
	for f.now.Sub(start) <= 10*time.Second {
		if len(a.Owned()) != 10 {
			t.Fatalf("work stopped %s after the last renewal, before renewDeadline", f.now.Sub(start))
		}
		f.rounds(1, 500*time.Millisecond, a)
	}
	f.rounds(1, 0, a)
	if owned := a.Owned(); len(owned) != 0 || len(f.own.count()) != 0 {
		t.Errorf("renewDeadline passed, still working on %v", owned)
	}
}

// stallingLeases is an API server that, once stalled, answers no request until the
// caller gives up.
type stallingLeases struct {
	Leases
	stalled atomic.Bool
}

func (s *stallingLeases) List(ctx context.Context, o metav1.ListOptions) (*coordv1.LeaseList, error) {
	if s.stalled.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.Leases.List(ctx, o)
}

func (s *stallingLeases) Update(ctx context.Context, l *coordv1.Lease, o metav1.UpdateOptions) (*coordv1.Lease, error) {
	if s.stalled.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.Leases.Update(ctx, l, o)
}

func TestRenewDeadlineStopsWorkWhileARoundHangs(t *testing.T) {
	f := newFixture(t, 10)
	api := &stallingLeases{Leases: f.cs.CoordinationV1().Leases("slipway")}
	const lease, renew, retry = 3 * time.Second, time.Second, 200 * time.Millisecond
	c, err := New(Options{Leases: api, Identity: "a", Repositories: f.repos, LeaseDuration: lease,
		RenewDeadline: renew, RetryPeriod: retry, Work: work{f.own, "a"}, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		c.Run(ctx)
	}()
	defer func() {
		cancel()
		<-ran
	}()
	for start := time.Now(); f.own.count()["a"] != 10; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("a owns %v after 5 s alone", f.own.count())
		}
	}
	// The API server stops answering: the round under way, or the next, waits forever.
	api.stalled.Store(true)
	stalled := time.Now()
	for len(f.own.count()) != 0 {
		// Another replica may take the Leases leaseDuration after the last renewal,
		// which came before the stall.
		if time.Since(stalled) > lease {
			t.Fatalf("%s after the API server stalled, a still works on %v", time.Since(stalled), f.own.count())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Not before the deadline: TestRenewDeadlineStopsWork, on a clock of its own.
	t.Logf("work stopped %s after the API server stalled (renewDeadline %s, retryPeriod %s)", time.Since(stalled), renew, retry)
}

// inFlightLeases counts the updates under way at once; each takes 20 ms.
type inFlightLeases struct {
	Leases
	mu       sync.Mutex
	now, max int
}

func (s *inFlightLeases) Update(ctx context.Context, l *coordv1.Lease, o metav1.UpdateOptions) (*coordv1.Lease, error) {
	s.mu.Lock()
	s.now++
	s.max = max(s.max, s.now)
	s.mu.Unlock()
	time.Sleep(20 * time.Millisecond)
	defer func() {
		s.mu.Lock()
		s.now--
		s.mu.Unlock()
	}()
	return s.Leases.Update(ctx, l, o)
}

func TestARoundSendsItsUpdatesAFewAtOnce(t *testing.T) {
	f := newFixture(t, 30)
	api := &inFlightLeases{Leases: f.cs.CoordinationV1().Leases("slipway")}
	a := f.replicaOn("a", api)
	f.rounds(3, time.Second, a)
	if n := f.own.count()["a"]; n != 30 {
		t.Fatalf("alone, a owns %d of 30", n)
	}
	if api.max < 2 || api.max > updatesAtOnce {
		t.Errorf("renewing its shards' Leases, a had %d updates in flight at most, want 2 to %d", api.max, updatesAtOnce)
	}
}

func TestLeaveHandsOverAtOnce(t *testing.T) {
	f := newFixture(t, 12)
	a, b := f.replica("a"), f.replica("b")
	f.rounds(4, time.Second, a, b)
	f.checkAllOwnedOnce(a, b)
	a.leave()
	if len(a.Owned()) != 0 {
		t.Fatalf("a still owns %v after leaving", a.Owned())
	}
	f.rounds(1, 0, b)
	if len(b.Owned()) != 12 {
		t.Errorf("after a left, b owns %d of 12 without waiting for expiry", len(b.Owned()))
	}
}

func TestOptionsChecked(t *testing.T) {
	f := newFixture(t, 1)
	_, err := New(Options{Leases: f.cs.CoordinationV1().Leases("s"), Identity: "a", Work: work{f.own, "a"},
		LeaseDuration: 10 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second})
	if err == nil {
		t.Error("renewDeadline equal to leaseDuration was accepted")
	}
}

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}
