package reconciler

import (
	"container/list"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/policy"
	"github.com/slipwayhq/slipway/store"
)

// Executor records and runs jobs: what the dispatcher needs of a Runner.
type Executor interface {
	// QueueAll records runs of the jobs together with h (Runner.QueueAll).
	QueueAll(ctx context.Context, jobs []Job, holder string, h store.Handled) ([]Queued, error)
	// Execute starts the run, claiming its pipeline for state's holder in the same write
	// (store.StartRun), and runs it to its end. A *store.ClaimedError means another process
	// runs the pipeline and nothing was recorded: the run is still queued. A *StartError
	// means the store could not record the start: the run did not start, and Execute may
	// be called again with the same state. A run it returns in a final status was recorded
	// so by the store's TransitionRun, which ended the pipeline's claim for it in the same
	// commit.
	Execute(ctx context.Context, job Job, run store.Run, state *RunState) (store.Run, error)
	EndQueued(ctx context.Context, run store.Run, to store.RunStatus, reason string) error
	// NoteQueued records why queued runs wait, in one write.
	NoteQueued(ctx context.Context, runs []store.Run, reason string) error
}

// Claims is the store's hold on pipelines across processes: a process beats as a holder,
// and claims a pipeline for as long as it runs it.
type Claims interface {
	BeatHolder(ctx context.Context, holder, description string, ttl time.Duration) error
	RemoveHolder(ctx context.Context, holder string) error
	ClaimPipeline(ctx context.Context, ref store.PipelineRef, holder string, buildID int64) error
	ReleasePipeline(ctx context.Context, ref store.PipelineRef, holder string) error
}

// DispatcherOptions configure a Dispatcher.
type DispatcherOptions struct {
	Executor Executor
	Claims   Claims
	// Description says what this process is, for whoever waits on its claims; e.g.
	// "slipway serve". Host and pid are added.
	Description string
	// HolderTTL is how long the holder's claims outlive its last heartbeat (0: 30s); it
	// beats every third of that. ClaimRetry is how often a run whose pipeline another
	// process holds tries again (0: 1s).
	HolderTTL  time.Duration
	ClaimRetry time.Duration
	// NoApprovals: nobody can answer this process's runs (a CLI), so a run that reaches
	// an approval gate fails at once instead of waiting.
	NoApprovals bool
	// MaxInFlight bounds the runs executing at once across all pipelines (0: no bound).
	// More wait, queued, with a reason that says so. A run waiting at an approval gate
	// gives its place up until it is answered.
	MaxInFlight int
	// Requests, when set, is where other processes leave cancels and approval answers for
	// this process's runs: they are taken when Changes (optional) says one was left, and
	// every RequestPoll (0: 2s) in case that wake-up does not reach this process.
	Requests    RunRequests
	Changes     ChangeFollower
	RequestPoll time.Duration
	Log         *logrus.Entry
}

// Dispatcher is the one way runs start. It runs at most one run per pipeline at a time,
// in this process and across processes (a claim in the store): a run whose pipeline runs
// elsewhere waits, queued, until it is free. A run that arrives while another runs waits;
// a newer one arriving meanwhile supersedes the waiting one of its kind, which is recorded
// as superseded rather than silently dropped. Promotions are their own kind, one per target
// environment: a push or a schedule never supersedes a person's promotion to production,
// nor one promotion another's to a different environment. A run that is only waiting for health when a
// newer commit's run arrives is cancelled and ends superseded: its wait would only delay
// the newer commit, which replaces what it deployed anyway.
type Dispatcher struct {
	exec        Executor
	claims      Claims
	holder      string
	description string
	ttl         time.Duration
	claimRetry  time.Duration
	noApprovals bool
	log         *logrus.Entry
	// inFlight holds one token per run executing; nil: no bound.
	inFlight chan struct{}

	mu sync.Mutex
	// line holds, first in first out, the runs ready to start but for a place among the
	// runs in flight (*lined): entries, not goroutines. A push to a thousand repositories
	// lines up hundreds of runs at once, and a goroutine waiting for each held a stack.
	line            list.List
	waitingForPlace int // runs waiting on the inFlight channel (place.take), not in line
	peakInFlight    int // the most runs seen executing at once
	closed          bool
	slots           map[store.PipelineRef]*slot
	done            map[runKey]chan struct{}
	wg              sync.WaitGroup // runs started
	stopped         chan struct{}  // closed once shut down and the holder is removed
}

