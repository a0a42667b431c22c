package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// howToGetGitea is appended to failures to reach the environment's Gitea.
const howToGetGitea = "the environment's Gitea is started by hack/env-up.sh (binary built by " +
	"`hack/build-tools.sh gitea`, run as the user slipway-gitea that `hack/prereqs.sh` creates when root); " +
	"an environment started before Gitea was added lacks it: `make env-down && make env-up`; " +
	"Gitea's log is .slipway/env/logs/gitea.log"

// Gitea is a small client of the environment's Gitea API (v1.26), acting as one user with
// an API token. Every request method fails the test on error, with the response body.
type Gitea struct {
	URL   string // base URL, e.g. http://127.0.0.1:17409 (no trailing slash)
	User  string // the user the client acts as
	token string
	hc    *http.Client
}

// GiteaUser is a user created by CreateUser, with an API token of scope "all".
type GiteaUser struct {
	Name     string
	Password string
	Token    string
}

// GiteaRepo is a repository as Gitea's API returns it.
type GiteaRepo struct {
	ID            int64  `json:"id"`
	Name          string `json:"name"`
	FullName      string `json:"full_name"`
	CloneURL      string `json:"clone_url"`
	HTMLURL       string `json:"html_url"`
	DefaultBranch string `json:"default_branch"`
	Owner         struct {
		Login string `json:"login"`
	} `json:"owner"`
}

// GiteaHookOptions configure a webhook of type "gitea" with a JSON body.
type GiteaHookOptions struct {
	URL    string   // where Gitea delivers
	Secret string   // HMAC-SHA256 key of X-Gitea-Signature; may be empty
	Events []string // default: push, pull_request, create
	// BranchFilter is a glob of branches whose pushes are delivered; default "*".
	BranchFilter string
}

// GiteaHook is a webhook as Gitea's API returns it.
type GiteaHook struct {
	ID     int64             `json:"id"`
	Type   string            `json:"type"`
	Events []string          `json:"events"`
	Active bool              `json:"active"`
	Config map[string]string `json:"config"`
}

// GiteaPull is a pull request as Gitea's API returns it.
type GiteaPull struct {
	Number         int64  `json:"number"`
	State          string `json:"state"` // open, closed
	Title          string `json:"title"`
	Merged         bool   `json:"merged"`
	MergeCommitSHA string `json:"merge_commit_sha"`
	HTMLURL        string `json:"html_url"`
	Head           struct {
		Ref string `json:"ref"`
		SHA string `json:"sha"`
	} `json:"head"`
	Base struct {
		Ref string `json:"ref"`
	} `json:"base"`
}

// GiteaReview is a pull request review as Gitea's API returns it.
type GiteaReview struct {
	ID       int64  `json:"id"`
	State    string `json:"state"` // APPROVED, REQUEST_CHANGES, COMMENT, PENDING
	CommitID string `json:"commit_id"`
	User     struct {
		Login string `json:"login"`
	} `json:"user"`
}

// Gitea returns a client acting as the environment's Gitea admin, failing the test with
// directions when the environment has no Gitea.
func (e *Env) Gitea(t testing.TB) *Gitea {
	t.Helper()
	if e.GiteaURL == "" || e.GiteaUser == "" || e.GiteaToken == "" {
		t.Fatalf("testenv: %s has no Gitea (SLIPWAY_GITEA_URL, SLIPWAY_GITEA_USER, SLIPWAY_GITEA_TOKEN); %s",
			envFile, howToGetGitea)
	}
	return &Gitea{URL: e.GiteaURL, User: e.GiteaUser, token: e.GiteaToken, hc: &http.Client{Timeout: 30 * time.Second}}
}

// As returns a client of the same Gitea acting as u.
func (g *Gitea) As(u GiteaUser) *Gitea {
	return &Gitea{URL: g.URL, User: u.Name, token: u.Token, hc: g.hc}
}

// PushURL returns the HTTP clone URL of owner/repo with the acting user's token in it, for
// git push and fetch. It holds a credential: do not log it.
func (g *Gitea) PushURL(owner, repo string) string {
	u, err := url.Parse(g.URL)
	if err != nil {
		panic(fmt.Sprintf("testenv: Gitea URL %q: %v", g.URL, err))
	}
	u.User = url.UserPassword(g.User, g.token)
	u.Path = "/" + owner + "/" + repo + ".git"
	return u.String()
}

// CloneURL returns the HTTP clone URL of owner/repo without credentials.
func (g *Gitea) CloneURL(owner, repo string) string {
	return g.URL + "/" + owner + "/" + repo + ".git"
}

// Do sends one API request (path relative to /api/v1) with the acting user's token,
// encoding in as JSON when non-nil and decoding the answer into out when non-nil. Any status
// other than 2xx is an error that carries the response body.
func (g *Gitea) Do(ctx context.Context, method, path string, in, out any) error {
	return g.do(ctx, method, path, in, out, func(r *http.Request) { r.Header.Set("Authorization", "token "+g.token) })
}

