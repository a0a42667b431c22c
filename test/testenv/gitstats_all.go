package testenv

import (
	"context"
	"testing"
	"time"
)

// GitStatsAll returns the Git server's counters of every repository it has served, by name
// (the path under GitRoot without ".git"). Counters only grow: compare two readings.
func (e *Env) GitStatsAll(t testing.TB) map[string]GitRepoStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	all, err := e.gitStats(ctx)
	if err != nil {
		t.Fatalf("testenv: %v; %s", err, howToGet)
	}
	return all
}