type runKey struct {
	ref     store.PipelineRef
	buildID int64
}

type slot struct {
	running *active
	waiting []*queued // in the order they start
}

// enqueue adds q behind the runs waiting and takes out those it supersedes: the waiting run
// of its kind (see Dispatcher).
func (s *slot) enqueue(q *queued) (superseded []*queued) {
	kept := s.waiting[:0]
	for _, w := range s.waiting {
		if w.kind() == q.kind() {
			superseded = append(superseded, w)
			continue
		}
		kept = append(kept, w)
	}
	s.waiting = append(kept, q)
	return superseded
}

// next takes the first waiting run out, or nil.
func (s *slot) next() *queued {
	if len(s.waiting) == 0 {
		return nil
	}
	q := s.waiting[0]
	s.waiting = s.waiting[1:]
	return q
}

// take takes the waiting run buildID out, or nil.
func (s *slot) take(buildID int64) *queued {
	for i, w := range s.waiting {
		if w.run.BuildID == buildID {
			s.waiting = append(s.waiting[:i], s.waiting[i+1:]...)
			return w
		}
	}
	return nil
}

// takeAll empties the queue.
func (s *slot) takeAll() []*queued {
	all := s.waiting
	s.waiting = nil
	return all
}

// active is the run a slot is executing. Its context is made when the slot is claimed,
// so a cancel that arrives before Execute begins is not lost.
type active struct {
	run    store.Run
	cancel context.CancelCauseFunc
	state  *RunState
}

type queued struct {
	job Job
	run store.Run
	// values is the submitter's context without its cancellation: the run's context
	// carries its own submitter's values and never wraps the run it waited behind, so a
	// pipeline whose queue never empties does not chain one context per run.
	values context.Context
	// noted, for a run that was lined up, is closed once why it waits is recorded: its
	// start waits for it, so the record never says queued after it says running.
	noted chan struct{}
}

// newQueued is a run of job waiting to start, whose context will carry ctx's values but
// never its cancellation (the submitter may be an HTTP request that ends long before the
// run).
func newQueued(ctx context.Context, job Job, run store.Run) *queued {
	return &queued{job: job, run: run, values: context.WithoutCancel(ctx)}
}

// lined is a run waiting in the dispatcher's line for a place: its slot is claimed, its
// run context made, and no goroutine runs it yet.
type lined struct {
	runCtx context.Context
	s      *slot
	a      *active
	q      *queued
	// started is set, under the dispatcher's mu, by whoever takes the entry out of the
	// line: a place freed (startLined) or the run cancelled (withdraw).
	started bool
	stop    func() bool // stops the withdrawal on cancellation
}

// kind is what a newer waiting run supersedes an older one by: the target environment of a
// promotion, "" for every other run.
func (q *queued) kind() string {
	if q.job.promote != nil {
		return "promote-to:" + q.job.promote.to
	}
	return ""
}

// ErrShuttingDown says the dispatcher no longer takes runs.
var ErrShuttingDown = errors.New("slipway is shutting down")

