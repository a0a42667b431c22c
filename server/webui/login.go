package webui

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
)

type loginView struct {
	Next  string
	Token string // the form's CSRF value
	Error string // a catalog key
}

// loginForm shows the sign-in form, with a fresh value in a short-lived cookie that the
// form must send back.
func (u *UI) loginForm(w http.ResponseWriter, r *http.Request) {
	u.showLogin(w, r, http.StatusOK, "")
}

func (u *UI) showLogin(w http.ResponseWriter, r *http.Request, status int, errKey string) {
	raw := make([]byte, 18)
	if _, err := rand.Read(raw); err != nil {
		u.internal(w, r, viewer{}, err)
		return
	}
	value := base64.RawURLEncoding.EncodeToString(raw)
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: value, Path: Prefix + "login", MaxAge: 3600,
		HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteStrictMode})
	next := r.URL.Query().Get("next")
	if r.Method == http.MethodPost {
		next = r.PostForm.Get("next")
	}
	u.render(w, r, viewer{lang: language(r)}, status, "login", "", "sign_in",
		loginView{Next: localPath(next), Token: u.sessions.loginCSRF(value), Error: errKey})
}

// login checks the form's CSRF value and the token, then sets the session cookie.
func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		u.fail(w, r, viewer{}, http.StatusBadRequest, "err_form")
		return
	}
	ck, err := r.Cookie(loginCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(u.sessions.loginCSRF(ck.Value)), []byte(r.PostForm.Get("csrf"))) != 1 {
		u.fail(w, r, viewer{}, http.StatusForbidden, "err_csrf")
		return
	}
	user, ok := authenticate(u.users, r.PostForm.Get("token"))
	if !ok {
		u.log.WithField("remote", r.RemoteAddr).Warn("web UI: sign-in with a wrong token")
		u.showLogin(w, r, http.StatusUnauthorized, "err_token")
		return
	}
	value, _, err := u.sessions.issue(user)
	if err != nil {
		u.internal(w, r, viewer{}, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: value, Path: Prefix, MaxAge: int(u.sessions.ttl.Seconds()),
		HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteStrictMode})
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Path: Prefix + "login", MaxAge: -1})
	u.log.WithFields(logrus.Fields{"user": user.Name}).Info("web UI: signed in")
	http.Redirect(w, r, localPath(r.PostForm.Get("next")), http.StatusSeeOther)
}

// logout ends the session: its cookie is cleared and the session refused from now on.
// When the store cannot record that, the cookie is still cleared but the page says so:
// a copy of the cookie would still work.
func (u *UI) logout(w http.ResponseWriter, r *http.Request, v viewer) {
	err := u.sessions.revoke(r.Context(), v.sess)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: Prefix, MaxAge: -1, HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteStrictMode})
	if err != nil {
		u.log.WithError(err).WithField("user", v.Name).Error("web UI: sign-out not recorded")
		u.fail(w, r, v, http.StatusServiceUnavailable, "err_signout")
		return
	}
	u.log.WithFields(logrus.Fields{"user": v.Name}).Info("web UI: signed out")
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

// authenticate finds the identity whose token hash is the given token's sha256, comparing
// in constant time against every identity as the API does.
func authenticate(users []config.APIUser, token string) (config.APIUser, bool) {
	token = strings.TrimSpace(token)
	if token == "" {
		return config.APIUser{}, false
	}
	got := sha256.Sum256([]byte(token))
	found := -1
	for i := range users {
		if subtle.ConstantTimeCompare(users[i].TokenHash[:], got[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return config.APIUser{}, false
	}
	return users[found], true
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
