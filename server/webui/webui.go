// Package webui is Slipway's web console: server-rendered pages embedded in the binary,
// signed in with an API token, with live run pages pushed over Server-Sent Events.
package webui

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/server/records"
	"github.com/slipwayhq/slipway/store"
)

//go:embed templates static i18n
var files embed.FS

// Prefix is where the UI is mounted on the daemon's HTTP listener.
const Prefix = "/ui/"

const (
	sessionCookie = "slipway_session"
	loginCookie   = "slipway_login"
	langCookie    = "slipway_lang"
	// DefaultSessionTTL is how long a sign-in lasts.
	DefaultSessionTTL = 12 * time.Hour
)

// Reads is what the pages read from the store: what the shared read model (server/records)
// reads, and the logs and audit log.
type Reads interface {
	records.PipelineStore
	records.RunFinder
	records.RunStore
	ReadLogs(ctx context.Context, ref store.PipelineRef, buildID int64, q store.LogQuery) ([]store.LogLine, error)
	ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error)
}

// Answers answers approval gates; the daemon's trigger hub (server.Triggers) is one, so
// the UI's approvals are checked and audited exactly as the API's.
type Answers interface {
	Approve(ctx context.Context, ref store.PipelineRef, buildID int64, actor string, approve bool, comment string) error
}

// Changes wakes live pages when the store commits a change they show; the daemon's
// changefeed.Feed is one.
type Changes interface {
	Follow(match func(store.Change) bool) (wake <-chan struct{}, stop func())
}

// SignOuts keeps the sessions signed out before they expired, shared by every daemon on
// the store (the store is one), so a sign-out holds on every replica and after a restart.
type SignOuts interface {
	SignOut(ctx context.Context, nonce string, expires time.Time) error
	SignedOut(ctx context.Context, nonce string) (bool, error)
}

// Options are the UI's collaborators.
type Options struct {
	// Users are the identities that may sign in: the API's, with the same roles.
	Users   []config.APIUser
	Reads   Reads
	Answers Answers
	Changes Changes
	// SignOuts records sign-outs; the store is one.
	SignOuts SignOuts
	// Key signs session cookies and CSRF tokens (LoadOrCreateKey); KeySize bytes.
	Key []byte
	// SessionTTL is how long a sign-in lasts; 0: DefaultSessionTTL.
	SessionTTL time.Duration
	// Done, closed when the daemon stops, ends the live streams.
	Done <-chan struct{}
	Log  *logrus.Entry
	// Now replaces time.Now (tests).
	Now func() time.Time
}

// UI serves the web console.
type UI struct {
	users    []config.APIUser
	reads    Reads
	answers  Answers
	changes  Changes
	sessions *sessions
	done     <-chan struct{}
	log      *logrus.Entry
	now      func() time.Time
	labels   catalog
	pages    map[string]*template.Template
	static   http.Handler
}

// New checks the options and parses the embedded templates.
func New(o Options) (*UI, error) {
	if len(o.Key) != KeySize {
		return nil, fmt.Errorf("web UI: the session key must be %d bytes, not %d", KeySize, len(o.Key))
	}
	if o.Reads == nil || o.Answers == nil || o.Changes == nil || o.SignOuts == nil || o.Log == nil {
		return nil, errors.New("web UI: Reads, Answers, Changes, SignOuts and Log are required")
	}
	u := &UI{users: o.Users, reads: o.Reads, answers: o.Answers, changes: o.Changes, done: o.Done, log: o.Log, now: o.Now}
	if u.now == nil {
		u.now = time.Now
	}
	ttl := o.SessionTTL
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	u.sessions = newSessions(o.Key, ttl, u.now, o.SignOuts)
	var err error
	if u.labels, err = loadCatalog(files); err != nil {
		return nil, err
	}
	if u.pages, err = parsePages(files); err != nil {
		return nil, err
	}
	staticFS, err := fs.Sub(files, "static")
	if err != nil {
		return nil, err
	}
	u.static = http.StripPrefix(Prefix+"static/", http.FileServerFS(staticFS))
	return u, nil
}

// Handler routes the UI's requests; mount it at Prefix.
func (u *UI) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /ui/static/", u.static)
	mux.HandleFunc("GET /ui/login", u.loginForm)
	mux.HandleFunc("POST /ui/login", u.login)
	mux.HandleFunc("GET /ui/lang/{lang}", u.setLanguage)
	mux.Handle("POST /ui/logout", u.action(u.logout))
	mux.Handle("GET /ui/{$}", u.page(u.pipelines))
	mux.Handle("GET /ui/p/{repository}/{pipeline}", u.page(u.runs))
	mux.Handle("GET /ui/p/{repository}/{pipeline}/runs/{id}", u.page(u.run))
	mux.Handle("GET /ui/p/{repository}/{pipeline}/runs/{id}/live", u.page(u.live))
	mux.Handle("POST /ui/p/{repository}/{pipeline}/runs/{id}/approve", u.action(u.approve))
	mux.Handle("POST /ui/p/{repository}/{pipeline}/runs/{id}/reject", u.action(u.reject))
	mux.Handle("GET /ui/deployments", u.page(u.deployments))
	mux.Handle("GET /ui/drift", u.page(u.drift))
	mux.Handle("GET /ui/approvals", u.page(u.approvals))
	mux.Handle("GET /ui/audit", u.page(u.audit))
	return headers(mux)
}