// StartDispatcher registers this process as a holder in the store and returns a
// Dispatcher that keeps it alive until ctx ends. Then it shuts down: running runs are
// cancelled, waiting ones end cancelled, and the holder is removed once all have ended
// (Wait).
func StartDispatcher(ctx context.Context, o DispatcherOptions) (*Dispatcher, error) {
	d := &Dispatcher{exec: o.Executor, claims: o.Claims, ttl: o.HolderTTL, claimRetry: o.ClaimRetry, noApprovals: o.NoApprovals, log: o.Log,
		slots: map[store.PipelineRef]*slot{}, done: map[runKey]chan struct{}{}, stopped: make(chan struct{})}
	if d.ttl <= 0 {
		d.ttl = 30 * time.Second
	}
	if d.claimRetry <= 0 {
		d.claimRetry = time.Second
	}
	if o.MaxInFlight > 0 {
		d.inFlight = make(chan struct{}, o.MaxInFlight)
	}
	host, _ := os.Hostname()
	d.description = fmt.Sprintf("%s on %s (pid %d)", o.Description, host, os.Getpid())
	var id [6]byte
	_, _ = rand.Read(id[:])
	d.holder = fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(id[:]))
	if err := d.claims.BeatHolder(ctx, d.holder, d.description, d.ttl); err != nil {
		return nil, err
	}
	go d.beat(ctx)
	if o.Requests != nil {
		poll := o.RequestPoll
		if poll <= 0 {
			poll = defaultRequestPoll
		}
		go d.serveRequests(ctx, o.Requests, o.Changes, poll)
	}
	return d, nil
}

// Holder is this process's name in the store's claims.
func (d *Dispatcher) Holder() string { return d.holder }

// beat renews the holder until ctx ends, then shuts the dispatcher down.
func (d *Dispatcher) beat(ctx context.Context) {
	t := time.NewTicker(d.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			d.shutdown(context.WithoutCancel(ctx))
			return
		case <-t.C:
			if err := d.claims.BeatHolder(ctx, d.holder, d.description, d.ttl); err != nil && ctx.Err() == nil {
				d.log.WithError(err).Warn("holder heartbeat; another process may take this one's pipelines if it keeps failing")
			}
		}
	}
}

func (d *Dispatcher) shutdown(ctx context.Context) {
	d.mu.Lock()
	d.closed = true
	var waiting []*queued
	for _, s := range d.slots {
		waiting = append(waiting, s.takeAll()...)
		if s.running != nil {
			s.running.cancel(nil)
		}
	}
	d.mu.Unlock()
	for _, q := range waiting {
		d.end(ctx, q, store.RunCancelled, "slipway shut down before the run started")
	}
	d.wg.Wait()
	if err := d.claims.RemoveHolder(ctx, d.holder); err != nil {
		d.log.WithError(err).Warn("remove holder; its claims lapse after the heartbeat ttl")
	}
	close(d.stopped)
}

// Wait blocks until the dispatcher's context has ended, every run has ended and the
// holder is removed.
func (d *Dispatcher) Wait() { <-d.stopped }

// Submit queues a run of the job (allocating its BUILD_ID now) and starts it when the
// pipeline is free. It returns the queued run.
func (d *Dispatcher) Submit(ctx context.Context, job Job) (store.Run, error) {
	q, err := d.SubmitAll(ctx, []Job{job}, store.Handled{})
	if err != nil {
		return store.Run{}, err
	}
	return q[0].Run, q[0].Err
}

// SubmitAll is Submit for several jobs, whose runs are recorded in one store transaction
// together with h: the cron tick, pushed head or new tag they are for. A crash then leaves
// the runs and h on record, or neither, so whoever looks next creates them exactly once. A
// run recorded but not yet started when the process dies ends interrupted like any other
// of its runs. An error means nothing was recorded (errors.Is store.ErrHandledElsewhere:
// another process recorded h first); otherwise each job's outcome is in its Queued, and h
// is recorded even if every job was refused.
func (d *Dispatcher) SubmitAll(ctx context.Context, jobs []Job, h store.Handled) ([]Queued, error) {
	if d.isClosed() {
		return nil, ErrShuttingDown
	}
	out, err := d.exec.QueueAll(ctx, jobs, d.holder, h)
	if err != nil {
		return nil, err
	}
	var toNote []*queued
	for i, q := range out {
		if q.Err == nil {
			if w := newQueued(ctx, jobs[i], q.Run); d.enqueue(ctx, w) {
				toNote = append(toNote, w)
			}
		}
	}
	d.noteLined(ctx, toNote)
	return out, nil
}

