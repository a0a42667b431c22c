package reconciler

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/store"
)

// fakeExecutor records what the dispatcher asks of it. Execute blocks until released, and
// can pretend to be in a health wait.
type fakeExecutor struct {
	mu       sync.Mutex
	next     int64
	started  []int64
	ended    map[int64]string // BUILD_ID → status and reason
	release  chan struct{}
	inWait   bool
	startedC chan int64
}

func newFakeExecutor(inWait bool) *fakeExecutor {
	return &fakeExecutor{ended: map[int64]string{}, release: make(chan struct{}), inWait: inWait, startedC: make(chan int64, 10)}
}

func (f *fakeExecutor) Queue(_ context.Context, _ *Checkout, p *pipeline.Pipeline, _ store.Trigger, _ int64) (store.Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	return store.Run{Pipeline: store.PipelineRef{Repository: "r", Name: p.Name}, BuildID: f.next, Status: store.RunQueued}, nil
}

func (f *fakeExecutor) Execute(ctx context.Context, _ *Checkout, _ *pipeline.Pipeline, run store.Run) (store.Run, error) {
	f.mu.Lock()
	f.started = append(f.started, run.BuildID)
	f.mu.Unlock()
	if f.inWait {
		done := inHealthWait(ctx)
		defer done()
	}
	f.startedC <- run.BuildID
	status := "succeeded"
	select {
	case <-f.release:
	case <-ctx.Done():
		status = "cancelled"
		if st, _ := cancelOutcome(ctx); st == store.RunSuperseded {
			status = "superseded"
		}
	}
	f.mu.Lock()
	f.ended[run.BuildID] = status
	f.mu.Unlock()
	return run, nil
}

func (f *fakeExecutor) EndQueued(_ context.Context, run store.Run, to store.RunStatus, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ended[run.BuildID] = string(to) + ": " + reason
	return nil
}

func waitStarted(t *testing.T, f *fakeExecutor, want int64) {
	t.Helper()
	select {
	case got := <-f.startedC:
		if got != want {
			t.Fatalf("started BUILD_ID %d, want %d", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("BUILD_ID %d never started", want)
	}
}

func TestDispatcherSupersedesTheWaitingRun(t *testing.T) {
	f := newFakeExecutor(false)
	d := &Dispatcher{Runner: f, Log: logrus.NewEntry(logrus.New())}
	p := &pipeline.Pipeline{Name: "app"}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := d.Submit(ctx, &Checkout{}, p, store.TriggerPush, 0); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			waitStarted(t, f, 1)
		}
	}
	f.release <- struct{}{} // run 1 ends; run 3 (not 2) starts
	waitStarted(t, f, 3)
	f.release <- struct{}{}
	d.Wait()
	want := map[int64]string{1: "succeeded", 2: "superseded: superseded by BUILD_ID 3", 3: "succeeded"}
	for id, w := range want {
		if f.ended[id] != w {
			t.Errorf("BUILD_ID %d ended %q, want %q", id, f.ended[id], w)
		}
	}
}

func TestDispatcherCancelsAHealthWaitForANewerRun(t *testing.T) {
	f := newFakeExecutor(true)
	d := &Dispatcher{Runner: f, Log: logrus.NewEntry(logrus.New())}
	p := &pipeline.Pipeline{Name: "app"}
	ctx := context.Background()
	if _, err := d.Submit(ctx, &Checkout{}, p, store.TriggerPush, 0); err != nil {
		t.Fatal(err)
	}
	waitStarted(t, f, 1) // and in its health wait
	if _, err := d.Submit(ctx, &Checkout{}, p, store.TriggerPush, 0); err != nil {
		t.Fatal(err)
	}
	waitStarted(t, f, 2)
	f.release <- struct{}{}
	d.Wait()
	if f.ended[1] != "superseded" || f.ended[2] != "succeeded" {
		t.Fatalf("ended = %v, want 1 superseded during its health wait and 2 succeeded", f.ended)
	}
}

func TestDispatcherSubmitIfIdle(t *testing.T) {
	f := newFakeExecutor(false)
	d := &Dispatcher{Runner: f, Log: logrus.NewEntry(logrus.New())}
	p := &pipeline.Pipeline{Name: "app"}
	ctx := context.Background()
	if _, err := d.SubmitIfIdle(ctx, &Checkout{}, p, store.TriggerCron); err != nil {
		t.Fatal(err)
	}
	waitStarted(t, f, 1)
	// Busy while run 1 runs: nothing is recorded, no BUILD_ID spent.
	if _, err := d.SubmitIfIdle(ctx, &Checkout{}, p, store.TriggerCron); !errors.Is(err, ErrBusy) {
		t.Fatalf("SubmitIfIdle during a run: %v, want ErrBusy", err)
	}
	// An ordinary Submit still queues behind it, and makes the pipeline busy too.
	if _, err := d.Submit(ctx, &Checkout{}, p, store.TriggerPush, 0); err != nil {
		t.Fatal(err)
	}
	f.release <- struct{}{}
	waitStarted(t, f, 2)
	f.release <- struct{}{}
	d.Wait()
	if _, err := d.SubmitIfIdle(ctx, &Checkout{}, p, store.TriggerCron); err != nil {
		t.Fatalf("SubmitIfIdle when idle: %v", err)
	}
	waitStarted(t, f, 3)
	f.release <- struct{}{}
	d.Wait()
	if f.ended[1] != "succeeded" || f.ended[2] != "succeeded" || f.ended[3] != "succeeded" || f.next != 3 {
		t.Fatalf("ended = %v, BUILD_IDs handed out %d", f.ended, f.next)
	}
}
