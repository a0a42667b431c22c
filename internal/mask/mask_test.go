package mask

import (
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"
)

func TestMaskForms(t *testing.T) {
	secret := "p@ss w0rd/+?&="
	m := New(secret, "")
	basic := base64.StdEncoding.EncodeToString([]byte("admin:" + secret))
	for _, text := range []string{
		secret,
		base64.StdEncoding.EncodeToString([]byte(secret)),
		base64.URLEncoding.EncodeToString([]byte(secret)),
		base64.RawStdEncoding.EncodeToString([]byte(secret)),
		url.QueryEscape(secret),
		url.PathEscape(secret),
		hex.EncodeToString([]byte(secret)),
		"Authorization: Basic " + basic,
		`{"op":"replace","path":"/data/DSN","value":"postgres://u:` + url.QueryEscape(secret) + `@db/x"}`,
	} {
		got := m.String(text)
		if !strings.Contains(got, Replacement) {
			t.Errorf("%q: not masked: %q", text, got)
		}
		for _, form := range []string{secret, url.QueryEscape(secret), base64.StdEncoding.EncodeToString([]byte(secret))} {
			if strings.Contains(got, form) {
				t.Errorf("%q: %q still in %q", text, form, got)
			}
		}
	}
	if got := m.String("nothing to hide"); got != "nothing to hide" {
		t.Errorf("changed clean text: %q", got)
	}
	var none *Masker
	if none.String("x") != "x" || !New().Empty() || !New("").Empty() {
		t.Error("an empty masker changed text")
	}
}