// enqueue starts a recorded run, or queues it behind the pipeline's running one. It
// reports whether q was lined up for a place (startLocked): the caller records why it waits.
func (d *Dispatcher) enqueue(ctx context.Context, q *queued) bool {
	run, job := q.run, q.job
	d.mu.Lock()
	d.done[runKey{run.Pipeline, run.BuildID}] = make(chan struct{})
	if d.closed {
		d.mu.Unlock()
		d.end(ctx, q, store.RunCancelled, "slipway shut down before the run started")
		return false
	}
	s := d.slotLocked(run.Pipeline)
	if s.running != nil {
		older := s.enqueue(q)
		// Only a newer commit makes a health wait, or a wait for an approval of an older
		// commit, pointless; a schedule or a person asking for another run waits its turn. A
		// promotion deploys another environment than a push's run: a push never cuts it short.
		if job.Trigger == store.TriggerPush && s.running.run.Trigger != store.TriggerPromote &&
			(s.running.state.InHealthWait() || s.running.state.AwaitingApproval()) {
			s.running.cancel(&superseded{by: run.BuildID})
		}
		d.mu.Unlock()
		for _, o := range older {
			d.end(ctx, o, store.RunSuperseded, "superseded by BUILD_ID "+buildIDString(run.BuildID))
		}
		return false
	}
	return d.startLocked(d.claimSlotLocked(q.values, s, run), s, q)
}

// ErrBusy says SubmitIfIdle found a run of the pipeline queued or running.
var ErrBusy = errors.New("a run of the pipeline is queued or running")

// SubmitIfIdle is Submit for a pipeline with no run queued or running, and ErrBusy
// otherwise. The slot is claimed before the run is recorded, so nothing can slip in
// between the check and the start (what a schedule's forbid needs).
func (d *Dispatcher) SubmitIfIdle(ctx context.Context, job Job) (store.Run, error) {
	q, err := d.SubmitIfIdleWith(ctx, job, store.Handled{})
	if err != nil {
		return store.Run{}, err
	}
	return q.Run, q.Err
}

// SubmitIfIdleWith is SubmitIfIdle recording the run together with h, as SubmitAll does:
// an error (ErrBusy among them) means nothing was recorded; a job refused has its error in
// the Queued, and h was recorded.
func (d *Dispatcher) SubmitIfIdleWith(ctx context.Context, job Job, h store.Handled) (Queued, error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return Queued{}, ErrShuttingDown
	}
	s := d.slotLocked(job.Ref)
	if s.running != nil || len(s.waiting) > 0 {
		d.mu.Unlock()
		return Queued{}, fmt.Errorf("start %s: %w", job.Ref.Name, ErrBusy)
	}
	w := newQueued(ctx, job, store.Run{}) // its run once recorded
	runCtx := d.claimSlotLocked(w.values, s, store.Run{})
	claim := s.running
	d.mu.Unlock()

	var q Queued
	out, err := d.exec.QueueAll(ctx, []Job{job}, d.holder, h)
	if err == nil {
		q = out[0]
	}
	d.mu.Lock()
	if err != nil || q.Err != nil {
		// Give the slot back; a run submitted meanwhile waited behind the claim.
		claim.cancel(nil)
		s.running = nil
		if next := s.next(); next != nil {
			d.startNotingLocked(d.claimSlotLocked(next.values, s, next.run), s, next)
		} else {
			d.mu.Unlock()
		}
		return q, err
	}
	run := q.Run
	claim.run = run
	w.run = run
	d.done[runKey{run.Pipeline, run.BuildID}] = make(chan struct{})
	if d.closed {
		// Shut down while the run was recorded: the shutdown took no count of it.
		claim.cancel(nil)
		s.running = nil
		d.mu.Unlock()
		d.end(ctx, w, store.RunCancelled, "slipway shut down before the run started")
		return q, nil
	}
	d.startNotingLocked(runCtx, s, w)
	return q, nil
}

// RecordSuperseded records a run of the job that never starts: a pushed commit that a
// newer one overtook before its run could start.
func (d *Dispatcher) RecordSuperseded(ctx context.Context, job Job, reason string) (store.Run, error) {
	out, err := d.exec.QueueAll(ctx, []Job{job}, d.holder, store.Handled{})
	if err != nil {
		return store.Run{}, err
	}
	if out[0].Err != nil {
		return store.Run{}, out[0].Err
	}
	run := out[0].Run
	return run, d.exec.EndQueued(context.WithoutCancel(ctx), run, store.RunSuperseded, reason)
}

