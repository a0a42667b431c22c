package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/policy"
	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/reconciler/trigger"
	"github.com/slipwayhq/slipway/server/records"
	"github.com/slipwayhq/slipway/store"
)

// RunRequest is the body of POST /api/v1/pipelines/{pipeline}/runs.
type RunRequest struct {
	Repository string `json:"repository,omitempty"` // needed when the name is in several repositories
	Branch     string `json:"branch,omitempty"`     // a tracked branch; "" = the default branch
	Commit     string `json:"commit,omitempty"`     // "" = the branch's head
	Rerun      int64  `json:"rerun,omitempty"`      // re-run this BUILD_ID's commit, recording it as parent
}

// Run is a run as the API shows it.
type Run = records.Run

// RunOf converts a stored run.
func RunOf(r store.Run) Run { return records.RunOf(r, time.Now()) }

const maxAPIBody = 64 << 10

// decodeBody reads an optional JSON body into v, refusing unknown fields; false means it
// has answered 400.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAPIBody))
	if err == nil && len(body) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		err = dec.Decode(v)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "request body: "+err.Error())
		return false
	}
	return true
}

func (s *Server) startRun(w http.ResponseWriter, r *http.Request, caller config.APIUser) {
	var req RunRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Rerun != 0 && (req.Commit != "" || req.Branch != "") {
		writeError(w, http.StatusBadRequest, "give branch and commit, or rerun, not both: a re-run uses its parent's branch and commit")
		return
	}
	ref, ok := s.resolve(w, r, caller, req.Repository)
	if !ok {
		return
	}
	var run store.Run
	var err error
	source := "manual"
	if req.Rerun != 0 {
		run, err = s.Triggers.Rerun(r.Context(), ref, req.Rerun, caller.Name)
		source = "rerun"
	} else {
		run, err = s.Triggers.Trigger(r.Context(), ref, req.Branch, req.Commit, caller.Name)
	}
	if err != nil {
		s.fail(w, err, fmt.Sprintf("start %s", ref.Name))
		return
	}
	s.Metrics.Received(ref.Repository, source)
	s.Log.WithFields(logrus.Fields{"pipeline": ref.Name, "build_id": run.BuildID, "commit": run.Commit, "source": source, "user": caller.Name}).Info("run requested through the API")
	writeJSON(w, http.StatusCreated, RunOf(run))
}

func (s *Server) cancelRun(w http.ResponseWriter, r *http.Request, caller config.APIUser) {
	ref, id, ok := s.runTarget(w, r, caller)
	if !ok {
		return
	}
	if err := s.Triggers.Cancel(r.Context(), ref, id, caller.Name); err != nil {
		if !s.pending(w, r, err, ref, id) {
			s.fail(w, err, fmt.Sprintf("cancel %s #%d", ref.Name, id))
		}
		return
	}
	s.Log.WithFields(logrus.Fields{"pipeline": ref.Name, "build_id": id, "user": caller.Name}).Info("run cancelled through the API")
	run, err := s.Records.GetRun(r.Context(), ref, id)
	if err != nil {
		s.fail(w, err, fmt.Sprintf("run %s #%d", ref.Name, id))
		return
	}
	writeJSON(w, http.StatusAccepted, RunOf(run))
}

// PromoteRequest is the body of POST .../runs/{id}/promote.
type PromoteRequest struct {
	To string `json:"to"` // the environment to deploy the run's artifact to
}

// promoteRun starts a promotion of the run's artifact to the environment the body names:
// 201 with the promotion run, 400 when the pipeline or the run cannot be promoted there.
func (s *Server) promoteRun(w http.ResponseWriter, r *http.Request, caller config.APIUser) {
	var req PromoteRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.To == "" {
		writeError(w, http.StatusBadRequest, `request body: "to" names the environment to promote to`)
		return
	}
	ref, id, ok := s.runTarget(w, r, caller)
	if !ok {
		return
	}
	run, err := s.Triggers.Promote(r.Context(), ref, id, req.To, caller.Name)
	if err != nil {
		s.fail(w, err, fmt.Sprintf("promote %s #%d", ref.Name, id))
		return
	}
	s.Log.WithFields(logrus.Fields{"pipeline": ref.Name, "build_id": run.BuildID, "artifact": id, "to": req.To, "user": caller.Name}).Info("promotion requested through the API")
	writeJSON(w, http.StatusCreated, RunOf(run))
}

