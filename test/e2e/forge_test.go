package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/sources/forge"
	"github.com/slipwayhq/slipway/test/testenv"
)

// giteaForge returns a forge client of org/repo acting as the user whose token is given,
// made the way the daemon makes it: from a repository's forge block.
func giteaForge(t *testing.T, gitea *testenv.Gitea, cloneURL, token string) forge.Client {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "forge-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := forge.New(config.Repository{Name: "app", URL: cloneURL,
		Forge: &config.Forge{Type: "gitea", URL: gitea.URL, TokenFile: tokenFile}}, forge.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGiteaForgeClient(t *testing.T) {
	env := testenv.Get(t)
	admin := env.Gitea(t)
	owner := admin.CreateUser(t, "owner")
	reviewer := admin.CreateUser(t, "reviewer")
	gitea := admin.As(owner)
	org := gitea.CreateOrg(t, "org")
	gitea.CreateTeam(t, org, "sre", reviewer.Name)
	repo := gitea.CreateOrgRepo(t, org, testenv.UniqueName(t))

	w := &gitWork{t: t, dir: t.TempDir(), pushURL: gitea.PushURL(org, repo.Name)}
	w.git("init", "--initial-branch=main", ".")
	base := w.commit("base", map[string]string{"a.txt": "a\n"})
	w.push("main")
	w.git("checkout", "-q", "-b", "feature")
	head := w.commit("feature", map[string]string{"b.txt": "b\n"})
	w.push("feature")
	pr := gitea.CreatePull(t, org, repo.Name, "feature", "main", "Add b")
	admin.As(reviewer).CreateReview(t, org, repo.Name, pr.Number, "APPROVED", "lgtm")
	merged := gitea.MergePull(t, org, repo.Name, pr.Number, "merge")

	c := giteaForge(t, gitea, gitea.CloneURL(org, repo.Name), owner.Token)
	ctx := t.Context()

	prs, err := c.PullRequestsForCommit(ctx, merged.MergeCommitSHA)
	if err != nil {
		t.Fatal(err)
	}
	want := forge.PullRequest{Number: pr.Number, Author: owner.Name, HeadSHA: head, BaseBranch: "main",
		MergeCommitSHA: merged.MergeCommitSHA, Merged: true, State: forge.PRClosed, URL: merged.HTMLURL}
	if len(prs) != 1 || prs[0] != want {
		t.Fatalf("pull requests of the merge commit:\n got %+v\nwant %+v", prs, want)
	}
	if prs, err := c.PullRequestsForCommit(ctx, base); err != nil || len(prs) != 0 {
		t.Fatalf("a commit pushed directly: %+v, %v; want none", prs, err)
	}
	if got, err := c.PullRequest(ctx, pr.Number); err != nil || got != want {
		t.Fatalf("pull request #%d: %+v, %v", pr.Number, got, err)
	}

	reviews, err := c.Reviews(ctx, pr.Number)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(reviews, func(r forge.Review) bool {
		return r.Reviewer == reviewer.Name && r.State == forge.ReviewApproved && r.CommitSHA == head && !r.Submitted.IsZero()
	}) {
		t.Fatalf("reviews %+v lack %s's approval of head %s", reviews, reviewer.Name, head)
	}

	for _, team := range []string{"sre", "team:sre", org + "/sre"} {
		members, err := c.TeamMembers(ctx, team)
		if err != nil || !slices.Equal(members, []string{reviewer.Name}) {
			t.Fatalf("team %s: %v, %v; want [%s]", team, members, err, reviewer.Name)
		}
	}
	if _, err := c.TeamMembers(ctx, "nobody"); !errors.Is(err, forge.ErrNotFound) {
		t.Fatalf("a team that does not exist: %v, want ErrNotFound", err)
	}

	// The comment is created once and edited after.
	first, err := c.UpsertComment(ctx, pr.Number, "preview", "first")
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.UpsertComment(ctx, pr.Number, "preview", "second")
	if err != nil || second != first {
		t.Fatalf("second upsert: comment %d, %v; want the same comment %d edited", second, err, first)
	}
	var comments []struct {
		ID   int64  `json:"id"`
		Body string `json:"body"`
	}
	if err := gitea.Do(ctx, http.MethodGet, fmt.Sprintf("/repos/%s/%s/issues/%d/comments", org, repo.Name, pr.Number), nil, &comments); err != nil {
		t.Fatal(err)
	}
	marked := 0
	for _, cm := range comments {
		if strings.Contains(cm.Body, "<!-- slipway:preview -->") {
			marked++
			if cm.ID != first || !strings.HasSuffix(cm.Body, "\nsecond") {
				t.Errorf("comment %d: %q", cm.ID, cm.Body)
			}
		}
	}
	if marked != 1 {
		t.Fatalf("%d marked comments, want 1: %+v", marked, comments)
	}

	// Statuses: the newest per context reads back.
	sha := merged.MergeCommitSHA
	for _, s := range []forge.Status{
		{Context: "slipway/web", State: forge.StatusPending, Description: "BUILD_ID 1 running"},
		{Context: "slipway/web", State: forge.StatusSuccess, Description: "BUILD_ID 1 succeeded", TargetURL: "http://slipway.example.com/runs/1"},
		{Context: "slipway/api", State: forge.StatusFailure, Description: strings.Repeat("long reason ", 30)},
	} {
		if err := c.SetStatus(ctx, sha, s); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.Statuses(ctx, sha)
	if err != nil {
		t.Fatal(err)
	}
	byContext := map[string]forge.Status{}
	for _, s := range got {
		byContext[s.Context] = s
	}
	if s := byContext["slipway/web"]; s.State != forge.StatusSuccess || s.Description != "BUILD_ID 1 succeeded" || s.TargetURL != "http://slipway.example.com/runs/1" {
		t.Errorf("slipway/web: %+v", s)
	}
	if s := byContext["slipway/api"]; s.State != forge.StatusFailure || len([]rune(s.Description)) != 140 {
		t.Errorf("slipway/api: %+v (description cut to 140)", s)
	}

	// Errors are typed.
	if _, err := c.PullRequest(ctx, 9999); !errors.Is(err, forge.ErrNotFound) {
		t.Errorf("a pull request that does not exist: %v", err)
	}
	bad := giteaForge(t, gitea, gitea.CloneURL(org, repo.Name), "0000000000000000000000000000000000000000")
	if err := bad.SetStatus(ctx, sha, forge.Status{Context: "x", State: forge.StatusSuccess}); !errors.Is(err, forge.ErrUnauthorized) {
		t.Errorf("a wrong token: %v", err)
	}
}

// giteaServeProject is a Gitea repository owned by a new user, with a slipway.yaml that
// follows it (poll 1s) and sends statuses to forgeURL.
func giteaServeProject(t *testing.T, env *testenv.Env, forgeURL string) (w *gitWork, gitea *testenv.Gitea, owner testenv.GiteaUser, repo testenv.GiteaRepo, cfg string) {
	t.Helper()
	admin := env.Gitea(t)
	owner = admin.CreateUser(t, "owner")
	gitea = admin.As(owner)
	repo = gitea.CreateRepo(t, "", testenv.UniqueName(t))
	if forgeURL == "" {
		forgeURL = gitea.URL
	}
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "forge-token")
	if err := os.WriteFile(tokenFile, []byte(owner.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg = writeConfigFor(t, env, dir, repo.Name, gitea.CloneURL(owner.Name, repo.Name), owner.Name, owner.Token,
		fmt.Sprintf("poll: 1s\nforge: {type: gitea, url: %q, tokenFile: %s}", forgeURL, tokenFile))
	w = &gitWork{t: t, dir: t.TempDir(), pushURL: gitea.PushURL(owner.Name, repo.Name)}
	w.git("init", "--initial-branch=master", ".")
	return w, gitea, owner, repo, cfg
}

// waitStatus polls the commit's statuses until context has state.
func waitStatus(t *testing.T, c forge.Client, sha, context string, state forge.StatusState, timeout time.Duration) forge.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last []forge.Status
	for time.Now().Before(deadline) {
		ss, err := c.Statuses(t.Context(), sha)
		if err != nil {
			t.Fatal(err)
		}
		last = ss
		for _, s := range ss {
			if s.Context == context && s.State == state {
				return s
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("commit %s never got %s %s; statuses %+v", sha, context, state, last)
	return forge.Status{}
}

func TestServeSetsCommitStatusesOnGitea(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	w, gitea, owner, repo, cfg := giteaServeProject(t, env, "")
	c := giteaForge(t, gitea, gitea.CloneURL(owner.Name, repo.Name), owner.Token)
	manifests := readExample(t, env, "2048-yaml/2048_env.yaml")
	good := w.commit("first", map[string]string{".pipeline.yaml": string(deployOnlyPipeline(env.Registry, ns)), "2048_env.yaml": string(manifests)})
	w.push("master")

	d := startServe(t, cfg)
	waitHistory(t, cfg, 90*time.Second, "run 1 succeeded", func(h []historyEntry) bool {
		return len(h) == 1 && h[0].Status == "succeeded" && h[0].Commit == good
	})
	s := waitStatus(t, c, good, "slipway/jack-2048", forge.StatusSuccess, 30*time.Second)
	if s.Description != "BUILD_ID 1 succeeded" {
		t.Errorf("success status says %q", s.Description)
	}

	// A failing run: failure, with BUILD_ID and the run's reason.
	bad := w.commit("break", map[string]string{"2048_env.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\ndata:\n  key: [1, 2]\n"})
	w.push("master")
	h := waitHistory(t, cfg, 90*time.Second, "run 2 failed", func(h []historyEntry) bool {
		return len(h) == 2 && h[0].Commit == bad && h[0].Status == "failed"
	})
	s = waitStatus(t, c, bad, "slipway/jack-2048", forge.StatusFailure, 30*time.Second)
	wantPrefix := "BUILD_ID 2 failed: "
	reason := strings.Join(strings.Fields(h[0].Reason), " ") // on one line
	if !strings.HasPrefix(s.Description, wantPrefix) || reason == "" || strings.Contains(s.Description, "\n") ||
		!strings.HasPrefix(wantPrefix+reason, strings.TrimSuffix(s.Description, "…")) {
		t.Errorf("failure status says %q; the run's reason is %q", s.Description, h[0].Reason)
	}
	t.Logf("failure status: %q", s.Description)
	// The first commit's status is untouched by the second run.
	waitStatus(t, c, good, "slipway/jack-2048", forge.StatusSuccess, time.Second)
	d.stop(t)
}

func TestServeRunsWhenTheForgeIsDown(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	// Port 1 on the loopback refuses every connection: the forge is down.
	w, _, _, _, cfg := giteaServeProject(t, env, "http://127.0.0.1:1")
	manifests := readExample(t, env, "2048-yaml/2048_env.yaml")
	head := w.commit("first", map[string]string{".pipeline.yaml": string(deployOnlyPipeline(env.Registry, ns)), "2048_env.yaml": string(manifests)})
	w.push("master")

	d := startServe(t, cfg)
	h := waitHistory(t, cfg, 90*time.Second, "run 1 succeeded", func(h []historyEntry) bool {
		return len(h) == 1 && h[0].Status == "succeeded" && h[0].Commit == head
	})
	if h[0].Reason != "" {
		t.Errorf("the run's reason %q mentions something", h[0].Reason)
	}
	t.Logf("with the forge down, run 1 took %.1fs", h[0].Duration)
	d.waitOutput(t, 30*time.Second, "commit status not set; will retry")
	d.stop(t)
}
