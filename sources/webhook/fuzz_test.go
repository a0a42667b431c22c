package webhook

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var fuzzProviders = []string{GitHub, GitLab, Gitea, Generic}

// FuzzParse feeds bodies to Parse. Most inputs are signed correctly (forged is false),
// so the fuzzer reaches the payload parsers instead of stopping at the signature.
func FuzzParse(f *testing.F) {
	events := map[string]string{"github": "push", "gitlab": "Push Hook", "gitea": "push", "generic": "push"}
	for i, p := range fuzzProviders {
		files, err := filepath.Glob(filepath.Join("testdata", p, "*.json"))
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			body, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			event := events[p]
			name := filepath.Base(file)
			switch {
			case strings.HasPrefix(name, "pull_request"):
				event = "pull_request"
			case strings.HasPrefix(name, "merge_request"):
				event = "Merge Request Hook"
			case strings.HasPrefix(name, "tag_push"):
				event = "Tag Push Hook"
			}
			f.Add(uint8(i), event, "d", body, false)
		}
	}
	f.Add(uint8(0), "push", "", []byte(`{"ref":"refs/heads/x","after":"0"}`), true)
	f.Fuzz(func(t *testing.T, which uint8, event, delivery string, body []byte, forged bool) {
		provider := fuzzProviders[int(which)%len(fuzzProviders)]
		secret := testSecret
		if forged {
			secret = []byte("forged")
		}
		h := signed(provider, secret, event, delivery, body)
		ev, err := Parse(provider, testSecret, h, body)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Reason == "" {
				t.Fatalf("not a webhook error: %#v", err)
			}
			if forged && e.HTTPStatus() != http.StatusUnauthorized {
				t.Fatalf("a forged delivery got %v", err)
			}
			if strings.Contains(err.Error(), string(testSecret)) {
				t.Fatalf("secret in error: %v", err)
			}
			return
		}
		if forged {
			t.Fatal("a forged delivery verified")
		}
		checkEvent(t, ev)
	})
}

// checkEvent asserts what callers rely on in every parsed Event.
func checkEvent(t *testing.T, ev *Event) {
	t.Helper()
	if ev.DeliveryID == "" || ev.Provider == "" {
		t.Fatalf("no delivery id or provider: %+v", ev)
	}
	set := 0
	for _, p := range []bool{ev.Push != nil, ev.Tag != nil, ev.PullRequest != nil} {
		if p {
			set++
		}
	}
	if set != 1 {
		t.Fatalf("%d parts set: %+v", set, ev)
	}
	switch ev.Kind {
	case KindPush:
		p := ev.Push
		if p.Branch == "" || !isSHA(p.After) || p.Deleted != isZero(p.After) {
			t.Fatalf("bad push %+v", p)
		}
		if (p.Created || p.Deleted) && p.ChangedPaths != nil {
			t.Fatalf("paths for a created or deleted branch: %+v", p)
		}
	case KindTag:
		if ev.Tag.Name == "" || ev.Tag.Deleted != (ev.Tag.Commit == "") {
			t.Fatalf("bad tag %+v", ev.Tag)
		}
	case KindPullRequest:
		pr := ev.PullRequest
		if pr.Number <= 0 || !isSHA(pr.HeadCommit) || (pr.MergeCommit != "" && pr.Action != ActionMerged) {
			t.Fatalf("bad pull request %+v", pr)
		}
		switch pr.Action {
		case ActionOpened, ActionUpdated, ActionMerged, ActionClosed:
		default:
			t.Fatalf("action %q", pr.Action)
		}
	default:
		t.Fatalf("kind %q", ev.Kind)
	}
}