func (g *Gitea) do(ctx context.Context, method, path string, in, out any, auth func(*http.Request)) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("gitea %s %s: encode: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, g.URL+"/api/v1"+path, body)
	if err != nil {
		return fmt.Errorf("gitea %s %s: %w", method, path, err)
	}
	auth(req)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := g.hc.Do(req)
	if err != nil {
		return fmt.Errorf("gitea %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("gitea %s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("gitea %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("gitea %s %s: decode %q: %w", method, path, data, err)
		}
	}
	return nil
}

// call runs Do under the test's context, failing the test on error.
func (g *Gitea) call(t testing.TB, method, path string, in, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := g.Do(ctx, method, path, in, out); err != nil {
		t.Fatalf("%v (%s)", err, howToGetGitea)
	}
}

// Version returns Gitea's version string (GET /version), the cheapest "is it up" check.
func (g *Gitea) Version(t testing.TB) string {
	t.Helper()
	var v struct {
		Version string `json:"version"`
	}
	g.call(t, http.MethodGet, "/version", nil, &v)
	return v.Version
}

// CreateUser creates a user named prefix plus a random suffix (the client must act as the
// admin), with a random password and an API token of scope "all"; the user and what it
// owns are deleted when the test ends.
func (g *Gitea) CreateUser(t testing.TB, prefix string) GiteaUser {
	t.Helper()
	suffix := make([]byte, 4)
	pw := make([]byte, 16)
	if _, err := rand.Read(suffix); err != nil {
		t.Fatalf("random: %v", err)
	}
	if _, err := rand.Read(pw); err != nil {
		t.Fatalf("random: %v", err)
	}
	name := prefix + "-" + hex.EncodeToString(suffix)
	u := GiteaUser{Name: name, Password: hex.EncodeToString(pw)}
	mustChange := false
	g.call(t, http.MethodPost, "/admin/users", map[string]any{
		"username": name, "email": name + "@example.com", "password": u.Password,
		"must_change_password": &mustChange, "send_notify": false,
	}, nil)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := g.Do(ctx, http.MethodDelete, "/admin/users/"+url.PathEscape(name)+"?purge=true", nil, nil); err != nil {
			t.Errorf("delete Gitea user %s: %v", name, err)
		}
	})
	// Tokens are created with the user's own password (basic auth), not the admin's token.
	var tok struct {
		SHA1 string `json:"sha1"`
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	err := g.do(ctx, http.MethodPost, "/users/"+url.PathEscape(name)+"/tokens",
		map[string]any{"name": "testenv", "scopes": []string{"all"}}, &tok,
		func(r *http.Request) { r.SetBasicAuth(name, u.Password) })
	if err != nil {
		t.Fatalf("%v (%s)", err, howToGetGitea)
	}
	u.Token = tok.SHA1
	return u
}

// CreateRepo creates an empty repository (no initial commit; the first push makes its
// branches) owned by owner, or by the acting user when owner is ""; creating one for another
// user needs the admin. It is deleted when the test ends.
func (g *Gitea) CreateRepo(t testing.TB, owner, name string) GiteaRepo {
	t.Helper()
	path := "/user/repos"
	if owner != "" && owner != g.User {
		path = "/admin/users/" + url.PathEscape(owner) + "/repos"
	}
	var repo GiteaRepo
	g.call(t, http.MethodPost, path, map[string]any{"name": name, "private": false, "auto_init": false}, &repo)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := g.Do(ctx, http.MethodDelete, "/repos/"+repo.Owner.Login+"/"+repo.Name, nil, nil)
		if err != nil && !strings.Contains(err.Error(), "404 Not Found") {
			t.Errorf("delete Gitea repository %s: %v", repo.FullName, err)
		}
	})
	return repo
}

// AddCollaborator gives user a permission ("read", "write" or "admin") on owner/repo.
func (g *Gitea) AddCollaborator(t testing.TB, owner, repo, user, permission string) {
	t.Helper()
	g.call(t, http.MethodPut, repoPath(owner, repo)+"/collaborators/"+url.PathEscape(user),
		map[string]any{"permission": permission}, nil)
}

// CreateHook adds an active webhook of type gitea, content type json, to owner/repo.
func (g *Gitea) CreateHook(t testing.TB, owner, repo string, opts GiteaHookOptions) GiteaHook {
	t.Helper()
	events := opts.Events
	if len(events) == 0 {
		events = []string{"push", "pull_request", "create"}
	}
	filter := opts.BranchFilter
	if filter == "" {
		filter = "*"
	}
	var hook GiteaHook
	g.call(t, http.MethodPost, repoPath(owner, repo)+"/hooks", map[string]any{
		"type":          "gitea",
		"config":        map[string]string{"url": opts.URL, "content_type": "json", "secret": opts.Secret},
		"events":        events,
		"branch_filter": filter,
		"active":        true,
	}, &hook)
	return hook
}

