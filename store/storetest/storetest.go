// Package storetest puts rows into a store for other packages' tests.
package storetest

import (
	"context"
	"testing"

	"github.com/slipwayhq/slipway/store"
)

// EndedRun creates the run nr and moves it from queued through running to end, with
// reason; it returns the run as it ends.
func EndedRun(t testing.TB, st store.Store, nr store.NewRun, end store.RunStatus, reason string) store.Run {
	t.Helper()
	ctx := context.Background()
	run, err := st.CreateRun(ctx, nr)
	if err != nil {
		t.Fatal(err)
	}
	for _, to := range []store.RunStatus{store.RunRunning, end} {
		if run, err = st.TransitionRun(ctx, nr.Pipeline, run.BuildID, run.Status, to, reason); err != nil {
			t.Fatal(err)
		}
	}
	return run
}
