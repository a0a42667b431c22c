package reconciler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/policy"
	"github.com/slipwayhq/slipway/store"
)

// approvalState is the part of a RunState that a waiting gate uses: which stage waits, and
// the answers people give it.
type approvalState struct {
	mu      sync.Mutex
	waiting *pipeline.Stage
	// admit decides who may answer the waiting stage (StageGate.MayAnswer of the run's
	// repository); set with waiting.
	admit   func(ctx context.Context, actor string) (string, error)
	answers chan policy.Answer
	// closed: nobody can answer this process's runs (the CLI's own engine has no API),
	// so a run that would wait fails at once instead.
	closed bool
}

// AwaitingApproval reports whether the run waits at a stage's approval gate.
func (s *RunState) AwaitingApproval() bool {
	s.approval.mu.Lock()
	defer s.approval.mu.Unlock()
	return s.approval.waiting != nil
}

// ErrNotAwaiting says an answer came for a run that waits at no gate.
var ErrNotAwaiting = errors.New("the run is not waiting for an approval")

// answer hands a person's answer to the waiting gate, if actor may give it. Whether they
// may can take a call to the forge (team membership), made without holding the lock.
func (s *RunState) answer(ctx context.Context, a policy.Answer) error {
	s.approval.mu.Lock()
	stage, admit := s.approval.waiting, s.approval.admit
	s.approval.mu.Unlock()
	if stage == nil {
		return ErrNotAwaiting
	}
	via, err := admit(ctx, a.Actor)
	if err != nil {
		return err
	}
	a.Via = via
	s.approval.mu.Lock()
	defer s.approval.mu.Unlock()
	if s.approval.waiting != stage {
		// The gate stopped waiting (or moved on to another stage) meanwhile.
		return ErrNotAwaiting
	}
	select {
	case s.approval.answers <- a:
		return nil
	default:
		return fmt.Errorf("too many answers at once; try again")
	}
}

func (s *RunState) approvalsClosed() bool {
	s.approval.mu.Lock()
	defer s.approval.mu.Unlock()
	return s.approval.closed
}

func (s *RunState) startWaiting(stage *pipeline.Stage, admit func(ctx context.Context, actor string) (string, error)) <-chan policy.Answer {
	s.approval.mu.Lock()
	defer s.approval.mu.Unlock()
	s.approval.waiting, s.approval.admit = stage, admit
	if s.approval.answers == nil {
		s.approval.answers = make(chan policy.Answer, 16)
	}
	return s.approval.answers
}

func (s *RunState) stopWaiting() {
	s.approval.mu.Lock()
	defer s.approval.mu.Unlock()
	s.approval.waiting, s.approval.admit = nil, nil
}

// errApprovalTimedOut ends a run whose gate's timeout ran out.
type errApprovalTimedOut struct{ reason string }

func (e *errApprovalTimedOut) Error() string { return e.reason }

