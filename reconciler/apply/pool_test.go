package apply

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Two deploys at once, each with its own pool of 16, share 3 slots: never more than 3
// objects are in flight together, and the slots' peak says 3.
func TestSlotsBoundDeploysTogether(t *testing.T) {
	s := NewSlots(3)
	var in, most atomic.Int32
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := ForEach(context.Background(), 20, concurrency, func(ctx context.Context, _ int) error {
				release, err := s.Acquire(ctx)
				if err != nil {
					return err
				}
				defer release()
				n := in.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				time.Sleep(2 * time.Millisecond)
				in.Add(-1)
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if most.Load() > 3 || s.Peak() != int(most.Load()) || s.Peak() < 2 {
		t.Fatalf("%d objects in flight at once (slots' peak %d), want at most 3 and the peak to agree", most.Load(), s.Peak())
	}
	if s.InUse() != 0 || s.Cap() != 3 {
		t.Fatalf("after the deploys: %d in use of %d", s.InUse(), s.Cap())
	}
	// A waiting apply gives up with its context.
	for range 3 {
		if _, err := s.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.Acquire(ctx); err == nil {
		t.Fatal("a fourth slot of 3 was granted")
	}
	var none *Slots // no shared bound
	if release, err := none.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	} else {
		release()
	}
}
