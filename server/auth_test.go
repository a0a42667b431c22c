package server

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/policy"
	"github.com/slipwayhq/slipway/reconciler/trigger"
	"github.com/slipwayhq/slipway/store"
)

// apiRoutes is every API route with the least role it needs and whether it names a
// pipeline (so an identity's repositories restrict it). A route the server serves that is
// missing here, or here with another role, fails TestEveryRouteRequiresItsRole: no route
// can be added without deciding who may call it.
var apiRoutes = map[string]struct {
	role   config.Role
	scoped bool
}{
	"GET /api/v1/repositories":                               {config.RoleViewer, false},
	"GET /api/v1/replicas":                                   {config.RoleViewer, false},
	"GET /api/v1/pipelines":                                  {config.RoleViewer, false},
	"GET /api/v1/pipelines/{pipeline}":                       {config.RoleViewer, true},
	"GET /api/v1/pipelines/{pipeline}/drift":                 {config.RoleViewer, true},
	"GET /api/v1/runs":                                       {config.RoleViewer, false},
	"GET /api/v1/pipelines/{pipeline}/runs":                  {config.RoleViewer, true},
	"GET /api/v1/pipelines/{pipeline}/runs/{id}":             {config.RoleViewer, true},
	"GET /api/v1/pipelines/{pipeline}/runs/{id}/revisions":   {config.RoleViewer, true},
	"GET /api/v1/pipelines/{pipeline}/runs/{id}/logs":        {config.RoleViewer, true},
	"GET /api/v1/pipelines/{pipeline}/runs/{id}/logs/stream": {config.RoleViewer, true},
	"GET /api/v1/deployments":                                {config.RoleViewer, false},
	"GET /api/v1/approvals":                                  {config.RoleViewer, false},
	"GET /api/v1/audit":                                      {config.RoleViewer, false},
	"POST /api/v1/pipelines/{pipeline}/runs":                 {config.RoleOperator, true},
	"POST /api/v1/pipelines/{pipeline}/runs/{id}/rerun":      {config.RoleOperator, true},
	"POST /api/v1/pipelines/{pipeline}/runs/{id}/rollback":   {config.RoleOperator, true},
	"POST /api/v1/pipelines/{pipeline}/runs/{id}/cancel":     {config.RoleOperator, true},
	"POST /api/v1/pipelines/{pipeline}/runs/{id}/promote":    {config.RoleOperator, true},
	"POST /api/v1/pipelines/{pipeline}/suspend":              {config.RoleOperator, true},
	"POST /api/v1/pipelines/{pipeline}/resume":               {config.RoleOperator, true},
	"POST /api/v1/pipelines/{pipeline}/runs/{id}/approve":    {config.RoleApprover, true},
	"POST /api/v1/pipelines/{pipeline}/runs/{id}/reject":     {config.RoleApprover, true},
}

// bodies are the request bodies of routes that need one to succeed.
var bodies = map[string]string{
	"POST /api/v1/pipelines/{pipeline}/runs/{id}/promote": `{"to": "prod"}`,
}

// allowedRoles is, independently of the code under test, which single roles satisfy a
// route's role.
var allowedRoles = map[config.Role][]config.Role{
	config.RoleViewer:   {config.RoleViewer, config.RoleOperator, config.RoleApprover, config.RoleAdmin},
	config.RoleOperator: {config.RoleOperator, config.RoleAdmin},
	config.RoleApprover: {config.RoleApprover, config.RoleAdmin},
	config.RoleAdmin:    {config.RoleAdmin},
}

// user is an identity whose token is "token-NAME", given to the server only as its hash,
// as apiTokensFile gives it.
func user(name string, roles []config.Role, repositories ...string) config.APIUser {
	sum := sha256.Sum256([]byte("token-" + name))
	return config.APIUser{Name: name, TokenSHA256: hex.EncodeToString(sum[:]), Roles: roles, Repositories: repositories, TokenHash: sum}
}