// SuspendRequest is the optional body of suspend and resume.
type SuspendRequest struct {
	Repository string `json:"repository,omitempty"`
	Reason     string `json:"reason,omitempty"`
}

// PipelineState is a pipeline's suspension as the API shows it.
type PipelineState struct {
	Repository    string    `json:"repository"`
	Pipeline      string    `json:"pipeline"`
	Suspended     bool      `json:"suspended"`
	SuspendedAt   time.Time `json:"suspendedAt,omitzero"`
	SuspendedBy   string    `json:"suspendedBy,omitempty"`
	SuspendReason string    `json:"suspendReason,omitempty"`
}

func (s *Server) suspendPipeline(w http.ResponseWriter, r *http.Request, caller config.APIUser) {
	s.setSuspended(w, r, caller, true)
}

func (s *Server) resumePipeline(w http.ResponseWriter, r *http.Request, caller config.APIUser) {
	s.setSuspended(w, r, caller, false)
}

// setSuspended suspends or resumes the pipeline the URL names: 200 and its state.
func (s *Server) setSuspended(w http.ResponseWriter, r *http.Request, caller config.APIUser, suspend bool) {
	var req SuspendRequest
	if !decodeBody(w, r, &req) {
		return
	}
	ref, ok := s.resolve(w, r, caller, req.Repository)
	if !ok {
		return
	}
	p, err := s.Triggers.Suspend(r.Context(), ref, suspend, caller.Name, req.Reason)
	if err != nil {
		s.fail(w, err, fmt.Sprintf("suspend %s", ref.Name))
		return
	}
	s.Log.WithFields(logrus.Fields{"pipeline": ref.Name, "suspended": suspend, "user": caller.Name}).Info("pipeline suspension changed through the API")
	writeJSON(w, http.StatusOK, PipelineState{Repository: ref.Repository, Pipeline: ref.Name, Suspended: p.Suspended,
		SuspendedAt: p.SuspendedAt, SuspendedBy: p.SuspendedBy, SuspendReason: p.SuspendReason})
}

// AnswerRequest is the body of approve and reject; both fields are optional.
type AnswerRequest struct {
	Comment string `json:"comment,omitempty"`
}

func (s *Server) approveRun(w http.ResponseWriter, r *http.Request, caller config.APIUser) {
	s.answerRun(w, r, caller, true)
}

func (s *Server) rejectRun(w http.ResponseWriter, r *http.Request, caller config.APIUser) {
	s.answerRun(w, r, caller, false)
}

// answerRun hands the caller's approval or rejection to a run waiting at a gate: 403 for
// someone the stage does not list as an approver, 409 for a run that is not waiting.
func (s *Server) answerRun(w http.ResponseWriter, r *http.Request, caller config.APIUser, approve bool) {
	var req AnswerRequest
	if !decodeBody(w, r, &req) {
		return
	}
	ref, id, ok := s.runTarget(w, r, caller)
	if !ok {
		return
	}
	what := "approve"
	if !approve {
		what = "reject"
	}
	if err := s.Triggers.Approve(r.Context(), ref, id, caller.Name, approve, req.Comment); err != nil {
		if !s.pending(w, r, err, ref, id) {
			s.fail(w, err, fmt.Sprintf("%s %s #%d", what, ref.Name, id))
		}
		return
	}
	s.Log.WithFields(logrus.Fields{"pipeline": ref.Name, "build_id": id, "user": caller.Name, "answer": what}).Info("run answered through the API")
	run, err := s.Records.GetRun(r.Context(), ref, id)
	if err != nil {
		s.fail(w, err, fmt.Sprintf("run %s #%d", ref.Name, id))
		return
	}
	writeJSON(w, http.StatusAccepted, RunOf(run))
}