func (d *Dispatcher) isClosed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed
}

func (d *Dispatcher) slotLocked(ref store.PipelineRef) *slot {
	s := d.slots[ref]
	if s == nil {
		s = &slot{}
		d.slots[ref] = s
	}
	return s
}

// claimSlotLocked makes run the slot's running run and returns the context it runs
// under: values, a queued run's (newQueued); the dispatcher cancels it on request or at
// shutdown.
func (d *Dispatcher) claimSlotLocked(values context.Context, s *slot, run store.Run) context.Context {
	runCtx, cancel := context.WithCancelCause(values)
	state := &RunState{}
	state.approval.closed = d.noApprovals
	state.place = &place{d: d}
	state.holder = d.holder
	s.running = &active{run: run, cancel: cancel, state: state}
	return runCtx
}

// startLocked runs q in the slot s.running claims if a place among the runs in flight is
// free and no run waits in line for one; otherwise it puts q at the end of the line, and
// a place freed starts it (startLined). It releases d.mu and reports whether q was lined
// up: the caller then records why it waits (noteLined), which its start waits for.
func (d *Dispatcher) startLocked(runCtx context.Context, s *slot, q *queued) bool {
	a := s.running
	d.wg.Add(1)
	if d.inFlight == nil || (d.line.Len() == 0 && a.state.place.tryTakeLocked()) {
		d.mu.Unlock()
		go d.loop(runCtx, s, a, q)
		return false
	}
	q.noted = make(chan struct{})
	l := &lined{runCtx: runCtx, s: s, a: a, q: q}
	e := d.line.PushBack(l)
	l.stop = context.AfterFunc(runCtx, func() { d.withdraw(e) })
	d.mu.Unlock()
	return true
}

// startNotingLocked is startLocked (d.mu held; it releases it), recording at once why q
// waits if it was lined up.
func (d *Dispatcher) startNotingLocked(runCtx context.Context, s *slot, q *queued) {
	if d.startLocked(runCtx, s, q) {
		d.noteLined(runCtx, []*queued{q})
	}
}

// startLined starts lined-up runs, first in first out, while places are free. A run that
// has its goroutine already and waits to take a place (place.take: back from an approval
// gate, a health wait or a build slot, or trying its start again) is served first: its
// wait is on the channel, which hands it the place freed before this looks.
func (d *Dispatcher) startLined() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.line.Len() > 0 {
		e := d.line.Front()
		l := e.Value.(*lined)
		if !l.a.state.place.tryTakeLocked() {
			return
		}
		d.line.Remove(e)
		l.started = true
		l.stop()
		go d.loop(l.runCtx, l.s, l.a, l.q)
	}
}

// withdraw takes a run cancelled while lined up out of the line and runs it without a
// place: Execute records it ended as a queued run.
func (d *Dispatcher) withdraw(e *list.Element) {
	d.mu.Lock()
	l := e.Value.(*lined)
	if l.started {
		d.mu.Unlock()
		return
	}
	d.line.Remove(e)
	l.started = true
	d.mu.Unlock()
	go d.loop(l.runCtx, l.s, l.a, l.q)
}

// noteLined records, in one write, why the runs lined up wait, and lets them start: a run
// given a place meanwhile waits for it, so its record never says queued after running.
// If the write fails (ctx ended: a shutdown) the runs start or end all the same.
func (d *Dispatcher) noteLined(ctx context.Context, qs []*queued) {
	if len(qs) == 0 {
		return
	}
	reason := placeReason(cap(d.inFlight))
	runs := make([]store.Run, len(qs))
	for i, q := range qs {
		runs[i] = q.run
		d.log.WithFields(logrus.Fields{"pipeline": q.run.Pipeline.Name, "build_id": q.run.BuildID}).Info(reason)
	}
	if err := d.exec.NoteQueued(ctx, runs, reason); err != nil {
		d.log.WithError(err).WithField("runs", len(runs)).Warn("record why the runs wait")
	}
	for _, q := range qs {
		close(q.noted)
	}
}

