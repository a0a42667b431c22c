package schedule

import (
	"context"
	"sync"
	"testing"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/store"
)

// crashingRuns is a process that dies while starting a tick's run: before the transaction
// that records the run and the tick, during it, or right after it committed.
type crashingRuns struct {
	*fakeRuns
	at string // "before", "during", "after"

	mu    sync.Mutex
	crash func()
}

func (r *crashingRuns) setCrash(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.crash = f
}

func (r *crashingRuns) Start(ctx context.Context, f Fire) (bool, error) {
	r.mu.Lock()
	crash, st := r.crash, r.fakeRuns.st
	r.mu.Unlock()
	recordRun := func() error {
		_, err := st.CreateRuns(ctx, []store.NewRun{{Pipeline: f.Pipeline, Commit: "c0ffee", Trigger: store.TriggerCron}},
			store.Handled{Tick: &f.Claim})
		return err
	}
	switch r.at {
	case "before":
		crash()
		<-ctx.Done()
		return false, ctx.Err()
	case "during":
		// Killed with the transaction open: it never commits.
		crash()
		<-ctx.Done()
		err := recordRun()
		if err == nil {
			panic("a transaction under a cancelled context committed")
		}
		return false, err
	default:
		if err := recordRun(); err != nil {
			return false, err
		}
		crash()
		<-ctx.Done()
		return true, ctx.Err()
	}
}

// Whichever step of starting a tick's run the process dies at, the process that carries
// on from the store (a restart, or the replica taking the repository over) leaves exactly
// one run of the tick on record: it runs the tick when the dead one recorded nothing, and
// not when the run and the tick were recorded together.
func TestACrashWhileStartingATickLeavesExactlyOneRun(t *testing.T) {
	for _, at := range []string{"before", "during", "after"} {
		t.Run(at, func(t *testing.T) {
			st := openStore(t)
			ctx := context.Background()
			fc := clocktesting.NewFakeClock(utc(10, 0, 30))
			every := pipeline.Schedule{Cron: "*/1 * * * *"}

			dying := &crashingRuns{fakeRuns: newFakeRuns(), at: at}
			dying.fakeRuns.st = st
			a := start(t, st, fc, dying, nil)
			dying.setCrash(a.crash)
			set(t, a, map[string][]pipeline.Schedule{"p": {every}})
			a.next(t, "armed", "p")
			fc.SetTime(utc(10, 1, 1))
			a.next(t, "stopped", "p")

			next := newFakeRuns()
			b := start(t, st, fc, next, nil)
			set(t, b, map[string][]pipeline.Schedule{"p": {every}})
			b.next(t, "armed", "p")
			if at == "after" {
				b.quiet(t, next)
			} else if f := fire(t, next); !f.Tick.Equal(utc(10, 1, 0)) || !f.Missed {
				t.Fatalf("the next owner fired %+v, want the 10:01 tick, missed", f)
			}
			runs, err := st.ListRuns(ctx, ref("p"), 0)
			if err != nil || len(runs) != 1 || runs[0].BuildID != 1 {
				t.Fatalf("runs on record: %+v, %v; want exactly one, BUILD_ID 1", runs, err)
			}
			if got := lastTick(t, st, "p", every); !got.Equal(utc(10, 1, 0)) {
				t.Fatalf("recorded tick %v", got)
			}
		})
	}
}
