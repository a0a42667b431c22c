package trigger

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/sources"
)

func TestLookQueueRunsAtMostPerHostInOrderWithoutWaitingGoroutines(t *testing.T) {
	q := NewLookQueue(2)
	hostA := sources.Repo{Name: "a", URL: "https://git.example/team/a.git"}
	hostB := sources.Repo{Name: "b", URL: "https://other.example/team/b.git"}
	before := runtime.NumGoroutine()
	var mu sync.Mutex
	running, most := 0, 0
	var order []int
	release := make(chan struct{})
	started := make(chan int, 20)
	const n = 20
	for i := range n {
		q.Go(hostA, func() {
			mu.Lock()
			running++
			most = max(most, running)
			order = append(order, i)
			mu.Unlock()
			started <- i
			<-release
			mu.Lock()
			running--
			mu.Unlock()
		})
	}
	recv(t, started, "the first look")
	recv(t, started, "the second look")
	if got := q.Waiting(); got != n-2 {
		t.Fatalf("Waiting() = %d, want %d", got, n-2)
	}
	// The waiting looks hold no goroutine: only the two running do.
	if got := runtime.NumGoroutine() - before; got > 2 {
		t.Fatalf("%d goroutines for 2 running looks and %d waiting", got, n-2)
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
	for {
		q.mu.Lock()
		hosts := len(q.hosts)
		q.mu.Unlock()
		if hosts == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d hosts still in the queue after every look ended", hosts)
		}
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if most != 2 {
		t.Fatalf("at most %d looks ran at once against one host, want 2", most)
	}
	// The first two started together; the rest in the order they were queued.
	for i := 3; i < n; i++ {
		if order[i] < order[i-1] {
			t.Fatalf("looks started in the order %v; the waiting ones should start first in, first out", order)
		}
	}
}

func TestWatchersSharingALookQueueListRefsAtMostItsBoundAtOnce(t *testing.T) {
	const n, perHost = 30, 3
	q := NewLookQueue(perHost)
	var mu sync.Mutex
	listing, most := 0, 0
	release := make(chan struct{})
	listed := make(chan struct{}, n)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	looked := make(chan error, n)
	var stopped []<-chan struct{}
	for range n {
		r := newRig(t, time.Hour, commitOf("c1", ""))
		r.git.setHead(sha("c1"))
		r.git.beforeRefs = func() {
			mu.Lock()
			listing++
			most = max(most, listing)
			mu.Unlock()
			listed <- struct{}{}
			<-release
			mu.Lock()
			listing--
			mu.Unlock()
		}
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
	mu.Lock()
	if most != perHost {
		t.Errorf("%d ref listings at once, want the queue's bound %d", most, perHost)
	}
	mu.Unlock()
	cancel()
	for _, s := range stopped {
		recv(t, s, "a watcher to stop")
	}
}

func TestALookWaitingPastItsContextDoesNothing(t *testing.T) {
	q := NewLookQueue(1)
	first := newRig(t, time.Hour, commitOf("c1", ""))
	first.git.setHead(sha("c1"))
	release := make(chan struct{})
	listing := make(chan struct{}, 1)
	first.git.beforeRefs = func() { listing <- struct{}{}; <-release }
	first.looks = q
	first.w = first.watcher(time.Hour, first.files)
	ctx := context.Background()
	firstStopped := make(chan struct{})
	ctx1, cancel1 := context.WithCancel(ctx)
	go func() { <-first.w.Start(ctx1, nil); close(firstStopped) }()
	recv(t, listing, "the first watcher's look")

	second := newRig(t, time.Hour, commitOf("c1", ""))
	second.git.setHead(sha("c1"))
	second.looks = q
	second.w = second.watcher(time.Hour, second.files)
	ctx2, cancel2 := context.WithCancel(ctx)
	stopped := second.w.Start(ctx2, nil)
	second.w.Hint(Hint{DeliveryID: "d1", Branch: testBranch, Commit: sha("c1")})
	cancel2() // while its look waits behind the first watcher's
	close(release)
	recv(t, stopped, "the second watcher to stop")
	if second.git.refs != 0 {
		t.Fatalf("the look that waited past its context listed refs %d times", second.git.refs)
	}
	if hs := second.w.takeHints(); len(hs) != 1 {
		t.Fatalf("%d hints left queued, want the one the look never answered", len(hs))
	}
	cancel1()
	recv(t, firstStopped, "the first watcher to stop")
}
