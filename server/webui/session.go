package webui

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/slipwayhq/slipway/config"
)

// KeySize is the length of the session key in bytes.
const KeySize = 32

// KeyFileName is the session key's file in the daemon's data folder.
const KeyFileName = "ui-session.key"

// ErrBadSession is why a cookie was not accepted: forged, expired, signed out, or its
// identity or token is gone.
var ErrBadSession = errors.New("no valid session")

// LoadOrCreateKey reads the session key from file, or makes a random one there (mode 0600)
// when the file does not exist. Keeping it in a file lets sessions outlive a restart;
// deleting it signs everyone out at the next start.
func LoadOrCreateKey(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	switch {
	case err == nil:
		if len(b) != KeySize {
			return nil, fmt.Errorf("web UI session key %s: %d bytes, want %d (delete it to make a new one)", file, len(b), KeySize)
		}
		return b, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("web UI session key: %w", err)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return nil, fmt.Errorf("web UI session key: %w", err)
	}
	// O_EXCL: of two daemons starting at once on one data folder, one writes and the
	// other reads what it wrote.
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return LoadOrCreateKey(file)
	}
	if err != nil {
		return nil, fmt.Errorf("web UI session key: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		return nil, fmt.Errorf("web UI session key %s: %w", file, err)
	}
	return key, f.Close()
}

// session is what the signed cookie holds. It names the identity, not its token: the
// token's fingerprint ties the session to the token it signed in with, so a rotated or
// removed token ends its sessions.
type session struct {
	User    string `json:"u"`
	Token   string `json:"t"` // fingerprint of the identity's token hash under the key
	Nonce   string `json:"n"` // random; CSRF tokens and sign-out are tied to it
	Expires int64  `json:"e"` // unix seconds
}

// sessions signs and checks session cookies and CSRF tokens with one key.
type sessions struct {
	key      []byte
	ttl      time.Duration
	now      func() time.Time
	signOuts SignOuts
}

func newSessions(key []byte, ttl time.Duration, now func() time.Time, signOuts SignOuts) *sessions {
	return &sessions{key: key, ttl: ttl, now: now, signOuts: signOuts}
}

func (s *sessions) mac(parts ...string) []byte {
	m := hmac.New(sha256.New, s.key)
	for _, p := range parts {
		// Length-prefixed so that no two lists of parts sign alike.
		fmt.Fprintf(m, "%d:%s;", len(p), p)
	}
	return m.Sum(nil)
}

func (s *sessions) fingerprint(u config.APIUser) string {
	return base64.RawURLEncoding.EncodeToString(s.mac("token", string(u.TokenHash[:]))[:16])
}

// issue returns the cookie value of a new session of u.
func (s *sessions) issue(u config.APIUser) (string, session, error) {
	nonce := make([]byte, 18)
	if _, err := rand.Read(nonce); err != nil {
		return "", session{}, err
	}
	sess := session{User: u.Name, Token: s.fingerprint(u), Nonce: base64.RawURLEncoding.EncodeToString(nonce),
		Expires: s.now().Add(s.ttl).Unix()}
	payload, err := json.Marshal(sess)
	if err != nil {
		return "", session{}, err
	}
	body := base64.RawURLEncoding.EncodeToString(payload)
	return body + "." + base64.RawURLEncoding.EncodeToString(s.mac("session", body)), sess, nil
}

// check returns the identity of a cookie value if its signature holds, it has not
// expired or been signed out, and the identity still has the token it signed in with.
// Errors other than ErrBadSession are the store's: the session is refused then too.
func (s *sessions) check(ctx context.Context, value string, users []config.APIUser) (config.APIUser, session, error) {
	body, sig, ok := strings.Cut(value, ".")
	if !ok {
		return config.APIUser{}, session{}, ErrBadSession
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac("session", body)) {
		return config.APIUser{}, session{}, ErrBadSession
	}
	payload, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return config.APIUser{}, session{}, ErrBadSession
	}
	var sess session
	if err := json.Unmarshal(payload, &sess); err != nil {
		return config.APIUser{}, session{}, ErrBadSession
	}
	if s.now().Unix() >= sess.Expires {
		return config.APIUser{}, session{}, ErrBadSession
	}
	var user config.APIUser
	found := false
	for _, u := range users {
		if u.Name == sess.User && subtle.ConstantTimeCompare([]byte(s.fingerprint(u)), []byte(sess.Token)) == 1 {
			user, found = u, true
		}
	}
	if !found {
		return config.APIUser{}, session{}, ErrBadSession
	}
	// Asked last: only a correctly signed, live session costs a store read.
	out, err := s.signOuts.SignedOut(ctx, sess.Nonce)
	switch {
	case err != nil:
		return config.APIUser{}, session{}, err
	case out:
		return config.APIUser{}, session{}, ErrBadSession
	}
	return user, sess, nil
}

// revoke signs a session out, on every daemon sharing the store, until it would have
// expired anyway.
func (s *sessions) revoke(ctx context.Context, sess session) error {
	return s.signOuts.SignOut(ctx, sess.Nonce, time.Unix(sess.Expires, 0))
}

// csrf is the token every form of the session carries: a MAC of the session's nonce, so
// it is worthless in another session and cannot be made without the key.
func (s *sessions) csrf(sess session) string {
	return base64.RawURLEncoding.EncodeToString(s.mac("csrf", sess.Nonce))
}

func (s *sessions) checkCSRF(sess session, given string) bool {
	return given != "" && hmac.Equal([]byte(given), []byte(s.csrf(sess)))
}

// loginCSRF ties the sign-in form to a random value kept in a short-lived cookie, so a
// third-party page cannot sign a browser in under an identity of its choosing.
func (s *sessions) loginCSRF(cookieValue string) string {
	return base64.RawURLEncoding.EncodeToString(s.mac("login", cookieValue))
}
