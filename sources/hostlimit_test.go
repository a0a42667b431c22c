package sources

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestHostLimiterBoundsEachHostSeparately(t *testing.T) {
	l := &HostLimiter{PerHost: 2}
	ctx := context.Background()
	var inA, maxA atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			release, err := l.Acquire(ctx, "https://git.a.example/team/app.git")
			if err != nil {
				t.Error(err)
				return
			}
			n := inA.Add(1)
			for {
				m := maxA.Load()
				if n <= m || maxA.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(5 * time.Millisecond)
			inA.Add(-1)
			release()
		}()
	}
	wg.Wait()
	// Another host is never held up by the first one being full; the scp form names the
	// host too.
	fullA1, _ := l.Acquire(ctx, "https://git.a.example/team/app.git")
	fullA2, _ := l.Acquire(ctx, "https://git.a.example/team/app.git")
	quick, cancelQuick := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelQuick()
	hold1, err := l.Acquire(quick, "git@git.b.example:team/app.git")
	if err != nil {
		t.Fatalf("git.b.example waited for git.a.example's places: %v", err)
	}
	hold2, err := l.Acquire(quick, "ssh://git@git.b.example/team/other.git")
	if err != nil {
		t.Fatalf("git.b.example's second place: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := l.Acquire(short, "https://git.b.example/x.git"); err == nil {
		t.Fatal("a third slot on git.b.example was granted with PerHost 2")
	}
	hold1()
	hold2()
	fullA1()
	fullA2()
	if maxA.Load() > 2 {
		t.Fatalf("%d concurrent holders on one host, limit 2", maxA.Load())
	}
	// The limiter's own count of the most held at once agrees: git.b.example held 2.
	if p := l.Peak(); p != 2 {
		t.Fatalf("Peak() = %d, want 2 (the limit, reached)", p)
	}
}

// The per-host places are taken around network calls only: with the host's one place held
// elsewhere, a sync whose head a prefetch already brought finishes (it needs the server for
// nothing), while a ref listing waits for the place. A look on a webhook thus never queues
// its sync behind every other repository's listing.
func TestOnlyNetworkCallsTakeAPlace(t *testing.T) {
	ctx := context.Background()
	o, g := serveOneCommit(t)
	repo := g.repo("places")
	limiter := &HostLimiter{PerHost: 1}
	m, err := New(Options{DataDir: t.TempDir(), Depth: 2, Limiter: limiter})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Sync(ctx, repo, "master"); err != nil {
		t.Fatal(err)
	}
	head := o.commit()
	if fetched, err := m.Prefetch(ctx, repo, head); err != nil || !fetched {
		t.Fatalf("prefetch: fetched %v, %v", fetched, err)
	}
	refs, err := m.Refs(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	release, err := limiter.Acquire(ctx, repo.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := m.SyncListed(short, repo, "master", refs)
	if err != nil || res.Commit != head {
		t.Fatalf("sync of the prefetched head with the host's place held elsewhere: %+v, %v; want %s without waiting", res, err, head)
	}
	listings, fetches := g.counts()
	shorter, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel2()
	if _, err := m.Refs(shorter, repo); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "connection slot") {
		t.Fatalf("a ref listing with the host's place held elsewhere: %v, want it to wait for the place", err)
	}
	if l, f := g.counts(); l != listings || f != fetches {
		t.Fatalf("the server saw %d listings and %d pack requests while the host's only place was held elsewhere", l-listings, f-fetches)
	}
}

// Many repositories on one host, synced, prefetched and listed at once: the server never
// answers more requests at a time than the limiter allows.
func TestMirrorsNeverPassThePerHostBound(t *testing.T) {
	ctx := context.Background()
	o, g := serveOneCommit(t)
	m, err := New(Options{DataDir: t.TempDir(), Depth: 2, Limiter: &HostLimiter{PerHost: 2}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			repo := g.repo(fmt.Sprintf("bound-%d", i))
			if _, err := m.Sync(ctx, repo, "master"); err != nil {
				t.Error(err)
				return
			}
			if _, err := m.Refs(ctx, repo); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	head := o.commit()
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			repo := g.repo(fmt.Sprintf("bound-%d", i))
			if _, err := m.Prefetch(ctx, repo, head); err != nil {
				t.Error(err)
			}
			if _, err := m.Sync(ctx, repo, "master"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if p := g.mostAtOnce(); p != 2 {
		t.Fatalf("the Git server answered at most %d requests at once; want 2 (the bound, reached and never passed)", p)
	}
}
