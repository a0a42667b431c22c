package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/reconciler/preview"
	"github.com/slipwayhq/slipway/reconciler/trigger"
	"github.com/slipwayhq/slipway/server/records"
	"github.com/slipwayhq/slipway/store"
)

// Triggers is what the server asks of the trigger hub. actor is the caller's identity
// name: the hub records it in the audit log.
type Triggers interface {
	Hint(ctx context.Context, repository string, h trigger.Hint) error
	Trigger(ctx context.Context, ref store.PipelineRef, branch, commit, actor string) (store.Run, error)
	Rerun(ctx context.Context, ref store.PipelineRef, buildID int64, actor string) (store.Run, error)
	Cancel(ctx context.Context, ref store.PipelineRef, buildID int64, actor string) error
	// Suspend suspends (true) or resumes the pipeline.
	Suspend(ctx context.Context, ref store.PipelineRef, suspend bool, actor, reason string) (store.Pipeline, error)
	// Promote deploys what run buildID deployed to the environment before `to`, to `to`.
	Promote(ctx context.Context, ref store.PipelineRef, buildID int64, to, actor string) (store.Run, error)
	// Rollback starts a run that re-applies what run `to` deployed.
	Rollback(ctx context.Context, ref store.PipelineRef, to int64, actor string) (store.Run, error)
	// Approve answers a run waiting at an approval gate (approve false: reject).
	Approve(ctx context.Context, ref store.PipelineRef, buildID int64, actor string, approve bool, comment string) error
	Resolve(ctx context.Context, repository, pipeline string) (store.PipelineRef, error)
}

// Records is what the server reads and writes in the store.
type Records interface {
	RecordDelivery(ctx context.Context, repository, deliveryID string) (bool, error)
	ForgetDelivery(ctx context.Context, repository, deliveryID string) error
	RecordPullRequestEvent(ctx context.Context, e store.PullRequestEvent) (store.PullRequestEvent, error)
	GetRun(ctx context.Context, ref store.PipelineRef, buildID int64) (store.Run, error)
}

// Previews takes pull request heads to preview; *preview.Previewer is one.
type Previews interface {
	Request(req preview.Request) error
}

// Counter counts what arrives; *trigger.Metrics is one.
type Counter interface {
	Received(repository, source string)
	Rejected(repository, reason string)
	Duplicate(repository string)
}

// Hook is how one repository's webhooks are verified.
type Hook struct {
	Provider string // github, gitlab, gitea or generic
	Secret   []byte
	// Branches are the tracked branches (globs): pushes to other branches start nothing.
	Branches []string
}

// Server serves webhooks and the API.
type Server struct {
	Hooks    map[string]Hook // by repository name
	Triggers Triggers
	Records  Records
	Metrics  Counter
	// Previews, if set, previews pull requests opened, reopened or updated by new commits.
	Previews Previews
	// Users are the API's identities (apiTokensFile, and apiTokenFile's admin). None: the
	// API answers every call 403.
	Users  []config.APIUser
	Limits HookLimits
	// Ready, if set, says whether the daemon can serve (/readyz): its store answers.
	Ready func(context.Context) error
	// Reads is what the read routes read; Changes wakes live log streams.
	Reads   Reads
	Changes records.Feed
	// Repositories are the configured repositories' names, listed even before a run.
	Repositories []string
	// Replicas says which replica owns which repository (ha in slipway.yaml); nil: this
	// daemon is the only one.
	Replicas Replicas
	// UI, if set, is the web console (server/webui), served under /ui/.
	UI  http.Handler
	Log *logrus.Entry

	reads chan struct{} // one token per webhook body being read; made by Handler
}

// HookLimits bound the webhook bodies read at once and how long one read may take; zero
// values take the defaults of slipway.yaml's webhooks section.
type HookLimits struct {
	MaxConcurrentReads int
	ReadTimeout        time.Duration
}

func (l HookLimits) maxReads() int {
	if l.MaxConcurrentReads > 0 {
		return l.MaxConcurrentReads
	}
	return 16
}

func (l HookLimits) readTimeout() time.Duration {
	if l.ReadTimeout > 0 {
		return l.ReadTimeout
	}
	return 10 * time.Second
}

// Handler routes requests. Every API route goes through requireRole.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.reads = make(chan struct{}, s.Limits.maxReads())
	mux.HandleFunc("POST /hooks/{repository}", s.hook)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	// Readiness is more than being alive: a daemon whose store does not answer can take no
	// webhook or call, so a load balancer should send them elsewhere.
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if s.Ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
			defer cancel()
			if err := s.Ready(ctx); err != nil {
				s.Log.WithError(err).Warn("not ready")
				writeError(w, http.StatusServiceUnavailable, "not ready: the store does not answer (the daemon's log says why)")
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	for _, rt := range s.routes() {
		mux.Handle(rt.Pattern, s.requireRole(rt.Role, rt.handle))
	}
	if s.UI != nil {
		mux.Handle("/ui/", s.UI)
	}
	return mux
}