// PendingRun answers a cancel, approve or reject that was handed to the Slipway process
// holding the run (another replica, or `slipway run`) when that process did not act on it
// within the wait: the run as it is, and the request, still pending.
type PendingRun struct {
	Run
	Request PendingRequest `json:"request"`
}

// PendingRequest is a request left for the process holding a run.
type PendingRequest struct {
	ID      int64  `json:"id"`
	Status  string `json:"status"` // "pending"
	Holder  string `json:"holder"` // the process holding the run
	Message string `json:"message"`
}

// pending answers 202 with a PendingRun when err says the request is left pending with
// the run's holder, and reports whether it did.
func (s *Server) pending(w http.ResponseWriter, r *http.Request, err error, ref store.PipelineRef, id int64) bool {
	var p *trigger.PendingError
	if !errors.As(err, &p) {
		return false
	}
	s.Log.WithFields(logrus.Fields{"pipeline": ref.Name, "build_id": id, "request": p.Request.ID, "holder": p.Request.Holder}).Warn(err.Error())
	run, rerr := s.Records.GetRun(r.Context(), ref, id)
	if rerr != nil {
		s.fail(w, rerr, fmt.Sprintf("run %s #%d", ref.Name, id))
		return true
	}
	writeJSON(w, http.StatusAccepted, PendingRun{Run: RunOf(run), Request: PendingRequest{ID: p.Request.ID, Status: "pending",
		Holder: p.Request.Holder, Message: err.Error()}})
	return true
}

// resolve names the pipeline the URL means, and answers 403 if the caller may not act on
// its repository. Every route naming a pipeline goes through here.
func (s *Server) resolve(w http.ResponseWriter, r *http.Request, caller config.APIUser, repository string) (store.PipelineRef, bool) {
	ref, err := s.Triggers.Resolve(r.Context(), repository, r.PathValue("pipeline"))
	if err != nil {
		s.fail(w, err, "pipeline "+r.PathValue("pipeline"))
		return ref, false
	}
	if !caller.MayAccess(ref.Repository) {
		s.Log.WithFields(logrus.Fields{"user": caller.Name, "repository": ref.Repository, "route": r.Pattern}).Warn("API call refused: repository not allowed")
		writeError(w, http.StatusForbidden, fmt.Sprintf("%s may not act on repository %s", caller.Name, ref.Repository))
		return ref, false
	}
	return ref, true
}

// runTarget reads the pipeline and BUILD_ID a run's URL names.
func (s *Server) runTarget(w http.ResponseWriter, r *http.Request, caller config.APIUser) (store.PipelineRef, int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		writeError(w, http.StatusBadRequest, "BUILD_ID must be a positive number")
		return store.PipelineRef{}, 0, false
	}
	ref, ok := s.resolve(w, r, caller, r.URL.Query().Get("repository"))
	return ref, id, ok
}

// fail answers with the status the error calls for. Errors here name pipelines, commits
// and runs, never credentials: the sources package scrubs them from Git errors.
func (s *Server) fail(w http.ResponseWriter, err error, what string) {
	status := http.StatusInternalServerError
	var notPrepared *reconciler.PrepareError
	switch {
	case errors.Is(err, store.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, reconciler.ErrNotActive), errors.Is(err, reconciler.ErrNotAwaiting), errors.Is(err, store.ErrRunEnded):
		status = http.StatusConflict
	case errors.Is(err, policy.ErrNotApprover):
		status = http.StatusForbidden
	case errors.Is(err, policy.ErrApproversUnknown):
		// The forge did not answer who is in a team: try again later.
		status = http.StatusServiceUnavailable
	case errors.As(err, &notPrepared), errors.Is(err, trigger.ErrRequest):
		status = http.StatusUnprocessableEntity
	}
	if status == http.StatusInternalServerError {
		// The details stay in the daemon's log; the caller learns only that it failed.
		s.Log.WithError(err).Error(what)
		writeError(w, status, what+": internal error; the daemon's log has the details")
		return
	}
	writeError(w, status, what+": "+err.Error())
}
