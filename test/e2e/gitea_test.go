package e2e

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/test/testenv"
)

// delivery is one webhook request as the receiving server saw it.
type delivery struct {
	header http.Header
	body   []byte
	at     time.Time
}

// hookReceiver is a loopback HTTP server that records Gitea's webhook deliveries.
func hookReceiver(t *testing.T) (url string, deliveries <-chan delivery) {
	t.Helper()
	ch := make(chan delivery, 64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 3<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ch <- delivery{header: r.Header.Clone(), body: body, at: time.Now()}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/hooks/gitea", ch
}

// nextPush waits for the next delivery of a push event, dropping other events (a new
// branch also sends "create").
func nextPush(t *testing.T, deliveries <-chan delivery, timeout time.Duration) delivery {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case d := <-deliveries:
			if d.header.Get("X-Gitea-Event") == "push" {
				return d
			}
		case <-deadline:
			t.Fatalf("no push delivery within %s (Gitea's log: .slipway/env/logs/gitea.log)", timeout)
		}
	}
}

func TestGiteaPushDeliversSignedWebhookFast(t *testing.T) {
	env := testenv.Get(t)
	admin := env.Gitea(t)
	if v := admin.Version(t); v == "" {
		t.Fatal("Gitea answered an empty version")
	}
	owner := admin.CreateUser(t, "owner")
	gitea := admin.As(owner)
	repo := gitea.CreateRepo(t, "", testenv.UniqueName(t))
	if repo.Owner.Login != owner.Name {
		t.Fatalf("repository owner %q, want %q", repo.Owner.Login, owner.Name)
	}

	secretBytes := make([]byte, 16)
	if _, err := rand.Read(secretBytes); err != nil {
		t.Fatal(err)
	}
	secret := hex.EncodeToString(secretBytes)
	url, deliveries := hookReceiver(t)
	hook := gitea.CreateHook(t, owner.Name, repo.Name, testenv.GiteaHookOptions{URL: url, Secret: secret})
	if hook.ID == 0 || !hook.Active || hook.Type != "gitea" {
		t.Fatalf("created hook %+v", hook)
	}

	w := &gitWork{t: t, dir: t.TempDir(), pushURL: gitea.PushURL(owner.Name, repo.Name)}
	w.git("init", "--initial-branch=main", ".")
	check := func(d delivery, sha string) {
		t.Helper()
		for _, h := range []string{"X-Gitea-Event", "X-Gitea-Delivery", "X-Gitea-Signature"} {
			if d.header.Get(h) == "" {
				t.Errorf("delivery lacks %s; headers %v", h, d.header)
			}
		}
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(d.body)
		if got, want := d.header.Get("X-Gitea-Signature"), hex.EncodeToString(mac.Sum(nil)); !hmac.Equal([]byte(got), []byte(want)) {
			t.Errorf("X-Gitea-Signature %q is not the HMAC-SHA256 of the body (%q)", got, want)
		}
		var p struct {
			Ref        string `json:"ref"`
			After      string `json:"after"`
			Repository struct {
				FullName string `json:"full_name"`
			} `json:"repository"`
		}
		if err := json.Unmarshal(d.body, &p); err != nil {
			t.Fatalf("push payload: %v: %s", err, d.body)
		}
		if p.Ref != "refs/heads/main" || p.After != sha || p.Repository.FullName != repo.FullName {
			t.Errorf("push payload ref %q after %q repository %q; want refs/heads/main, %s, %s",
				p.Ref, p.After, p.Repository.FullName, sha, repo.FullName)
		}
	}

	// The first push creates the branch; the second moves it (the common case to measure).
	first := w.commit("first", map[string]string{"a.txt": "a\n"})
	w.push("main")
	pushed := time.Now()
	d := nextPush(t, deliveries, 15*time.Second)
	check(d, first)
	// Negative: the delivery arrived before `git push` returned (Gitea's post-receive hook
	// queues it before the push completes).
	t.Logf("push delivery (new branch) %v after git push returned", d.at.Sub(pushed).Round(time.Millisecond))

	second := w.commit("second", map[string]string{"a.txt": "b\n"})
	w.push("main")
	pushed = time.Now()
	d2 := nextPush(t, deliveries, 15*time.Second)
	check(d2, second)
	t.Logf("push delivery (branch moved) %v after git push returned", d2.at.Sub(pushed).Round(time.Millisecond))
	if d2.header.Get("X-Gitea-Delivery") == d.header.Get("X-Gitea-Delivery") {
		t.Errorf("two pushes share the delivery id %s", d.header.Get("X-Gitea-Delivery"))
	}
	if delay := d2.at.Sub(pushed); delay > 2*time.Second {
		t.Errorf("push delivery took %v; the environment's Gitea should deliver well under a second "+
			"(app.ini [queue] TYPE = channel)", delay)
	}
}