// headers sets what every answer of the UI carries: nothing from other origins runs or
// frames it, and no page is cached, since pages show one identity's view.
func headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("X-Frame-Options", "DENY")
		if !strings.HasPrefix(r.URL.Path, Prefix+"static/") {
			hd.Set("Cache-Control", "no-store")
		}
		h.ServeHTTP(w, r)
	})
}

// viewer is the signed-in identity a page is made for.
type viewer struct {
	config.APIUser
	sess session
	lang string
}

// keep shows only the pipelines of repositories the viewer may see.
func (v viewer) keep() records.Keep {
	return func(ref store.PipelineRef) bool { return v.MayAccess(ref.Repository) }
}

// pageHandler serves a GET for a signed-in identity.
type pageHandler func(w http.ResponseWriter, r *http.Request, v viewer)

// page lets only signed-in identities through; others go to the sign-in form (or get
// 401, for the live stream, which a browser does not follow to a form).
func (u *UI) page(h pageHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, ok := u.signedIn(r)
		if !ok {
			if strings.HasSuffix(r.URL.Path, "/live") {
				http.Error(w, "sign in first", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, Prefix+"login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		h(w, r, v)
	})
}

// action serves a POST for a signed-in identity whose form carries the session's CSRF
// token: 401 without a session, 403 without the token.
func (u *UI) action(h pageHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, ok := u.signedIn(r)
		if !ok {
			u.fail(w, r, viewer{lang: language(r)}, http.StatusUnauthorized, "err_signin")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		if err := r.ParseForm(); err != nil || !u.sessions.checkCSRF(v.sess, r.PostForm.Get("csrf")) {
			u.log.WithFields(logrus.Fields{"user": v.Name, "path": r.URL.Path}).Warn("web UI: POST without a valid CSRF token refused")
			u.fail(w, r, v, http.StatusForbidden, "err_csrf")
			return
		}
		h(w, r, v)
	})
}

func (u *UI) signedIn(r *http.Request) (viewer, bool) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return viewer{}, false
	}
	user, sess, err := u.sessions.check(r.Context(), ck.Value, u.users)
	if err != nil {
		if !errors.Is(err, ErrBadSession) {
			// Fail closed: a session whose sign-out cannot be checked is not let in.
			u.log.WithError(err).Warn("web UI: checking a session")
		}
		return viewer{}, false
	}
	return viewer{APIUser: user, sess: sess, lang: language(r)}, true
}

// pageData is what every template gets.
type pageData struct {
	Lang    string
	User    string
	Roles   string
	CSRF    string
	Nav     string // the menu entry to highlight
	Title   string
	Path    string // this page, for the language switch to come back to
	Data    any
	labels  catalog
	Message string
}

// T is the label of key in the page's language.
func (p pageData) T(key string) string { return p.labels.label(p.Lang, key) }

func (u *UI) render(w http.ResponseWriter, r *http.Request, v viewer, status int, name, nav, title string, data any) {
	t, ok := u.pages[name]
	if !ok {
		u.log.WithField("page", name).Error("web UI: no such template")
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	pd := pageData{Lang: v.lang, User: v.Name, Nav: nav, Title: title, Path: r.URL.RequestURI(), Data: data, labels: u.labels}
	if v.Name != "" {
		pd.CSRF = u.sessions.csrf(v.sess)
		roles := make([]string, len(v.Roles))
		for i, role := range v.Roles {
			roles[i] = string(role)
		}
		pd.Roles = strings.Join(roles, ", ")
	}
	if pd.Lang == "" {
		pd.Lang = language(r)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", pd); err != nil {
		u.log.WithError(err).WithField("page", name).Error("web UI: render")
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail shows an error page with a label of the catalog.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, v viewer, status int, key string) {
	if v.lang == "" {
		v.lang = language(r)
	}
	u.render(w, r, v, status, "error", "", u.labels.label(v.lang, key), errorView{Status: status, Key: key})
}

type errorView struct {
	Status int
	Key    string
	Detail string
}

// internal logs err and answers 500 without its details.
func (u *UI) internal(w http.ResponseWriter, r *http.Request, v viewer, err error) {
	u.log.WithError(err).WithField("path", r.URL.Path).Error("web UI")
	u.fail(w, r, v, http.StatusInternalServerError, "err_internal")
}

func (u *UI) setLanguage(w http.ResponseWriter, r *http.Request) {
	lang := r.PathValue("lang")
	if !known(lang) {
		http.NotFound(w, r)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: langCookie, Value: lang, Path: Prefix, MaxAge: 365 * 24 * 3600,
		HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, localPath(r.URL.Query().Get("back")), http.StatusSeeOther)
}

// localPath keeps a redirect target inside the UI: anything else (another host, a
// scheme-relative //host) goes to the start page.
func localPath(p string) string {
	if !strings.HasPrefix(p, Prefix) || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n") {
		return Prefix
	}
	return p
}

// secure says whether the browser reached the UI over HTTPS: directly, or through a proxy
// that terminated TLS and says so in X-Forwarded-Proto (the daemon itself speaks plain
// HTTP). Cookies are then marked Secure. Trusting the header is safe here: a forged one
// can only keep the sender's own cookie off plain HTTP.
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}