func call(t *testing.T, srv *httptest.Server, pattern, token string) (int, string) {
	t.Helper()
	method, path, _ := strings.Cut(pattern, " ")
	path = strings.NewReplacer("{pipeline}", "deploy", "{id}", "7").Replace(path)
	var body io.Reader
	if bodies[pattern] != "" {
		body = strings.NewReader(bodies[pattern])
	}
	req, err := http.NewRequest(method, srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEveryRouteRequiresItsRole(t *testing.T) {
	rec := newRecorder()
	var users []config.APIUser
	for _, r := range config.Roles {
		users = append(users, user(string(r), []config.Role{r}))
	}
	reads, feed := seededReads(t, rec, "app")
	s := &Server{Triggers: rec, Records: rec, Metrics: rec, Users: users, Log: logrus.NewEntry(logrus.New()), Reads: reads, Changes: feed,
		Replicas: rec}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	served := map[string]bool{}
	for _, rt := range s.routes() {
		served[rt.Pattern] = true
		want, listed := apiRoutes[rt.Pattern]
		if !listed {
			t.Errorf("route %s is not in apiRoutes: add it with the role it needs", rt.Pattern)
			continue
		}
		if rt.Role != want.role {
			t.Errorf("route %s needs role %s, apiRoutes says %s", rt.Pattern, rt.Role, want.role)
		}
	}
	for pattern := range apiRoutes {
		if !served[pattern] {
			t.Errorf("apiRoutes lists %s, which the server does not serve", pattern)
		}
	}

	for pattern, want := range apiRoutes {
		for _, tc := range []struct{ who, token string }{{"no token", ""}, {"unknown token", "nope"},
			{"a token's hash instead of the token", user("admin", nil).TokenSHA256}} {
			rec.calls = nil
			if code, out := call(t, srv, pattern, tc.token); code != http.StatusUnauthorized {
				t.Errorf("%s with %s: %d %s, want 401", pattern, tc.who, code, out)
			}
			if len(rec.calls) != 0 {
				t.Errorf("%s with %s reached %v", pattern, tc.who, rec.calls)
			}
		}
		for _, role := range config.Roles {
			rec.calls = nil
			code, out := call(t, srv, pattern, "token-"+string(role))
			switch allowed := slices.Contains(allowedRoles[want.role], role); {
			case allowed && code >= 300:
				t.Errorf("%s by a %s: %d %s, want success", pattern, role, code, out)
			case allowed && len(rec.calls) == 0:
				t.Errorf("%s by a %s succeeded without reaching the hub or the store", pattern, role)
			case !allowed && (code != http.StatusForbidden || !strings.Contains(out, "needs role "+string(want.role))):
				t.Errorf("%s by a %s: %d %s, want 403 naming role %s", pattern, role, code, out, want.role)
			case !allowed && len(rec.calls) != 0:
				t.Errorf("%s by a %s was refused but reached %v", pattern, role, rec.calls)
			}
		}
	}
}

// The hub hears the name of the identity whose token came, for every action.
func TestActionsCarryTheCallersName(t *testing.T) {
	rec := newRecorder()
	s := &Server{Triggers: rec, Records: rec, Metrics: rec, Log: logrus.NewEntry(logrus.New()),
		Users: []config.APIUser{user("alice", []config.Role{config.RoleOperator}), user("root", []config.Role{config.RoleAdmin})}}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	bearer := func(name string) map[string]string { return map[string]string{"Authorization": "Bearer token-" + name} }
	if code, out := post(t, srv.URL+"/api/v1/pipelines/deploy/runs", nil, bearer("alice")); code != http.StatusCreated {
		t.Fatalf("trigger: %d %s", code, out)
	}
	if code, out := post(t, srv.URL+"/api/v1/pipelines/deploy/runs", []byte(`{"rerun":3}`), bearer("root")); code != http.StatusCreated {
		t.Fatalf("rerun: %d %s", code, out)
	}
	if code, out := post(t, srv.URL+"/api/v1/pipelines/deploy/runs/3/cancel", nil, bearer("alice")); code != http.StatusAccepted {
		t.Fatalf("cancel: %d %s", code, out)
	}
	var actions []string
	for _, c := range rec.calls {
		if c != "Resolve" && c != "GetRun" {
			actions = append(actions, c)
		}
	}
	if want := []string{"Trigger by alice", "Rerun by root", "Cancel by alice"}; !slices.Equal(actions, want) {
		t.Fatalf("the hub heard %v, want %v", actions, want)
	}
}

func TestRepositoriesRestrictAnIdentity(t *testing.T) {
	rec := newRecorder()
	reads, feed := seededReads(t, rec, "app", "web", "team-shop", "webx")
	s := &Server{Triggers: rec, Records: rec, Metrics: rec, Log: logrus.NewEntry(logrus.New()), Reads: reads, Changes: feed,
		Users: []config.APIUser{user("web-ops", []config.Role{config.RoleAdmin}, "web", "team-*")}}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for pattern, want := range apiRoutes {
		if !want.scoped {
			continue
		}
		for repo, allowed := range map[string]bool{"app": false, "web": true, "team-shop": true, "webx": false} {
			rec.calls, rec.repository = nil, repo
			code, out := call(t, srv, pattern, "token-web-ops")
			switch {
			case allowed && code >= 300:
				t.Errorf("%s on %s: %d %s, want success", pattern, repo, code, out)
			case !allowed && (code != http.StatusForbidden || !strings.Contains(out, "may not act on repository "+repo)):
				t.Errorf("%s on %s: %d %s, want 403 naming the repository", pattern, repo, code, out)
			case !allowed && !slices.Equal(rec.calls, []string{"Resolve"}):
				t.Errorf("%s on %s was refused but reached %v", pattern, repo, rec.calls)
			}
		}
	}
}

func TestAPIOffWithoutIdentities(t *testing.T) {
	rec := newRecorder()
	s := &Server{Triggers: rec, Records: rec, Metrics: rec, Log: logrus.NewEntry(logrus.New())}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for pattern := range apiRoutes {
		if code, out := call(t, srv, pattern, "anything"); code != http.StatusForbidden || !strings.Contains(out, "apiTokensFile") {
			t.Errorf("%s without identities: %d %s, want 403", pattern, code, out)
		}
	}
	if len(rec.calls) != 0 {
		t.Fatalf("an API without identities reached %v", rec.calls)
	}
}

// A cancel or answer relayed to the process holding the run: its refusals answer as a
// local call's would, an ended run is 409, and one the holder did not answer in time is
// 202 with the run and the request, pending.
func TestRelayedAnswers(t *testing.T) {
	rec := newRecorder()
	s := &Server{Triggers: rec, Records: rec, Metrics: rec, Log: logrus.NewEntry(logrus.New()),
		Users: []config.APIUser{user("root", []config.Role{config.RoleAdmin})}}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	root := map[string]string{"Authorization": "Bearer token-root"}
	q := store.RunRequest{ID: 12, Pipeline: store.PipelineRef{Repository: "app", Name: "deploy"}, BuildID: 3, Holder: "node-2/41/ab", Kind: store.RequestCancel}
	rec.answerErr = &trigger.PendingError{Request: q, Wait: 5 * time.Second}
	code, out := post(t, srv.URL+"/api/v1/pipelines/deploy/runs/3/cancel", nil, root)
	var pending PendingRun
	if err := json.Unmarshal([]byte(out), &pending); err != nil || code != http.StatusAccepted || pending.Request.ID != 12 ||
		pending.Request.Status != "pending" || pending.Request.Holder != "node-2/41/ab" || !strings.Contains(pending.Request.Message, "did not answer request 12 within 5s") {
		t.Fatalf("pending cancel: %d %s (%v)", code, out, err)
	}
	rec.answerErr = fmt.Errorf("request cancel of run app:deploy #3: %w cancelled", store.ErrRunEnded)
	if code, out := post(t, srv.URL+"/api/v1/pipelines/deploy/runs/3/cancel", nil, root); code != http.StatusConflict || !strings.Contains(out, "the run has ended cancelled") {
		t.Fatalf("cancel of an ended run: %d %s", code, out)
	}
	rec.answerErr = fmt.Errorf("relayed: %w", policy.ErrNotApprover)
	if code, out := post(t, srv.URL+"/api/v1/pipelines/deploy/runs/3/approve", nil, root); code != http.StatusForbidden {
		t.Fatalf("approval the holder refused: %d %s", code, out)
	}
}
