package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"mime"
	"net/http"
	"strings"
)

// Signature and token headers.
const (
	headerGitHubSignature  = "X-Hub-Signature-256"
	headerGiteaSignature   = "X-Gitea-Signature"
	headerGitLabToken      = "X-Gitlab-Token"
	headerGenericSignature = "X-Slipway-Signature-256"
)

// verify checks the delivery against secret. It runs before anything reads the body.
func verify(provider string, secret []byte, h http.Header, body []byte) error {
	if len(secret) == 0 {
		// An empty HMAC key or token would let anyone who knows it is empty sign.
		return newError(ReasonNoSecret, provider, "the configured webhook secret is empty")
	}
	switch provider {
	case GitHub:
		return verifyHMAC(provider, headerGitHubSignature, "sha256=", secret, h, body)
	case Generic:
		return verifyHMAC(provider, headerGenericSignature, "sha256=", secret, h, body)
	case Gitea:
		// Gitea (1.26 too) also sends X-Hub-Signature-256 with the same value; its own
		// header is the one documented for Gitea webhooks, and Forgejo keeps it.
		return verifyHMAC(provider, headerGiteaSignature, "", secret, h, body)
	case GitLab:
		return verifyToken(provider, secret, h)
	}
	return newError(ReasonUnknownProvider, provider, "unknown webhook provider %s", quote(provider))
}

// verifyHMAC checks header = prefix + hex(HMAC-SHA256(secret, body)).
func verifyHMAC(provider, header, prefix string, secret []byte, h http.Header, body []byte) error {
	if err := wellFormedHMAC(provider, header, prefix, h); err != nil {
		return err
	}
	got, _ := hex.DecodeString(strings.TrimPrefix(strings.TrimSpace(h.Get(header)), prefix))
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), got) {
		return newError(ReasonBadSignature, provider, "%s does not match the body", header)
	}
	return nil
}

// verifyToken checks GitLab's plain shared token. Both sides are hashed first so the
// comparison takes the same time whatever the token's length or content.
func verifyToken(provider string, secret []byte, h http.Header) error {
	values, present := h[http.CanonicalHeaderKey(headerGitLabToken)]
	if !present || len(values) == 0 || values[0] == "" {
		return newError(ReasonMissingSignature, provider, "no %s header", headerGitLabToken)
	}
	got := sha256.Sum256([]byte(values[0]))
	want := sha256.Sum256(secret)
	if !hmac.Equal(got[:], want[:]) {
		return newError(ReasonBadSignature, provider, "%s does not match the secret", headerGitLabToken)
	}
	return nil
}

// Precheck makes the checks that need no body: the secret is set, the signature header
// is there and well-formed (for GitLab, the token matches) and the media type is JSON. A
// server calls it before it reads anything, so a sender that cannot sign costs it no body
// read; Parse still verifies the signature against the body.
func Precheck(provider string, secret []byte, h http.Header) error {
	if _, known := deliveryHeaders[provider]; !known {
		return newError(ReasonUnknownProvider, provider, "unknown webhook provider %s", quote(provider))
	}
	if len(secret) == 0 {
		return newError(ReasonNoSecret, provider, "the configured webhook secret is empty")
	}
	if err := checkMediaType(provider, h); err != nil {
		return err
	}
	switch provider {
	case GitHub, Generic:
		header := headerGitHubSignature
		if provider == Generic {
			header = headerGenericSignature
		}
		return wellFormedHMAC(provider, header, "sha256=", h)
	case Gitea:
		return wellFormedHMAC(provider, headerGiteaSignature, "", h)
	}
	return verifyToken(provider, secret, h)
}

// checkMediaType refuses what is not JSON: every provider Slipway reads sends JSON, and a
// form-encoded GitHub hook only needs its content type changed.
func checkMediaType(provider string, h http.Header) error {
	ct := h.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return newError(ReasonBadMediaType, provider, "content type %s is not application/json: set the webhook's content type to application/json", quote(ct))
	}
	return nil
}

// wellFormedHMAC checks that header holds prefix + 64 hex digits, without the body.
func wellFormedHMAC(provider, header, prefix string, h http.Header) error {
	value := strings.TrimSpace(h.Get(header))
	if value == "" {
		return newError(ReasonMissingSignature, provider, "no %s header", header)
	}
	hexSig, ok := strings.CutPrefix(value, prefix)
	if !ok {
		return newError(ReasonBadSignature, provider, "%s does not start with %q", header, prefix)
	}
	if len(hexSig) != hex.EncodedLen(sha256.Size) {
		return newError(ReasonBadSignature, provider, "%s is not a hex SHA-256 HMAC", header)
	}
	if _, err := hex.DecodeString(hexSig); err != nil {
		return newError(ReasonBadSignature, provider, "%s is not a hex SHA-256 HMAC", header)
	}
	return nil
}