// TestHook makes Gitea deliver a test push event (of the default branch's head commit, which
// must exist) to the hook, with a new delivery id. Gitea 1.26's API has no endpoint that
// lists a hook's deliveries or redelivers one; only the web UI does.
func (g *Gitea) TestHook(t testing.TB, owner, repo string, id int64) {
	t.Helper()
	g.call(t, http.MethodPost, fmt.Sprintf("%s/hooks/%d/tests", repoPath(owner, repo), id), nil, nil)
}

// CreatePull opens a pull request from head into base.
func (g *Gitea) CreatePull(t testing.TB, owner, repo, head, base, title string) GiteaPull {
	t.Helper()
	var pr GiteaPull
	g.call(t, http.MethodPost, repoPath(owner, repo)+"/pulls",
		map[string]any{"head": head, "base": base, "title": title}, &pr)
	return pr
}

// GetPull reads a pull request.
func (g *Gitea) GetPull(t testing.TB, owner, repo string, number int64) GiteaPull {
	t.Helper()
	var pr GiteaPull
	g.call(t, http.MethodGet, fmt.Sprintf("%s/pulls/%d", repoPath(owner, repo), number), nil, &pr)
	return pr
}

// MergePull merges a pull request; style is merge, rebase, rebase-merge, squash or
// fast-forward-only. It returns the pull request as it is after the merge.
// Right after a push to the pull request's branch Gitea still checks the new head and
// answers 405 "Please try again later"; that is asked again for up to 30 s.
func (g *Gitea) MergePull(t testing.TB, owner, repo string, number int64, style string) GiteaPull {
	t.Helper()
	path := fmt.Sprintf("%s/pulls/%d/merge", repoPath(owner, repo), number)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		err := g.Do(t.Context(), http.MethodPost, path, map[string]any{"do": style}, nil)
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "Please try again later") || time.Now().After(deadline) {
			t.Fatalf("gitea POST %s: %v", path, err)
		}
	}
	return g.GetPull(t, owner, repo, number)
}

// CreateReview submits a review; event is APPROVED, REQUEST_CHANGES or COMMENT. Gitea does
// not let a pull request's author approve it: review as another user (As).
func (g *Gitea) CreateReview(t testing.TB, owner, repo string, number int64, event, body string) GiteaReview {
	t.Helper()
	var r GiteaReview
	g.call(t, http.MethodPost, fmt.Sprintf("%s/pulls/%d/reviews", repoPath(owner, repo), number),
		map[string]any{"event": event, "body": body}, &r)
	return r
}

func repoPath(owner, repo string) string {
	return "/repos/" + url.PathEscape(owner) + "/" + url.PathEscape(repo)
}

// CreateOrg creates an organization owned by the acting user, named prefix plus a random
// suffix; it is deleted when the test ends (after its repositories, which are made later).
func (g *Gitea) CreateOrg(t testing.TB, prefix string) string {
	t.Helper()
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		t.Fatalf("random: %v", err)
	}
	name := prefix + "-" + hex.EncodeToString(suffix)
	g.call(t, http.MethodPost, "/orgs", map[string]any{"username": name, "visibility": "public"}, nil)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := g.Do(ctx, http.MethodDelete, "/orgs/"+url.PathEscape(name), nil, nil); err != nil {
			t.Errorf("delete Gitea organization %s: %v", name, err)
		}
	})
	return name
}

// CreateOrgRepo creates an empty repository of an organization the acting user owns; it is
// deleted when the test ends.
func (g *Gitea) CreateOrgRepo(t testing.TB, org, name string) GiteaRepo {
	t.Helper()
	var repo GiteaRepo
	g.call(t, http.MethodPost, "/orgs/"+url.PathEscape(org)+"/repos", map[string]any{"name": name, "private": false, "auto_init": false}, &repo)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := g.Do(ctx, http.MethodDelete, repoPath(org, name), nil, nil)
		if err != nil && !strings.Contains(err.Error(), "404 Not Found") {
			t.Errorf("delete Gitea repository %s: %v", repo.FullName, err)
		}
	})
	return repo
}

// CreateTeam creates a team of an organization with write access to all its repositories
// and adds members to it.
func (g *Gitea) CreateTeam(t testing.TB, org, name string, members ...string) {
	t.Helper()
	var team struct {
		ID int64 `json:"id"`
	}
	g.call(t, http.MethodPost, "/orgs/"+url.PathEscape(org)+"/teams", map[string]any{
		"name": name, "permission": "write", "includes_all_repositories": true,
		"units": []string{"repo.code", "repo.pulls", "repo.issues"},
	}, &team)
	for _, m := range members {
		g.call(t, http.MethodPut, fmt.Sprintf("/teams/%d/members/%s", team.ID, url.PathEscape(m)), nil, nil)
	}
}
