package store

import "testing"

// SetSuspended says whether the pipeline was suspended before the change, so that a resume
// can tell a real resume from a repeated one.
func TestSetSuspendedSaysWhatWasBefore(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	for i, step := range []struct {
		suspend, wantWas bool
	}{{true, false}, {true, true}, {false, true}, {false, false}} {
		p, was, err := s.SetSuspended(ctx, testPipeline, step.suspend, "alice", "freeze")
		if err != nil {
			t.Fatal(err)
		}
		if was != step.wantWas || p.Suspended != step.suspend {
			t.Errorf("step %d: suspended %v, was %v; want %v, was %v", i, p.Suspended, was, step.suspend, step.wantWas)
		}
	}
}
