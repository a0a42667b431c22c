package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/reconciler/trigger"
	"github.com/slipwayhq/slipway/store"
)

// Triggers is what the server asks of the trigger hub.
type Triggers interface {
	Hint(repository string, h trigger.Hint) error
	Trigger(ctx context.Context, ref store.PipelineRef, commit string) (store.Run, error)
	Rerun(ctx context.Context, ref store.PipelineRef, buildID int64) (store.Run, error)
	Cancel(ctx context.Context, ref store.PipelineRef, buildID int64) error
	Resolve(ctx context.Context, repository, pipeline string) (store.PipelineRef, error)
}

// Records is what the server reads and writes in the store.
type Records interface {
	RecordDelivery(ctx context.Context, repository, deliveryID string) (bool, error)
	ForgetDelivery(ctx context.Context, repository, deliveryID string) error
	RecordPullRequestEvent(ctx context.Context, e store.PullRequestEvent) (store.PullRequestEvent, error)
	GetRun(ctx context.Context, ref store.PipelineRef, buildID int64) (store.Run, error)
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
	Branch   string // the tracked branch: pushes elsewhere start nothing
}

// Server serves webhooks and the API.
type Server struct {
	Hooks    map[string]Hook // by repository name
	Triggers Triggers
	Records  Records
	Metrics  Counter
	// Token is the API's bearer token. Empty: the API answers every call 403.
	Token []byte
	Log   *logrus.Entry
}

// Handler routes requests.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hooks/{repository}", s.hook)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.Handle("POST /api/v1/pipelines/{pipeline}/runs", s.api(s.startRun))
	mux.Handle("GET /api/v1/pipelines/{pipeline}/runs/{id}", s.api(s.getRun))
	mux.Handle("POST /api/v1/pipelines/{pipeline}/runs/{id}/cancel", s.api(s.cancelRun))
	return mux
}

// api wraps an API handler with the bearer token check. Digests of equal length are
// compared in constant time, so neither the token nor its length leaks through timing.
func (s *Server) api(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(s.Token) == 0 {
			writeError(w, http.StatusForbidden, "the API is off: set apiTokenFile in slipway.yaml")
			return
		}
		scheme, given, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		ok = ok && strings.EqualFold(scheme, "Bearer")
		want := sha256.Sum256(s.Token)
		got := sha256.Sum256([]byte(strings.TrimSpace(given)))
		if !ok || subtle.ConstantTimeCompare(want[:], got[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="slipway"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong API token")
			return
		}
		h(w, r)
	})
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
