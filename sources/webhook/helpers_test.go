package webhook

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

var testSecret = []byte("s3cr3t-webhook-key")

// fixture reads testdata/<provider>/<name>.json.
func fixture(t testing.TB, provider, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", provider, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hmacHex(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// sha1Of makes the fixtures' commit ids (they are sha1 of a short label).
func sha1Of(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// signed returns the headers each forge sends with body, signed with secret.
func signed(provider string, secret []byte, event, delivery string, body []byte) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	sig := hmacHex(secret, body)
	switch provider {
	case GitHub:
		h.Set("X-GitHub-Event", event)
		h.Set("X-Hub-Signature-256", "sha256="+sig)
		setIf(h, "X-GitHub-Delivery", delivery)
	case Gitea:
		// What Gitea 1.26 sends: its own headers and GitHub's.
		h.Set("X-Gitea-Event", event)
		h.Set("X-Gitea-Signature", sig)
		h.Set("X-Hub-Signature-256", "sha256="+sig)
		h.Set("X-GitHub-Event", event)
		setIf(h, "X-Gitea-Delivery", delivery)
		setIf(h, "X-GitHub-Delivery", delivery)
	case GitLab:
		h.Set("X-Gitlab-Event", event)
		h.Set("X-Gitlab-Token", string(secret))
		setIf(h, "X-Gitlab-Event-UUID", delivery)
	case Generic:
		h.Set("X-Slipway-Event", event)
		h.Set("X-Slipway-Signature-256", "sha256="+sig)
		setIf(h, "X-Slipway-Delivery", delivery)
	}
	return h
}

func setIf(h http.Header, k, v string) {
	if v != "" {
		h.Set(k, v)
	}
}

// mustParse parses a fixture signed correctly and fails the test on error.
func mustParse(t *testing.T, provider, event, name string) *Event {
	t.Helper()
	body := fixture(t, provider, name)
	ev, err := Parse(provider, testSecret, signed(provider, testSecret, event, "d-1", body), body)
	if err != nil {
		t.Fatalf("%s/%s: %v", provider, name, err)
	}
	if ev.Provider != provider || ev.DeliveryID != "d-1" {
		t.Fatalf("%s/%s: provider %q delivery %q", provider, name, ev.Provider, ev.DeliveryID)
	}
	return ev
}

// parseReason parses a fixture signed correctly and returns the error's reason.
func parseReason(t *testing.T, provider, event, name string) Reason {
	t.Helper()
	body := fixture(t, provider, name)
	_, err := Parse(provider, testSecret, signed(provider, testSecret, event, "d-1", body), body)
	return ReasonOf(err)
}
