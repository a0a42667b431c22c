package trigger

import (
	"bytes"
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/sources"
)

var (
	hostA = sources.Repo{Name: "a", URL: "https://git.example/team/a.git"}
	hostB = sources.Repo{Name: "b", URL: "https://other.example/team/b.git"}
)

// queueRunners counts the goroutines running looks of a LookQueue, whatever else the
// process runs.
func queueRunners() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return bytes.Count(buf, []byte("(*LookQueue).run("))
}

// atOnce counts how many calls of during overlap at most.
type atOnce struct {
	mu            sync.Mutex
	now, mostSeen int
}

func (a *atOnce) during(fn func()) {
	a.mu.Lock()
	a.now++
	a.mostSeen = max(a.mostSeen, a.now)
	a.mu.Unlock()
	fn()
	a.mu.Lock()
	a.now--
	a.mu.Unlock()
}

func (a *atOnce) most() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mostSeen
}

func TestLookQueueRunsAtMostPerHostWithoutWaitingGoroutines(t *testing.T) {
	q := NewLookQueue(2)
	var at atOnce
	release := make(chan struct{})
	started := make(chan struct{}, 20)
	const n = 20
	for range n {
		q.Go(hostA, func() { at.during(func() { started <- struct{}{}; <-release }) })
	}
	recv(t, started, "the first look")
	recv(t, started, "the second look")
	if got, run := q.Waiting(), q.Running(); got != n-2 || run != 2 {
		t.Fatalf("Waiting() = %d, Running() = %d; want %d and 2", got, run, n-2)
	}
	// The waiting looks hold no goroutine: only the two running do.
	if got := queueRunners(); got != 2 {
		t.Fatalf("%d goroutines run looks for 2 running and %d waiting", got, n-2)
	}
	// Another host is not held up by the first one's queue.
	otherRan := make(chan struct{})
	q.Go(hostB, func() { close(otherRan) })
	recv(t, otherRan, "a look at another host")

	close(release)
	for range n - 2 {
		recv(t, started, "a waiting look")
	}
	deadline := time.Now().Add(10 * time.Second)
	for q.Running() > 0 || queueRunners() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d looks still running after every look ended", q.Running())
		}
		time.Sleep(time.Millisecond)
	}
	q.mu.Lock()
	hosts := len(q.hosts)
	q.mu.Unlock()
	if hosts != 0 {
		t.Fatalf("%d hosts left in the queue after every look ended", hosts)
	}
	if most := at.most(); most != 2 || q.Peak() != 2 {
		t.Fatalf("at most %d looks ran at once against one host (Peak() %d), want 2", most, q.Peak())
	}
}

func TestLookQueueStartsWaitingLooksFirstInFirstOut(t *testing.T) {
	q := NewLookQueue(1)
	release := make(chan struct{})
	var order []int // appended by one look at a time: the bound is 1
	done := make(chan struct{})
	const n = 10
	for i := range n {
		q.Go(hostA, func() {
			if i == 0 {
				<-release
			}
			order = append(order, i)
			if i == n-1 {
				close(done)
			}
		})
	}
	close(release)
	recv(t, done, "the last look")
	for i, got := range order {
		if got != i {
			t.Fatalf("looks ran in the order %v, want first in, first out", order)
		}
	}
}

func TestLookQueueWithdrawsOnlyALookNotStarted(t *testing.T) {
	q := NewLookQueue(1)
	release, started := make(chan struct{}), make(chan struct{})
	withdrawRunning := q.Go(hostA, func() { close(started); <-release })
	recv(t, started, "the first look")
	ran := make(chan struct{}, 1)
	withdrawWaiting := q.Go(hostA, func() { ran <- struct{}{} })
	if withdrawRunning() {
		t.Fatal("withdrew a look already running")
	}
	if !withdrawWaiting() || q.Waiting() != 0 {
		t.Fatalf("the waiting look was not withdrawn (%d waiting)", q.Waiting())
	}
	if withdrawWaiting() {
		t.Fatal("withdrew the same look twice")
	}
	close(release)
	last := make(chan struct{})
	q.Go(hostA, func() { close(last) })
	recv(t, last, "a look queued after the withdrawal")
	select {
	case <-ran:
		t.Fatal("a withdrawn look ran")
	default:
	}
}