// placeReason is a queued run's reason while it waits for a place.
func placeReason(maxInFlight int) string {
	return fmt.Sprintf("waiting for a place: %d runs in flight, the most runs.maxInFlight allows", maxInFlight)
}

// Active reports whether a run of the pipeline is running or waiting to run here.
func (d *Dispatcher) Active(ref store.PipelineRef) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.slots[ref]
	return s != nil && (s.running != nil || len(s.waiting) > 0)
}

// Done returns a channel closed once the run has ended (at once for a run this
// dispatcher does not know).
func (d *Dispatcher) Done(ref store.PipelineRef, buildID int64) <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.done[runKey{ref, buildID}]; ok {
		return c
	}
	c := make(chan struct{})
	close(c)
	return c
}

// ErrNotActive says a run asked to be cancelled is neither queued nor running here.
var ErrNotActive = errors.New("the run is neither queued nor running")

// Cancel ends one run of the pipeline: a waiting run never starts, a running one has its
// context cancelled (builds, applies and health waits stop; nothing more is applied) and
// ends cancelled with reason. It returns once the cancellation is recorded or requested.
func (d *Dispatcher) Cancel(ctx context.Context, ref store.PipelineRef, buildID int64, reason string) error {
	d.mu.Lock()
	s := d.slots[ref]
	if s == nil {
		d.mu.Unlock()
		return fmt.Errorf("cancel %s BUILD_ID %d: %w", ref.Name, buildID, ErrNotActive)
	}
	if q := s.take(buildID); q != nil {
		d.mu.Unlock()
		d.end(ctx, q, store.RunCancelled, reason)
		return nil
	}
	if s.running != nil && s.running.run.BuildID == buildID {
		s.running.cancel(&cancelled{reason: reason})
		d.mu.Unlock()
		return nil
	}
	d.mu.Unlock()
	return fmt.Errorf("cancel %s BUILD_ID %d: %w", ref.Name, buildID, ErrNotActive)
}

// Answer hands a person's approval or rejection to a run of the pipeline that waits at
// an approval gate here. It fails with ErrNotActive, ErrNotAwaiting or (errors.Is)
// policy.ErrNotApprover (or policy.ErrApproversUnknown when a team's members cannot be
// read).
func (d *Dispatcher) Answer(ctx context.Context, ref store.PipelineRef, buildID int64, a policy.Answer) error {
	d.mu.Lock()
	s := d.slots[ref]
	var state *RunState
	if s != nil && s.running != nil && s.running.run.BuildID == buildID {
		state = s.running.state
	}
	d.mu.Unlock()
	if state == nil {
		return fmt.Errorf("answer %s BUILD_ID %d: %w", ref.Name, buildID, ErrNotActive)
	}
	if err := state.answer(ctx, a); err != nil {
		return fmt.Errorf("answer %s BUILD_ID %d: %w", ref.Name, buildID, err)
	}
	return nil
}

// CancelActive cancels whatever run of the pipeline is waiting or running, with reason.
func (d *Dispatcher) CancelActive(ctx context.Context, ref store.PipelineRef, reason string) {
	d.mu.Lock()
	s := d.slots[ref]
	var waiting []*queued
	if s != nil {
		waiting = s.takeAll()
		if s.running != nil {
			s.running.cancel(&cancelled{reason: reason})
		}
	}
	d.mu.Unlock()
	for _, q := range waiting {
		d.end(ctx, q, store.RunCancelled, reason)
	}
}

// cancelled is the cancellation cause of a run someone (or a schedule) cancelled.
type cancelled struct{ reason string }

func (c *cancelled) Error() string { return c.reason }

