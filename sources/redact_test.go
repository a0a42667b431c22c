package sources

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/transport"
)

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://github.com/org/repo.git":                   "https://github.com/org/repo.git",
		"https://user:s3cret@github.com/org/repo.git":       "https://github.com/org/repo.git",
		"https://ghp_TOKEN@github.com/org/repo.git":         "https://github.com/org/repo.git",
		"http://u:p@127.0.0.1:17407/x.git?private_token=ab": "http://127.0.0.1:17407/x.git?private_token=REDACTED",
		"ssh://git@example.com:2222/org/repo.git":           "ssh://example.com:2222/org/repo.git",
		"git@github.com:org/repo.git":                       "git@github.com:org/repo.git",
		"user:pw@github.com:org/repo.git":                   "github.com:org/repo.git",
		"https://u:p@exa mple.com/%zz":                      "https://exa mple.com/%zz",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDescribeScrubsSecretsAndClassifies(t *testing.T) {
	repo := Repo{Name: "app", URL: "https://bob:urlpass@git.example/app.git",
		Auth: Auth{Username: "bob", Password: "hunter22", Token: "tok-123"}}
	raw := errors.New(`Get "https://bob:urlpass@git.example/app.git/info/refs": hunter22 tok-123 rejected`)
	err := describe(context.Background(), repo, raw)
	for _, secret := range []string{"urlpass", "hunter22", "tok-123"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("message leaks %q: %s", secret, err)
		}
	}
	if !errors.Is(err, raw) {
		t.Error("the original error is no longer reachable with errors.Is")
	}

	auth := describe(context.Background(), repo, transport.ErrAuthenticationRequired)
	if !errors.Is(auth, ErrAuth) || !errors.Is(auth, transport.ErrAuthenticationRequired) {
		t.Errorf("authentication required is not ErrAuth: %v", auth)
	}
	if err := describe(context.Background(), repo, errors.New("ssh: handshake failed: ssh: unable to authenticate, attempted methods [none publickey]")); !errors.Is(err, ErrAuth) {
		t.Errorf("ssh auth failure is not ErrAuth: %v", err)
	}
	if err := describe(context.Background(), repo, errors.New("ssh: handshake failed: knownhosts: key mismatch")); !errors.Is(err, ErrHostKey) {
		t.Errorf("host key mismatch is not ErrHostKey: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := describe(ctx, repo, errors.New("read: connection reset")); !errors.Is(err, context.Canceled) {
		t.Errorf("an error after cancellation does not say so: %v", err)
	}
	if mayBeLocal(context.Background(), auth) {
		t.Error("an auth failure must not be taken for a broken mirror")
	}
	if !mayBeLocal(context.Background(), errors.New("packfile: bad header")) {
		t.Error("an unknown fetch failure should lead to checking the mirror")
	}
}

func TestAuthNeverPrintsSecrets(t *testing.T) {
	a := Auth{Username: "u", Password: "pw-value", Token: "", SSHKey: nil}
	for _, s := range []string{a.String(), a.GoString()} {
		if strings.Contains(s, "pw-value") {
			t.Fatalf("Auth printed its password: %s", s)
		}
	}
	r := Repo{Name: "x", URL: "https://h/x.git", Auth: a}
	if s := fmt.Sprintf("%v %+v %#v", r, r, r); strings.Contains(s, "pw-value") {
		t.Fatalf("Repo printed the password: %s", s)
	}
}
