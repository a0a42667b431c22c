package sweep

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/store"
)

type fakeStore struct {
	stale   []store.Run
	pending []store.Interruption
}

func (f *fakeStore) MarkStaleRuns(context.Context) ([]store.Run, error) {
	out := f.stale
	f.stale = nil
	return out, nil
}

func (f *fakeStore) PendingInterruptions(context.Context, int) ([]store.Interruption, error) {
	return f.pending, nil
}

type fakeRetrier struct {
	asked []int64
	err   error
}

func (f *fakeRetrier) RetryInterrupted(_ context.Context, r store.Run) error {
	f.asked = append(f.asked, r.BuildID)
	return f.err
}

func run(repo string, buildID int64) store.Run {
	return store.Run{Pipeline: store.PipelineRef{Repository: repo, Name: "p"}, BuildID: buildID, Status: store.RunInterrupted}
}

// A sweep logs what it marked and asks for the retries of the repositories this process
// owns only; a decision that keeps failing is logged once, not every sweep.
func TestSweepDecidesOwnedRunsAndLogsFailuresOnce(t *testing.T) {
	var out bytes.Buffer
	log := logrus.New()
	log.SetOutput(&out)
	st := &fakeStore{stale: []store.Run{run("mine", 1)},
		pending: []store.Interruption{{Run: run("mine", 1)}, {Run: run("theirs", 2)}}}
	r := &fakeRetrier{err: errors.New("git server down")}
	s := New(Options{Store: st, Retrier: r, Owns: func(repo string) bool { return repo == "mine" }, Log: logrus.NewEntry(log)})
	s.Sweep(context.Background())
	s.Sweep(context.Background())
	if len(r.asked) != 2 || r.asked[0] != 1 || r.asked[1] != 1 {
		t.Fatalf("retries asked for %v, want run 1 (owned) in each sweep, never run 2", r.asked)
	}
	if n := strings.Count(out.String(), "run interrupted"); n != 1 {
		t.Errorf("the marked run was logged %d times, want once:\n%s", n, out.String())
	}
	if n := strings.Count(out.String(), "git server down"); n != 1 {
		t.Errorf("the failing decision was logged %d times over two sweeps, want once:\n%s", n, out.String())
	}
	// Without Owns every repository is this process's.
	r2 := &fakeRetrier{}
	New(Options{Store: st, Retrier: r2, Log: logrus.NewEntry(log)}).Sweep(context.Background())
	if len(r2.asked) != 2 {
		t.Fatalf("without Owns, retries asked for %v, want both runs", r2.asked)
	}
}
