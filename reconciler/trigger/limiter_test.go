package trigger

import (
	"context"
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
	// Another host is never held up by the first one's queue; the scp form names the host too.
	hold1, _ := l.Acquire(ctx, "git@git.b.example:team/app.git")
	hold2, _ := l.Acquire(ctx, "ssh://git@git.b.example/team/other.git")
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := l.Acquire(short, "https://git.b.example/x.git"); err == nil {
		t.Fatal("a third slot on git.b.example was granted with PerHost 2")
	}
	hold1()
	hold2()
	wg.Wait()
	if maxA.Load() > 2 {
		t.Fatalf("%d concurrent holders on one host, limit 2", maxA.Load())
	}
	// The limiter's own count of the most held at once agrees: git.b.example held 2.
	if p := l.Peak(); p != 2 {
		t.Fatalf("Peak() = %d, want 2 (the limit, reached)", p)
	}
}