// apiHandler serves one API call for the identity that made it. The caller is passed, not
// kept in the request's context, so a handler cannot act without one.
type apiHandler func(w http.ResponseWriter, r *http.Request, caller config.APIUser)

// route is one API endpoint and the least role that may call it.
type route struct {
	Pattern string // method and path, as http.ServeMux reads them
	Role    config.Role
	handle  apiHandler
}

// routes lists every API endpoint. A new one goes here, with its role; the server's tests
// check each against a table of expected roles, so none can be added without a decision.
func (s *Server) routes() []route {
	return []route{
		{"GET /api/v1/repositories", config.RoleViewer, s.listRepositories},
		{"GET /api/v1/replicas", config.RoleViewer, s.listReplicas},
		{"GET /api/v1/pipelines", config.RoleViewer, s.listPipelines},
		{"GET /api/v1/pipelines/{pipeline}", config.RoleViewer, s.getPipeline},
		{"GET /api/v1/pipelines/{pipeline}/drift", config.RoleViewer, s.getDrift},
		{"GET /api/v1/runs", config.RoleViewer, s.listRuns},
		{"GET /api/v1/pipelines/{pipeline}/runs", config.RoleViewer, s.listPipelineRuns},
		{"GET /api/v1/pipelines/{pipeline}/runs/{id}", config.RoleViewer, s.getRun},
		{"GET /api/v1/pipelines/{pipeline}/runs/{id}/revisions", config.RoleViewer, s.listRunRevisions},
		{"GET /api/v1/pipelines/{pipeline}/runs/{id}/logs", config.RoleViewer, s.getLogs},
		{"GET /api/v1/pipelines/{pipeline}/runs/{id}/logs/stream", config.RoleViewer, s.streamLogs},
		{"GET /api/v1/deployments", config.RoleViewer, s.listDeployments},
		{"GET /api/v1/approvals", config.RoleViewer, s.listApprovals},
		{"GET /api/v1/audit", config.RoleViewer, s.listAudit},
		{"POST /api/v1/pipelines/{pipeline}/runs", config.RoleOperator, s.startRun},
		{"POST /api/v1/pipelines/{pipeline}/runs/{id}/rerun", config.RoleOperator, s.rerunRun},
		{"POST /api/v1/pipelines/{pipeline}/runs/{id}/rollback", config.RoleOperator, s.rollbackRun},
		{"POST /api/v1/pipelines/{pipeline}/runs/{id}/cancel", config.RoleOperator, s.cancelRun},
		{"POST /api/v1/pipelines/{pipeline}/runs/{id}/promote", config.RoleOperator, s.promoteRun},
		{"POST /api/v1/pipelines/{pipeline}/suspend", config.RoleOperator, s.suspendPipeline},
		{"POST /api/v1/pipelines/{pipeline}/resume", config.RoleOperator, s.resumePipeline},
		{"POST /api/v1/pipelines/{pipeline}/runs/{id}/approve", config.RoleApprover, s.approveRun},
		{"POST /api/v1/pipelines/{pipeline}/runs/{id}/reject", config.RoleApprover, s.rejectRun},
	}
}

// requireRole authenticates the caller by bearer token and lets the call through if the
// identity holds role: 401 without a token or with one no identity has, 403 with a role
// too small. Tokens are compared by their sha256 in constant time, against every identity,
// so neither a token, its length nor which identity matched leaks through timing.
func (s *Server) requireRole(role config.Role, h apiHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(s.Users) == 0 {
			writeError(w, http.StatusForbidden, "the API is off: set apiTokensFile (or apiTokenFile) in slipway.yaml")
			return
		}
		caller, ok := s.authenticate(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="slipway"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong API token")
			return
		}
		if !caller.HasRole(role) {
			s.Log.WithFields(logrus.Fields{"user": caller.Name, "roles": caller.Roles, "needs": role, "route": r.Pattern}).Warn("API call refused: role too small")
			writeError(w, http.StatusForbidden, fmt.Sprintf("%s may not do this: it needs role %s", caller.Name, role))
			return
		}
		h(w, r, caller)
	})
}

func (s *Server) authenticate(r *http.Request) (config.APIUser, bool) {
	scheme, given, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return config.APIUser{}, false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(given)))
	found := -1
	for i := range s.Users {
		if subtle.ConstantTimeCompare(s.Users[i].TokenHash[:], got[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return config.APIUser{}, false
	}
	return s.Users[found], true
}

type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
