package store

import (
	"sync"
	"testing"
)

func TestHintsAreTakenOnceByTheOwner(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	sink := &recordingSink{}
	s.opts.changes = sink
	for _, h := range []RepositoryHint{
		{Repository: "web", DeliveryID: "d1", Branch: "main", Commit: "abc"},
		{Repository: "api", DeliveryID: "d2", Tag: "v1.0.0"},
		{Repository: "web", DeliveryID: "d3", Branch: "main", Resumed: "deploy"},
	} {
		if err := s.HandHint(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	if got := sink.take(); len(got) != 3 || got[0] != (Change{Kind: ChangeHint, Pipeline: PipelineRef{Repository: "web"}}) {
		t.Fatalf("changes told: %+v", got)
	}
	got, err := s.TakeHints(ctx, []string{"web", "other"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].DeliveryID != "d1" || got[0].Commit != "abc" || got[1].Resumed != "deploy" || got[0].Created.IsZero() {
		t.Fatalf("taken: %+v", got)
	}
	// Taken once: a second take, or another replica's, finds none.
	if again, err := s.TakeHints(ctx, []string{"web"}); err != nil || len(again) != 0 {
		t.Fatalf("taken twice: %+v %v", again, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var taken []RepositoryHint
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hs, err := s.TakeHints(ctx, []string{"api"})
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			taken = append(taken, hs...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(taken) != 1 || taken[0].Tag != "v1.0.0" {
		t.Fatalf("racing takers got %+v", taken)
	}
	if err := s.HandHint(ctx, RepositoryHint{}); err == nil {
		t.Fatal("a hint without repository was accepted")
	}
}