func TestGiteaPullRequestReviewAndMerge(t *testing.T) {
	env := testenv.Get(t)
	admin := env.Gitea(t)
	owner := admin.CreateUser(t, "owner")
	reviewer := admin.CreateUser(t, "reviewer")
	gitea := admin.As(owner)
	repo := gitea.CreateRepo(t, "", testenv.UniqueName(t))
	gitea.AddCollaborator(t, owner.Name, repo.Name, reviewer.Name, "write")

	url, deliveries := hookReceiver(t)
	gitea.CreateHook(t, owner.Name, repo.Name, testenv.GiteaHookOptions{URL: url, Secret: "s"})

	w := &gitWork{t: t, dir: t.TempDir(), pushURL: gitea.PushURL(owner.Name, repo.Name)}
	w.git("init", "--initial-branch=main", ".")
	w.commit("base", map[string]string{"a.txt": "a\n"})
	w.push("main")
	w.git("checkout", "-q", "-b", "feature")
	head := w.commit("feature", map[string]string{"b.txt": "b\n"})
	w.push("feature")

	pr := gitea.CreatePull(t, owner.Name, repo.Name, "feature", "main", "Add b")
	if pr.Number == 0 || pr.State != "open" || pr.Head.SHA != head {
		t.Fatalf("created pull request %+v, want open with head %s", pr, head)
	}
	review := admin.As(reviewer).CreateReview(t, owner.Name, repo.Name, pr.Number, "APPROVED", "lgtm")
	if review.State != "APPROVED" || review.User.Login != reviewer.Name {
		t.Fatalf("review %+v, want APPROVED by %s", review, reviewer.Name)
	}
	merged := gitea.MergePull(t, owner.Name, repo.Name, pr.Number, "merge")
	if !merged.Merged || merged.MergeCommitSHA == "" {
		t.Fatalf("after merge: %+v", merged)
	}
	// The merge commit maps back to its pull request, as an approval gate needs.
	var byCommit testenv.GiteaPull
	path := "/repos/" + owner.Name + "/" + repo.Name + "/commits/" + merged.MergeCommitSHA + "/pull"
	if err := gitea.Do(t.Context(), http.MethodGet, path, nil, &byCommit); err != nil {
		t.Fatal(err)
	}
	if byCommit.Number != pr.Number {
		t.Fatalf("merge commit %s maps to pull request %d, want %d", merged.MergeCommitSHA, byCommit.Number, pr.Number)
	}

	// The hook saw the pull request opened and closed (merged).
	var actions []string
	deadline := time.After(15 * time.Second)
	for !strings.Contains(strings.Join(actions, ","), "closed") {
		select {
		case d := <-deliveries:
			if d.header.Get("X-Gitea-Event") != "pull_request" {
				continue
			}
			var p struct {
				Action string `json:"action"`
			}
			if err := json.Unmarshal(d.body, &p); err != nil {
				t.Fatalf("pull_request payload: %v", err)
			}
			actions = append(actions, p.Action)
		case <-deadline:
			t.Fatalf("pull_request deliveries %v lack opened and closed", actions)
		}
	}
	if actions[0] != "opened" {
		t.Errorf("pull_request actions %v, want opened first", actions)
	}
}