// loop runs q, then starts (or lines up) whatever waited for the pipeline meanwhile.
func (d *Dispatcher) loop(runCtx context.Context, s *slot, a *active, q *queued) {
	defer d.wg.Done()
	if q.noted != nil {
		<-q.noted
	}
	ref := q.run.Pipeline
	// A place first (a run started from the line has it already), then the start claims
	// the pipeline in the write that moves the run to running. A pipeline another process
	// runs is waited for without a place, so the wait keeps no other pipeline's run out;
	// then the run starts again. So is a start the store could not record (an outage
	// outlasting its own retries): the run stays queued and tries again, further apart each
	// time, until it starts or is cancelled.
	var final store.Run
	var err error
	waited := false // the wait ended holding the claim
	var retry time.Duration
	for {
		// Not placed means cancelled while waiting; Execute records that. After a start
		// whose answer was lost the run may be running on record: its wait is not told as
		// a queued one.
		_ = a.state.place.take(runCtx, q.run, !a.state.mayHaveStarted())
		final, err = d.exec.Execute(runCtx, q.job, q.run, a.state)
		var unstarted *StartError
		if errors.As(err, new(*store.ClaimedError)) {
			a.state.place.release()
			waited = d.claim(runCtx, q.run) || waited
			continue
		}
		if !errors.As(err, &unstarted) {
			break
		}
		a.state.place.release()
		retry = nextStoreRetry(retry)
		d.log.WithError(unstarted.Err).WithFields(logrus.Fields{"pipeline": ref.Name, "build_id": q.run.BuildID,
			"retry_in": retry.String()}).Warn("start the run; trying again")
		// Cancelled meanwhile: Execute records the run ended as a queued one.
		backedOff := a.state.backingOff()
		_ = sleepCtx(runCtx, retry)
		backedOff()
	}
	if err != nil {
		d.log.WithError(err).WithFields(logrus.Fields{"pipeline": ref.Name, "build_id": q.run.BuildID}).Error("run")
	}
	a.state.place.release()
	// A run recorded ended released its claim in that write. An error may hide a start
	// whose commit did apply (its answer lost): whatever this holder claimed goes, since
	// no other run of the pipeline works in this process meanwhile.
	if err != nil || ((waited || a.state.claimedAtStart()) && !final.Status.Final()) {
		if err := d.claims.ReleasePipeline(context.WithoutCancel(runCtx), ref, d.holder); err != nil {
			d.log.WithError(err).WithField("pipeline", ref.Name).Warn("release the pipeline's claim; it lapses with the heartbeat")
		}
	}
	a.cancel(nil)
	d.mu.Lock()
	d.closeDoneLocked(q.run)
	next := s.next()
	s.running = nil
	if next == nil {
		d.mu.Unlock()
		return
	}
	// Claimed before the lock is released, so Submit never starts a second run of the
	// pipeline; the next run takes its turn for a place like any other.
	d.startNotingLocked(d.claimSlotLocked(next.values, s, next.run), s, next)
}

// claim waits (queued) while another process runs the pipeline, and holds it in the
// store for run once it is free. It reports whether the claim is held: false when the
// run was cancelled meanwhile, which Execute then records. When the wait begins, the run's
// queued reason names the other process's run, once: a reason the place's wait recorded
// before would otherwise be left saying the run waits for a place.
func (d *Dispatcher) claim(ctx context.Context, run store.Run) bool {
	noted := false
	for {
		err := d.claims.ClaimPipeline(ctx, run.Pipeline, d.holder, run.BuildID)
		if err == nil {
			return true
		}
		log := d.log.WithFields(logrus.Fields{"pipeline": run.Pipeline.Name, "build_id": run.BuildID})
		var other *store.ClaimedError
		switch {
		case ctx.Err() != nil:
			return false
		case errors.As(err, &other) && !noted:
			reason := "waiting for another process: " + other.Error()
			log.WithField("holder", other.Description).Info(reason)
			if err := d.exec.NoteQueued(ctx, []store.Run{run}, reason); err != nil {
				log.WithError(err).Warn("record why the run waits")
			}
			noted = true
		case !errors.As(err, &other):
			log.WithError(err).Warn("claim the pipeline; trying again")
		}
		if !sleepCtx(ctx, d.claimRetry) {
			return false
		}
	}
}