// passGate asks the gate whether the stage may start and, while the answer is "not yet",
// waits in awaiting_approval for people's answers, up to the approval's timeout. The run's
// own timeout does not run while it waits. It returns nil once the stage may start.
func (r *Runner) passGate(ctx context.Context, rc *runContext, job Job, st *pipeline.Stage, deadline *runDeadline) error {
	req := policy.StageRequest{Run: rc.run, Pipeline: job.pipeline, Stage: st}
	d, err := r.gate.MayStart(ctx, req)
	if err != nil {
		return err
	}
	if d.Allow {
		r.auditGate(ctx, rc, st, req, d)
		return nil
	}
	if !d.Wait {
		r.auditGate(ctx, rc, st, req, d)
		return &GateError{Stage: st.Name, Decision: d}
	}
	if rc.state.approvalsClosed() {
		d.Reason += "; this process takes no approvals: run it through slipway serve (slipway trigger) to approve it there"
		return &GateError{Stage: st.Name, Decision: d}
	}
	timeout := st.Approval.Timeout.Duration
	if timeout <= 0 {
		timeout = 24 * time.Hour
	}
	expired := time.NewTimer(timeout)
	defer expired.Stop()
	repository := rc.run.Pipeline.Repository
	answers := rc.state.startWaiting(st, func(ctx context.Context, actor string) (string, error) {
		return r.gate.MayAnswer(ctx, repository, st, actor)
	})
	defer rc.state.stopWaiting()
	// Waiting for people may take days: the place among the runs in flight goes to a run
	// that can use it, and is taken again once the stage may start.
	rc.state.place.release()
	deadline.pause()
	defer deadline.resume()
	for d.Wait {
		if err := r.setRunStatus(ctx, rc.run, rc.state, store.RunAwaitingApproval, d.Reason); err != nil {
			return err
		}
		rc.log.WithField("stage", st.Name).Info(d.Reason)
		select {
		case a := <-answers:
			req.Answers = append(req.Answers, a)
			rc.log.WithFields(map[string]any{"stage": st.Name, "actor": a.Actor, "approve": a.Approve}).Info("approval answered")
		case <-expired.C:
			return &errApprovalTimedOut{reason: fmt.Sprintf("no approval of stage %s within %s: %s", st.Name, timeout, d.Reason)}
		case <-ctx.Done():
			return ctx.Err()
		}
		if d, err = r.gate.MayStart(ctx, req); err != nil {
			return err
		}
	}
	r.auditGate(ctx, rc, st, req, d)
	if !d.Allow {
		return &GateError{Stage: st.Name, Decision: d}
	}
	if !rc.state.place.take(ctx, rc.run, false) {
		return ctx.Err()
	}
	return r.setRunStatus(ctx, rc.run, rc.state, store.RunRunning, "")
}

// auditGate records a gate's final decision on a stage that has one, with its evidence;
// a stage without a gate is not worth an entry.
func (r *Runner) auditGate(ctx context.Context, rc *runContext, st *pipeline.Stage, req policy.StageRequest, d policy.Decision) {
	if st.Approval == nil || r.audit == nil {
		return
	}
	type answer struct {
		Actor   string `json:"actor"`
		Via     string `json:"via,omitempty"` // the approvers entry that admitted actor
		Approve bool   `json:"approve"`
		Comment string `json:"comment,omitempty"`
	}
	evidence := struct {
		Stage    string         `json:"stage"`
		Rule     string         `json:"rule"`
		Allow    bool           `json:"allow"`
		Answers  []answer       `json:"answers,omitempty"`
		Evidence map[string]any `json:"evidence,omitempty"`
	}{Stage: st.Name, Rule: d.Rule, Allow: d.Allow, Evidence: d.Evidence}
	for _, a := range req.Answers {
		evidence.Answers = append(evidence.Answers, answer{Actor: a.Actor, Via: a.Via, Approve: a.Approve, Comment: a.Comment})
	}
	raw, err := json.Marshal(evidence)
	if err == nil {
		_, err = r.audit.RecordAudit(context.WithoutCancel(ctx), store.AuditEntry{Actor: "gate", Action: store.AuditGateDecision,
			Pipeline: rc.run.Pipeline, BuildID: rc.run.BuildID, Reason: d.Reason, Evidence: raw})
	}
	if err != nil {
		rc.log.WithError(err).WithField("stage", st.Name).Error("record the gate's decision in the audit log")
	}
}

// runDeadline is the run's own timeout, which stops while the run waits for people.
type runDeadline struct {
	mu        sync.Mutex
	timer     *time.Timer
	remaining time.Duration
	started   time.Time
}

// newRunDeadline cancels the run with cause runTimedOut once it has run for d.
func newRunDeadline(d time.Duration, cancel context.CancelCauseFunc) *runDeadline {
	rd := &runDeadline{remaining: d, started: time.Now()}
	rd.timer = time.AfterFunc(d, func() { cancel(&runTimedOut{after: d}) })
	return rd
}

func (rd *runDeadline) pause() {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.timer.Stop() {
		rd.remaining -= time.Since(rd.started)
	}
}

func (rd *runDeadline) resume() {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	rd.started = time.Now()
	rd.timer.Reset(max(rd.remaining, 0))
}

func (rd *runDeadline) stop() { rd.timer.Stop() }

// runTimedOut is the cancellation cause of a run that ran out of its pipeline's timeout.
type runTimedOut struct{ after time.Duration }

func (e *runTimedOut) Error() string { return fmt.Sprintf("pipeline timeout of %s exceeded", e.after) }
