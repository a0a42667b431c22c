package webhook

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestVerify(t *testing.T) {
	body := []byte(`{"ref":"refs/heads/main"}`)
	good := hmacHex(testSecret, body)
	other := hmacHex([]byte("another-secret"), body)
	type tc struct {
		name   string
		secret []byte
		set    map[string]string // header edits; "" deletes
		want   Reason
	}
	providers := []struct {
		provider string
		header   string
		good     string
		wrong    string
		short    string
	}{
		{GitHub, "X-Hub-Signature-256", "sha256=" + good, "sha256=" + other, "sha256=" + good[:40]},
		{Gitea, "X-Gitea-Signature", good, other, good[:62]},
		{Generic, "X-Slipway-Signature-256", "sha256=" + good, "sha256=" + other, "sha256=" + good + "00"},
		{GitLab, "X-Gitlab-Token", string(testSecret), "s3cr3t-webhook-kez", string(testSecret[:5])},
	}
	for _, p := range providers {
		cases := []tc{
			{"good", testSecret, nil, ""},
			{"missing", testSecret, map[string]string{p.header: ""}, ReasonMissingSignature},
			{"wrong", testSecret, map[string]string{p.header: p.wrong}, ReasonBadSignature},
			{"wrong length", testSecret, map[string]string{p.header: p.short}, ReasonBadSignature},
			{"empty secret", nil, nil, ReasonNoSecret},
			{"empty secret, empty signature", []byte{}, map[string]string{p.header: hmacHex(nil, body)}, ReasonNoSecret},
			{"garbage", testSecret, map[string]string{p.header: "sha256=zz" + good[2:]}, ReasonBadSignature},
		}
		if p.provider != GitLab {
			cases = append(cases,
				tc{"upper-case hex", testSecret, map[string]string{p.header: strings.Replace(p.good, good, strings.ToUpper(good), 1)}, ""},
				tc{"signature of another body", testSecret, map[string]string{p.header: strings.Replace(p.good, good, hmacHex(testSecret, []byte("{}")), 1)}, ReasonBadSignature},
			)
		}
		if p.provider == Gitea {
			// Gitea also sends X-Hub-Signature-256; only its own header counts.
			cases = append(cases, tc{"only X-Hub-Signature-256", testSecret, map[string]string{p.header: ""}, ReasonMissingSignature})
		}
		if p.provider == GitHub || p.provider == Generic {
			cases = append(cases, tc{"no sha256= prefix", testSecret, map[string]string{p.header: good}, ReasonBadSignature})
		}
		for _, c := range cases {
			t.Run(p.provider+"/"+c.name, func(t *testing.T) {
				h := signed(p.provider, testSecret, "push", "d", body)
				if h.Get(p.header) != p.good {
					t.Fatalf("helper sent %q, table says %q", h.Get(p.header), p.good)
				}
				for k, v := range c.set {
					if v == "" {
						h.Del(k)
					} else {
						h.Set(k, v)
					}
				}
				err := verify(p.provider, c.secret, h, body)
				if got := ReasonOf(err); got != c.want {
					t.Fatalf("reason %q, want %q (err %v)", got, c.want, err)
				}
				if err != nil {
					if strings.Contains(err.Error(), string(testSecret)) || strings.Contains(err.Error(), good) {
						t.Fatalf("error shows the secret or the expected signature: %v", err)
					}
					var e *Error
					if !errors.As(err, &e) || e.HTTPStatus() != http.StatusUnauthorized || e.Provider != p.provider {
						t.Fatalf("not a 401 *Error for %s: %#v", p.provider, err)
					}
				}
			})
		}
	}
}

// Parse never reads the body of a delivery that does not verify: a body that is not
// JSON gets a signature error, not a payload error.
func TestParseVerifiesFirst(t *testing.T) {
	body := []byte("not json")
	pushEvent := map[string]string{GitHub: "push", GitLab: "Push Hook", Gitea: "push", Generic: "push"}
	for p, event := range pushEvent {
		h := signed(p, []byte("wrong"), event, "d", body)
		if _, err := Parse(p, testSecret, h, body); ReasonOf(err) != ReasonBadSignature {
			t.Errorf("%s: %v, want bad_signature", p, err)
		}
		h = signed(p, testSecret, event, "d", body)
		_, err := Parse(p, testSecret, h, body)
		var e *Error
		if !errors.As(err, &e) || e.Reason != ReasonBadPayload || e.DeliveryID != "d" || e.HTTPStatus() != http.StatusBadRequest {
			t.Errorf("%s: %#v, want bad_payload with the delivery id", p, err)
		}
	}
}

func TestUnknownProvider(t *testing.T) {
	body := []byte(`{}`)
	_, err := Parse("bitbucket", testSecret, signed(GitHub, testSecret, "push", "d", body), body)
	var e *Error
	if !errors.As(err, &e) || e.Reason != ReasonUnknownProvider || e.HTTPStatus() != http.StatusInternalServerError {
		t.Fatalf("%#v", err)
	}
	if ReasonOf(nil) != "" || ReasonOf(errors.New("x")) != "" {
		t.Fatal("ReasonOf of a foreign error")
	}
}

func TestPrecheckNeedsNoBody(t *testing.T) {
	sig := "sha256=" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name     string
		provider string
		headers  map[string]string
		want     Reason
	}{
		{"github well-formed", GitHub, map[string]string{"Content-Type": "application/json", headerGitHubSignature: sig}, ""},
		{"github with charset", GitHub, map[string]string{"Content-Type": "application/json; charset=utf-8", headerGitHubSignature: sig}, ""},
		{"github unsigned", GitHub, map[string]string{"Content-Type": "application/json"}, ReasonMissingSignature},
		{"github short", GitHub, map[string]string{"Content-Type": "application/json", headerGitHubSignature: "sha256=abcd"}, ReasonBadSignature},
		{"github form", GitHub, map[string]string{"Content-Type": "application/x-www-form-urlencoded", headerGitHubSignature: sig}, ReasonBadMediaType},
		{"gitea well-formed", Gitea, map[string]string{"Content-Type": "application/json", headerGiteaSignature: strings.Repeat("ab", 32)}, ""},
		{"gitlab right token", GitLab, map[string]string{"Content-Type": "application/json", headerGitLabToken: "s3cret"}, ""},
		{"gitlab wrong token", GitLab, map[string]string{"Content-Type": "application/json", headerGitLabToken: "nope"}, ReasonBadSignature},
		{"gitlab no token", GitLab, map[string]string{"Content-Type": "application/json"}, ReasonMissingSignature},
		{"unknown provider", "bitbucket", map[string]string{"Content-Type": "application/json"}, ReasonUnknownProvider},
	} {
		h := http.Header{}
		for k, v := range tc.headers {
			h.Set(k, v)
		}
		if got := ReasonOf(Precheck(tc.provider, []byte("s3cret"), h)); got != tc.want {
			t.Errorf("%s: reason %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := ReasonOf(Precheck(GitHub, nil, http.Header{})); got != ReasonNoSecret {
		t.Errorf("empty secret: %q", got)
	}
}
