package store

import (
	"context"
	"sync"
	"testing"
)

// TestConcurrentFirstOpens: the daemon and a CLI verb opening a new store at the same
// moment both succeed; neither sees "database is locked" while the other switches the
// file to WAL mode or migrates it. On PostgreSQL, replicas starting together on an empty
// schema take turns to migrate it.
func TestConcurrentFirstOpens(t *testing.T) {
	rounds := 20
	if onPostgres() {
		rounds = 5 // each round is a new schema migrated from nothing
	}
	for round := 0; round < rounds; round++ {
		path := freshLoc(t)
		var wg sync.WaitGroup
		errs := make([]error, 6)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := openLoc(context.Background(), path)
				if err == nil {
					err = s.Close()
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d, opener %d: %v", round, i, err)
			}
		}
	}
}