// end records how a run that never started ended. The caller may be an HTTP request that
// is gone by now; the run has left the queue either way, so its record must follow.
func (d *Dispatcher) end(ctx context.Context, q *queued, to store.RunStatus, reason string) {
	if err := d.exec.EndQueued(context.WithoutCancel(ctx), q.run, to, reason); err != nil {
		d.log.WithError(err).WithField("build_id", q.run.BuildID).Error("record run status")
	}
	d.mu.Lock()
	d.closeDoneLocked(q.run)
	d.mu.Unlock()
}

func (d *Dispatcher) closeDoneLocked(run store.Run) {
	k := runKey{run.Pipeline, run.BuildID}
	if c, ok := d.done[k]; ok {
		close(c)
		delete(d.done, k)
	}
}

// InFlight reports how many runs execute now and how many queued runs wait for a place
// among them (runs.maxInFlight).
func (d *Dispatcher) InFlight() (running, waiting int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.inFlight), d.waitingForPlace + d.line.Len()
}

// StartRetrying reports how many runs wait to try their start again because the store could
// not record it (an outage past its own retries): queued on record, holding no place, and
// counted by neither InFlight figure. A scrape's walk over the pipelines keeps no count that
// a run's end could leave wrong.
func (d *Dispatcher) StartRetrying() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, s := range d.slots {
		if s.running != nil && s.running.state.retryingStart() {
			n++
		}
	}
	return n
}

// PeakInFlight is the most runs that executed at once since the dispatcher started (0
// without a bound): the metrics show it, so the bound can be seen to hold.
func (d *Dispatcher) PeakInFlight() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.peakInFlight
}

// notePeakLocked records the places now held; called with d.mu held, after a place was taken.
func (d *Dispatcher) notePeakLocked() { d.peakInFlight = max(d.peakInFlight, len(d.inFlight)) }

// place is a run's share of the bound on runs in flight.
type place struct {
	d    *Dispatcher
	mu   sync.Mutex
	held bool
}

// take waits for a place among the runs in flight, recording on the queued run why it
// waits (queued: the run has not started yet). It returns false if ctx ended first.
func (p *place) take(ctx context.Context, run store.Run, queued bool) bool {
	if p == nil || p.d.inFlight == nil {
		return true
	}
	d := p.d
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held {
		return true
	}
	if ctx.Err() != nil {
		return false // a run cancelled, withdrawn from the line among others, needs no place
	}
	d.mu.Lock()
	took := p.tryTakeLocked()
	d.mu.Unlock()
	if took {
		return true
	}
	reason := placeReason(cap(d.inFlight))
	log := d.log.WithFields(logrus.Fields{"pipeline": run.Pipeline.Name, "build_id": run.BuildID})
	log.Info(reason)
	if queued {
		if err := d.exec.NoteQueued(ctx, []store.Run{run}, reason); err != nil {
			log.WithError(err).Warn("record why the run waits")
		}
	}
	d.mu.Lock()
	d.waitingForPlace++
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.waitingForPlace--
		d.mu.Unlock()
	}()
	select {
	case d.inFlight <- struct{}{}:
		p.held = true
		d.mu.Lock()
		d.notePeakLocked()
		d.mu.Unlock()
		return true
	case <-ctx.Done():
		return false
	}
}

// tryTakeLocked takes a free place without waiting; d.mu is held, and p.mu too unless no
// goroutine runs p's run yet (startLocked, startLined).
func (p *place) tryTakeLocked() bool {
	select {
	case p.d.inFlight <- struct{}{}:
		p.held = true
		p.d.notePeakLocked()
		return true
	default:
		return false
	}
}

// release gives the place up (a run waiting for people, or one that ended).
func (p *place) release() {
	p.releaseIf(func() bool { return true })
}

// releaseIf gives the place up if idle says so, asked under the place's lock: a task that
// starts counts itself before it takes the place (take, under the same lock), so it is
// either seen by idle or finds the place given up and waits for one; it never works on a
// place released behind it.
func (p *place) releaseIf(idle func() bool) {
	if p == nil || p.d.inFlight == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held && idle() {
		<-p.d.inFlight
		p.held = false
		p.d.startLined()
	}
}