func TestWatchersSharingALookQueueListRefsAtMostItsBoundAtOnce(t *testing.T) {
	const n, perHost = 30, 3
	q := NewLookQueue(perHost)
	var at atOnce
	release := make(chan struct{})
	listed := make(chan struct{}, n)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	looked := make(chan error, n)
	var stopped []<-chan struct{}
	for range n {
		r := newRig(t, time.Hour, commitOf("c1", ""))
		r.git.setHead(sha("c1"))
		r.git.beforeRefs = func() { at.during(func() { listed <- struct{}{}; <-release }) }
		r.looks = q
		r.w = r.watcher(time.Hour, r.files)
		stopped = append(stopped, r.w.Start(ctx, func(err error) { looked <- err }))
	}
	for range perHost {
		recv(t, listed, "a look's ref listing")
	}
	if got := q.Waiting(); got != n-perHost {
		t.Fatalf("%d looks wait, want %d", got, n-perHost)
	}
	close(release)
	for range n {
		if err := recv(t, looked, "a first look"); err != nil {
			t.Fatal(err)
		}
	}
	if most := at.most(); most != perHost {
		t.Errorf("%d ref listings at once, want the queue's bound %d", most, perHost)
	}
	cancel()
	for _, s := range stopped {
		recv(t, s, "a watcher to stop")
	}
}

// queuedRig is a watcher of the shared queue q whose ref listings report its name on
// listed and then wait for release (when not nil).
func queuedRig(t *testing.T, q *LookQueue, name string, listed chan<- string, release <-chan struct{}) *rig {
	r := newRig(t, time.Hour, commitOf("c1", ""))
	r.git.setHead(sha("c1"))
	r.git.beforeRefs = func() {
		listed <- name
		if release != nil {
			<-release
		}
	}
	r.looks = q
	r.w = r.watcher(time.Hour, r.files)
	return r
}

// heldQueue is a queue of one place, held by a watcher's look until release is closed;
// listed hears the ref listings of its rigs (queuedRig).
func heldQueue(ctx context.Context, t *testing.T, release <-chan struct{}) (*LookQueue, chan string) {
	q := NewLookQueue(1)
	listed := make(chan string, 8)
	queuedRig(t, q, "first", listed, release).w.Start(ctx, nil)
	recv(t, listed, "the first watcher's look")
	return q, listed
}

func TestAWatcherWhoseContextEndsStopsWithoutWaitingItsTurn(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q, listed := heldQueue(ctx, t, release)

	second := queuedRig(t, q, "second", listed, nil)
	ctx2, cancel2 := context.WithCancel(context.Background())
	stopped := second.w.Start(ctx2, nil)
	second.w.Hint(Hint{DeliveryID: "d1", Branch: testBranch, Commit: sha("c1")})
	// Its look waits behind the first watcher's, which does not end: the watcher stops
	// anyway (a replica giving the repository up waits for that).
	cancel2()
	recv(t, stopped, "the second watcher to stop while its look waited")
	if got := q.Waiting(); got != 0 {
		t.Fatalf("%d looks still queued after the watcher stopped", got)
	}
	if hs := takeHints(second.w); len(hs) != 1 {
		t.Fatalf("%d hints left queued, want the one the look never answered", len(hs))
	}
}

func TestALookAskedForDuringALookWaitsBehindOtherRepositories(t *testing.T) {
	q := NewLookQueue(1)
	listed := make(chan string, 8)
	release := make(chan struct{}, 8)
	busy := queuedRig(t, q, "busy", listed, release)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	busyStopped := busy.w.Start(ctx, nil)
	recv(t, listed, "the busy repository's first look")
	other := queuedRig(t, q, "other", listed, release)
	otherStopped := other.w.Start(ctx, nil)
	// A push to the busy repository during its look asks for another.
	busy.w.Hint(Hint{DeliveryID: "d1", Branch: testBranch, Commit: sha("c1")})
	for range 3 {
		release <- struct{}{}
	}
	if got := recv(t, listed, "the next look"); got != "other" {
		t.Fatalf("the next look was %s's; the other repository's, waiting since before, should come first", got)
	}
	if got := recv(t, listed, "the look after"); got != "busy" {
		t.Fatalf("the look after was %s's, want the busy repository's second", got)
	}
	cancel()
	recv(t, busyStopped, "the busy watcher to stop")
	recv(t, otherStopped, "the other watcher to stop")
}

func TestAHintWhileTheLookWaitsItsTurnAsksForNoSecondLook(t *testing.T) {
	release := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q, listed := heldQueue(ctx, t, release)
	second := queuedRig(t, q, "second", listed, nil)
	looked := make(chan error, 1)
	second.w.Start(ctx, func(err error) { looked <- err })
	// While its look waits, a push: the look, once it runs, answers it.
	second.w.Hint(Hint{DeliveryID: "d1", Branch: testBranch, Commit: sha("c1")})
	close(release)
	if err := recv(t, looked, "the second watcher's look"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for q.Running() > 0 || q.Waiting() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the queue did not empty")
		}
		time.Sleep(time.Millisecond)
	}
	second.git.mu.Lock()
	defer second.git.mu.Unlock()
	if second.git.refs != 1 {
		t.Fatalf("the second watcher listed refs %d times, want once: the hint came before its look began", second.git.refs)
	}
}
