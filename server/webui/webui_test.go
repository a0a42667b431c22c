package webui

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/internal/changefeed"
	"github.com/slipwayhq/slipway/internal/sse/ssetest"
	"github.com/slipwayhq/slipway/policy"
	"github.com/slipwayhq/slipway/reconciler/trigger"
	"github.com/slipwayhq/slipway/store"
)

// answersRecorder stands in for the trigger hub in these unit tests: it records answers.
type answersRecorder struct {
	mu    sync.Mutex
	calls []string
	err   error
}

func (a *answersRecorder) Approve(_ context.Context, ref store.PipelineRef, id int64, actor string, approve bool, comment string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, fmt.Sprintf("%s #%d %s %v %q", ref.Name, id, actor, approve, comment))
	return a.err
}

type fixture struct {
	t       *testing.T
	st      *store.DB
	ui      *UI
	h       http.Handler
	answers *answersRecorder
	now     time.Time
	users   []config.APIUser
}

func user(name, token string, roles []config.Role, repos ...string) config.APIUser {
	return config.APIUser{Name: name, Roles: roles, Repositories: repos, TokenHash: sha256.Sum256([]byte(token))}
}

func newFixture(t *testing.T, users ...config.APIUser) *fixture {
	t.Helper()
	ctx := context.Background()
	feed := changefeed.New()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "s.db"), store.WithChangeSink(feed))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{t: t, st: st, answers: &answersRecorder{}, now: time.Now(), users: users}
	if len(users) == 0 {
		f.users = []config.APIUser{
			user("vera", "viewer-token", []config.Role{config.RoleViewer}),
			user("alice", "approver-token", []config.Role{config.RoleApprover}),
			user("tess", "team-token", []config.Role{config.RoleApprover}, "team-*"),
		}
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	log := logrus.New()
	log.SetOutput(io.Discard)
	f.ui, err = New(Options{Users: f.users, Reads: st, Answers: f.answers, Changes: feed, SignOuts: st, Key: make([]byte, KeySize),
		Done: done, Log: logrus.NewEntry(log), Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	f.h = f.ui.Handler()
	return f
}

func (f *fixture) do(method, target string, form url.Values, cookies []*http.Cookie, header ...string) *httptest.ResponseRecorder {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, target, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn goes through the form and returns the session cookie and the page's CSRF token.
func (f *fixture) signIn(token string) (*http.Cookie, string) {
	f.t.Helper()
	form := f.do("GET", "/ui/login", nil, nil)
	m := csrfField.FindStringSubmatch(form.Body.String())
	if m == nil {
		f.t.Fatalf("login form without a CSRF field:\n%s", form.Body)
	}
	rec := f.do("POST", "/ui/login", url.Values{"csrf": {m[1]}, "token": {token}, "next": {"/ui/"}}, form.Result().Cookies())
	if rec.Code != http.StatusSeeOther {
		f.t.Fatalf("sign-in: %d\n%s", rec.Code, rec.Body)
	}
	var sess *http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == sessionCookie {
			sess = c
		}
	}
	if sess == nil {
		f.t.Fatal("no session cookie after sign-in")
	}
	page := f.do("GET", "/ui/", nil, []*http.Cookie{sess})
	m = csrfField.FindStringSubmatch(page.Body.String())
	if page.Code != http.StatusOK || m == nil {
		f.t.Fatalf("start page after sign-in: %d\n%s", page.Code, page.Body)
	}
	return sess, m[1]
}

func (f *fixture) run(ref store.PipelineRef, commit string) store.Run {
	f.t.Helper()
	r, err := f.st.CreateRun(context.Background(), store.NewRun{Pipeline: ref, Commit: commit, Trigger: store.TriggerPush, Holder: "h"})
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func TestSignInSetsAStrictHttpOnlySessionAndSignOutEndsIt(t *testing.T) {
	f := newFixture(t)
	if rec := f.do("GET", "/ui/", nil, nil); rec.Code != http.StatusSeeOther || !strings.HasPrefix(rec.Header().Get("Location"), "/ui/login?next=") {
		t.Fatalf("signed out start page: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	form := f.do("GET", "/ui/login", nil, nil)
	token := csrfField.FindStringSubmatch(form.Body.String())[1]
	loginCk := form.Result().Cookies()

	// A sign-in without the form's cookie (a third-party page posting) is refused.
	if rec := f.do("POST", "/ui/login", url.Values{"csrf": {token}, "token": {"viewer-token"}}, nil); rec.Code != http.StatusForbidden {
		t.Fatalf("sign-in without the login cookie: %d", rec.Code)
	}
	if rec := f.do("POST", "/ui/login", url.Values{"csrf": {"forged"}, "token": {"viewer-token"}}, loginCk); rec.Code != http.StatusForbidden {
		t.Fatalf("sign-in with a forged CSRF value: %d", rec.Code)
	}
	rec := f.do("POST", "/ui/login", url.Values{"csrf": {token}, "token": {"wrong"}}, loginCk)
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "No identity has that token") {
		t.Fatalf("wrong token: %d\n%s", rec.Code, rec.Body)
	}
	rec = f.do("POST", "/ui/login", url.Values{"csrf": {token}, "token": {"viewer-token"}, "next": {"//evil.example/x"}}, loginCk)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ui/" {
		t.Fatalf("sign-in: %d to %q (an off-site next must not be followed)", rec.Code, rec.Header().Get("Location"))
	}
	var sess *http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == sessionCookie {
			sess = c
		}
	}
	if sess == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.Secure || sess.MaxAge != int(DefaultSessionTTL.Seconds()) {
		t.Fatalf("session cookie %+v", sess)
	}
	if strings.Contains(sess.Value, "viewer-token") {
		t.Fatal("the token is in the cookie")
	}
	page := f.do("GET", "/ui/", nil, []*http.Cookie{sess})
	if page.Code != http.StatusOK || !strings.Contains(page.Body.String(), ">vera<") {
		t.Fatalf("start page: %d\n%s", page.Code, page.Body)
	}
	if csp := page.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("CSP %q", csp)
	}

	// Sign-out needs the CSRF token too, then the cookie no longer works even if kept.
	if rec := f.do("POST", "/ui/logout", url.Values{}, []*http.Cookie{sess}); rec.Code != http.StatusForbidden {
		t.Fatalf("sign-out without CSRF: %d", rec.Code)
	}
	csrf := csrfField.FindStringSubmatch(page.Body.String())[1]
	if rec := f.do("POST", "/ui/logout", url.Values{"csrf": {csrf}}, []*http.Cookie{sess}); rec.Code != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", rec.Code)
	}
	if rec := f.do("GET", "/ui/", nil, []*http.Cookie{sess}); rec.Code != http.StatusSeeOther {
		t.Fatalf("a signed-out cookie still works: %d", rec.Code)
	}
	// Another daemon on the same store and key (a replica, or this one restarted) refuses it too.
	other, err := New(Options{Users: f.users, Reads: f.st, Answers: f.answers, Changes: changefeed.New(), SignOuts: f.st,
		Key: make([]byte, KeySize), Done: make(chan struct{}), Log: f.ui.log, Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/ui/", nil)
	req.AddCookie(sess)
	rec = httptest.NewRecorder()
	other.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("a signed-out cookie works on another daemon sharing the store: %d", rec.Code)
	}
}

func TestCookiesSecureOverTLSOrBehindATLSProxy(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name   string
		tls    bool
		header string
		want   bool
	}{{"TLS", true, "", true}, {"proxy", false, "https", true}, {"plain", false, "", false}, {"plain proxy", false, "http", false}} {
		req := httptest.NewRequest("GET", "/ui/login", nil)
		if tc.tls {
			req.TLS = &tls.ConnectionState{}
		}
		if tc.header != "" {
			req.Header.Set("X-Forwarded-Proto", tc.header)
		}
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, req)
		cookies := rec.Result().Cookies()
		if len(cookies) == 0 {
			t.Fatalf("%s: no cookie", tc.name)
		}
		for _, c := range cookies {
			if c.Secure != tc.want {
				t.Errorf("%s: cookie %s Secure=%v", tc.name, c.Name, c.Secure)
			}
		}
	}
}

func TestSessionRefusedWhenForgedExpiredOrTokenRotated(t *testing.T) {
	f := newFixture(t)
	sess, _ := f.signIn("viewer-token")
	body, sig, _ := strings.Cut(sess.Value, ".")
	forged := *sess
	flip := "A"
	if strings.HasSuffix(body, "A") {
		flip = "B"
	}
	forged.Value = body[:len(body)-1] + flip + "." + sig
	if rec := f.do("GET", "/ui/", nil, []*http.Cookie{&forged}); rec.Code != http.StatusSeeOther {
		t.Fatalf("a tampered cookie was accepted: %d", rec.Code)
	}
	other := newFixture(t)
	other.ui.sessions.key = []byte(strings.Repeat("k", KeySize))
	value, _, err := other.ui.sessions.issue(f.users[0])
	if err != nil {
		t.Fatal(err)
	}
	if rec := f.do("GET", "/ui/", nil, []*http.Cookie{{Name: sessionCookie, Value: value}}); rec.Code != http.StatusSeeOther {
		t.Fatalf("a cookie signed with another key was accepted: %d", rec.Code)
	}
	// The identity's token is replaced: sessions signed in with the old one end.
	f.ui.users = []config.APIUser{user("vera", "new-token", []config.Role{config.RoleViewer})}
	if rec := f.do("GET", "/ui/", nil, []*http.Cookie{sess}); rec.Code != http.StatusSeeOther {
		t.Fatalf("a session of a rotated token was accepted: %d", rec.Code)
	}
	f.ui.users = f.users
	if rec := f.do("GET", "/ui/", nil, []*http.Cookie{sess}); rec.Code != http.StatusOK {
		t.Fatalf("positive check: %d", rec.Code)
	}
	f.now = f.now.Add(DefaultSessionTTL + time.Second)
	if rec := f.do("GET", "/ui/", nil, []*http.Cookie{sess}); rec.Code != http.StatusSeeOther {
		t.Fatalf("an expired session was accepted: %d", rec.Code)
	}
}

func TestApproveOnlyForApproversWithTheSessionsCSRFToken(t *testing.T) {
	f := newFixture(t)
	ref := store.PipelineRef{Repository: "shop", Name: "web"}
	run := f.run(ref, "c1")
	ctx := context.Background()
	if _, err := f.st.TransitionRun(ctx, ref, run.BuildID, store.RunQueued, store.RunRunning, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.TransitionRun(ctx, ref, run.BuildID, store.RunRunning, store.RunAwaitingApproval, "stage production waits"); err != nil {
		t.Fatal(err)
	}
	viewerCk, viewerCSRF := f.signIn("viewer-token")
	aliceCk, aliceCSRF := f.signIn("approver-token")
	action := "/ui/p/shop/web/runs/1/approve"

	for _, ck := range []*http.Cookie{viewerCk, aliceCk} {
		for _, path := range []string{"/ui/approvals", "/ui/p/shop/web/runs/1"} {
			page := f.do("GET", path, nil, []*http.Cookie{ck})
			has := strings.Contains(page.Body.String(), `action="`+action+`"`)
			if page.Code != http.StatusOK || has != (ck == aliceCk) {
				t.Fatalf("%s for %s: %d, approve form shown %v", path, ck.Value[:8], page.Code, has)
			}
		}
	}
	// The viewer's forged POST, even with its own valid CSRF token: 403, nothing answered.
	if rec := f.do("POST", action, url.Values{"csrf": {viewerCSRF}}, []*http.Cookie{viewerCk}); rec.Code != http.StatusForbidden {
		t.Fatalf("viewer's approve: %d", rec.Code)
	}
	// alice's POST with the viewer's token, or none: 403.
	for _, token := range []string{"", viewerCSRF} {
		if rec := f.do("POST", action, url.Values{"csrf": {token}}, []*http.Cookie{aliceCk}); rec.Code != http.StatusForbidden {
			t.Fatalf("approve with CSRF %q: %d", token, rec.Code)
		}
	}
	if rec := f.do("POST", action, url.Values{"csrf": {aliceCSRF}}, nil); rec.Code != http.StatusUnauthorized {
		t.Fatalf("approve without a session: %d", rec.Code)
	}
	if len(f.answers.calls) != 0 {
		t.Fatalf("refused posts answered: %v", f.answers.calls)
	}
	rec := f.do("POST", action, url.Values{"csrf": {aliceCSRF}, "comment": {"ship it"}}, []*http.Cookie{aliceCk})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ui/p/shop/web/runs/1" {
		t.Fatalf("alice's approve: %d %q\n%s", rec.Code, rec.Header().Get("Location"), rec.Body)
	}
	rec = f.do("POST", "/ui/p/shop/web/runs/1/reject", url.Values{"csrf": {aliceCSRF}}, []*http.Cookie{aliceCk})
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("alice's reject: %d", rec.Code)
	}
	if got := strings.Join(f.answers.calls, "; "); got != `web #1 alice true "ship it"; web #1 alice false ""` {
		t.Fatalf("answers %s", got)
	}
	// The hub's own refusal (not listed on the stage) is a 403 with its reason.
	f.answers.err = fmt.Errorf("%w: alice may not approve stage production", policy.ErrNotApprover)
	rec = f.do("POST", action, url.Values{"csrf": {aliceCSRF}}, []*http.Cookie{aliceCk})
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "alice may not approve stage production") {
		t.Fatalf("hub refusal: %d\n%s", rec.Code, rec.Body)
	}
	// Relayed to another process holding the run: an ended run is 409; an answer the
	// holder did not take in time is 202, saying it is recorded.
	f.answers.err = fmt.Errorf("request approve of run shop:web #1: %w failed", store.ErrRunEnded)
	if rec := f.do("POST", action, url.Values{"csrf": {aliceCSRF}}, []*http.Cookie{aliceCk}); rec.Code != http.StatusConflict {
		t.Fatalf("ended run: %d\n%s", rec.Code, rec.Body)
	}
	f.answers.err = &trigger.PendingError{Request: store.RunRequest{ID: 4, Pipeline: store.PipelineRef{Repository: "shop", Name: "web"},
		BuildID: 1, Holder: "node-2/41/ab", Kind: store.RequestApprove}, Wait: 5 * time.Second}
	rec = f.do("POST", action, url.Values{"csrf": {aliceCSRF}}, []*http.Cookie{aliceCk})
	if rec.Code != http.StatusAccepted || !strings.Contains(rec.Body.String(), "has not taken it yet") || !strings.Contains(rec.Body.String(), "request 4") {
		t.Fatalf("pending answer: %d\n%s", rec.Code, rec.Body)
	}
	f.answers.err = errors.New("boom")
	if rec := f.do("POST", action, url.Values{"csrf": {aliceCSRF}}, []*http.Cookie{aliceCk}); rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), "boom") {
		t.Fatalf("internal error: %d\n%s", rec.Code, rec.Body)
	}
}

func TestRepositoryRestrictedIdentitySeesOnlyItsRepositories(t *testing.T) {
	f := newFixture(t)
	f.run(store.PipelineRef{Repository: "team-a", Name: "mine"}, "c1")
	f.run(store.PipelineRef{Repository: "other", Name: "theirs"}, "c2")
	ck, _ := f.signIn("team-token")
	page := f.do("GET", "/ui/", nil, []*http.Cookie{ck}).Body.String()
	if !strings.Contains(page, `data-pipeline="mine"`) || strings.Contains(page, "theirs") {
		t.Fatalf("pipelines page:\n%s", page)
	}
	for _, path := range []string{"/ui/p/other/theirs", "/ui/p/other/theirs/runs/1", "/ui/p/other/theirs/runs/1/live"} {
		if rec := f.do("GET", path, nil, []*http.Cookie{ck}); rec.Code != http.StatusForbidden {
			t.Fatalf("%s: %d", path, rec.Code)
		}
	}
	if rec := f.do("GET", "/ui/p/team-a/mine/runs/1", nil, []*http.Cookie{ck}); rec.Code != http.StatusOK {
		t.Fatalf("own run: %d", rec.Code)
	}
}

func TestRunsPagesAndChineseLabels(t *testing.T) {
	f := newFixture(t)
	ref := store.PipelineRef{Repository: "shop", Name: "web"}
	for i := range 120 {
		f.run(ref, fmt.Sprintf("commit%03d", i))
	}
	ck, _ := f.signIn("viewer-token")
	rows := regexp.MustCompile(`href="/ui/p/shop/web/runs/(\d+)">#`)
	first := f.do("GET", "/ui/p/shop/web", nil, []*http.Cookie{ck}).Body.String()
	got := rows.FindAllStringSubmatch(first, -1)
	if len(got) != RunsPageSize || got[0][1] != "120" || got[RunsPageSize-1][1] != "71" {
		t.Fatalf("first page: %d runs (%v)", len(got), got)
	}
	next := regexp.MustCompile(`id="older" href="([^"]+)"`).FindStringSubmatch(first)
	if next == nil {
		t.Fatal("no link to older runs")
	}
	second := f.do("GET", strings.ReplaceAll(next[1], "&amp;", "&"), nil, []*http.Cookie{ck}).Body.String()
	if got := rows.FindAllStringSubmatch(second, -1); len(got) != RunsPageSize || got[0][1] != "70" {
		t.Fatalf("second page: %v", got)
	}
	if rec := f.do("GET", "/ui/p/shop/web?after=garbage", nil, []*http.Cookie{ck}); rec.Code != http.StatusBadRequest {
		t.Fatalf("bad page key: %d", rec.Code)
	}
	zh := f.do("GET", "/ui/p/shop/web", nil, []*http.Cookie{ck}, "Accept-Language", "zh-CN,zh;q=0.9,en;q=0.8").Body.String()
	for _, want := range []string{"运行记录", "运行编号", "触发方式", "代码推送", `lang="zh-CN"`} {
		if !strings.Contains(zh, want) {
			t.Fatalf("Chinese page lacks %q", want)
		}
	}
	// The switch overrides Accept-Language.
	sw := f.do("GET", "/ui/lang/en?back=/ui/p/shop/web", nil, nil)
	if sw.Code != http.StatusSeeOther || sw.Header().Get("Location") != "/ui/p/shop/web" {
		t.Fatalf("language switch: %d %q", sw.Code, sw.Header().Get("Location"))
	}
	en := f.do("GET", "/ui/p/shop/web", nil, append([]*http.Cookie{ck}, sw.Result().Cookies()...), "Accept-Language", "zh-CN").Body.String()
	if !strings.Contains(en, "Run records") || strings.Contains(en, "运行记录") {
		t.Fatal("the language switch did not override Accept-Language")
	}
	if rec := f.do("GET", "/ui/lang/en?back=//evil.example", nil, nil); rec.Header().Get("Location") != "/ui/" {
		t.Fatalf("off-site back: %q", rec.Header().Get("Location"))
	}
}

func TestLanguageFromAcceptLanguage(t *testing.T) {
	for header, want := range map[string]string{"": "en", "zh-CN,zh;q=0.9": "zh", "en-US,zh;q=0.5": "en", "fr, zh;q=0.1": "zh", "de": "en", "en;q=0.2, zh-TW;q=0.8": "zh"} {
		req := httptest.NewRequest("GET", "/ui/", nil)
		req.Header.Set("Accept-Language", header)
		if got := language(req); got != want {
			t.Errorf("Accept-Language %q: %s, want %s", header, got, want)
		}
	}
}

// sseEvent is one Server-Sent Event read off a stream.
type sseEvent struct{ name, id, data string }

// openLive opens the live stream at url as ck's holder, resuming after lastEventID when
// it is set; the stream closes when the test ends (before a server closed by t.Cleanup
// earlier).
func openLive(t *testing.T, url string, ck *http.Cookie, lastEventID string) <-chan sseEvent {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.AddCookie(ck)
	resp := ssetest.Open(t, req, lastEventID)
	events := make(chan sseEvent, 100)
	go readEvents(t, bufio.NewReader(resp.Body), events)
	return events
}

func readEvents(t *testing.T, r *bufio.Reader, events chan<- sseEvent) {
	var ev sseEvent
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			close(events)
			return
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			events <- ev
			ev = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			ev.name = line[len("event: "):]
		case strings.HasPrefix(line, "id: "):
			ev.id = line[len("id: "):]
		case strings.HasPrefix(line, "data: "):
			ev.data = line[len("data: "):]
		}
	}
}

func next(t *testing.T, events <-chan sseEvent, name string) sseEvent {
	t.Helper()
	return nextWith(t, events, name, "")
}

// nextWith returns the next event of that name whose data contains want.
func nextWith(t *testing.T, events <-chan sseEvent, name, want string) sseEvent {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("stream ended before a %q event", name)
			}
			if ev.name == name && strings.Contains(ev.data, want) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %q event within 5s", name)
		}
	}
}

// The live stream sends what the store holds, then each committed change as it happens
// (woken by the change feed, not by polling), and ends with the run.
func TestLiveStreamFollowsTheRunUntilItEnds(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ref := store.PipelineRef{Repository: "shop", Name: "web"}
	run := f.run(ref, "c1")
	if _, err := f.st.AddTask(ctx, ref, run.BuildID, store.NewTask{Stage: "build", Name: "image", Type: "build-image"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.TransitionRun(ctx, ref, run.BuildID, store.RunQueued, store.RunRunning, ""); err != nil {
		t.Fatal(err)
	}
	if err := f.st.AppendLogs(ctx, ref, run.BuildID, "image", []store.LogLine{{Text: "before", Stream: store.StreamStdout}}); err != nil {
		t.Fatal(err)
	}
	ck, _ := f.signIn("viewer-token")
	srv := httptest.NewServer(f.h)
	t.Cleanup(srv.Close)
	events := openLive(t, srv.URL+"/ui/p/shop/web/runs/1/live?after=0", ck, "")
	if ev := next(t, events, "tasks"); !strings.Contains(ev.data, `"name":"image","status":"pending"`) {
		t.Fatalf("tasks %s", ev.data)
	}
	first := next(t, events, "logs")
	if !strings.Contains(first.data, `"text":"before"`) || first.id == "" {
		t.Fatalf("logs %+v", first)
	}
	next(t, events, "run")
	if _, err := f.st.TransitionTask(ctx, ref, run.BuildID, "image", store.TaskPending, store.TaskRunning, ""); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, events, "tasks"); !strings.Contains(ev.data, `"status":"running","label":"running"`) {
		t.Fatalf("tasks %s", ev.data)
	}
	for i := range 3 {
		if err := f.st.AppendLogs(ctx, ref, run.BuildID, "image", []store.LogLine{{Text: fmt.Sprintf("line %d", i), Stream: store.StreamStdout}}); err != nil {
			t.Fatal(err)
		}
		if ev := next(t, events, "logs"); !strings.Contains(ev.data, fmt.Sprintf(`"text":"line %d"`, i)) || strings.Contains(ev.data, "before") {
			t.Fatalf("logs after line %d: %s", i, ev.data)
		}
	}
	if _, err := f.st.TransitionRun(ctx, ref, run.BuildID, store.RunRunning, store.RunSucceeded, ""); err != nil {
		t.Fatal(err)
	}
	if ev := nextWith(t, events, "run", `"status":"succeeded"`); !strings.Contains(ev.data, `"final":true`) {
		t.Fatalf("run %s", ev.data)
	}
	next(t, events, "end")
	if _, ok := <-events; ok {
		t.Fatal("the stream went on after end")
	}

	// A reconnect with Last-Event-ID resumes after it.
	events = openLive(t, srv.URL+"/ui/p/shop/web/runs/1/live", ck, first.id)
	if ev := next(t, events, "logs"); strings.Contains(ev.data, "before") || !strings.Contains(ev.data, "line 0") {
		t.Fatalf("resumed logs %s", ev.data)
	}
}

func TestPagesRender(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ref := store.PipelineRef{Repository: "shop", Name: "web"}
	run := f.run(ref, "0123456789abcdef")
	if _, err := f.st.AddTask(ctx, ref, run.BuildID, store.NewTask{Stage: "deploy", Name: "web-yaml", Type: "deploy-yaml"}); err != nil {
		t.Fatal(err)
	}
	objects := []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: prod}\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: reg/web@sha256:abc\n")
	if _, err := f.st.SaveRevision(ctx, store.NewRevision{Pipeline: ref, BuildID: run.BuildID, Task: "web-yaml", Cluster: "east", Namespace: "prod",
		Kind: store.DeployYAML, Objects: objects, Inventory: []store.InventoryEntry{{Version: "v1", Group: "apps", Kind: "Deployment", Namespace: "prod", Name: "web"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.RecordDriftEvent(ctx, store.NewDriftEvent{Pipeline: ref, BuildID: run.BuildID, Task: "web-yaml", Cluster: "east",
		Object: store.InventoryEntry{Version: "v1", Group: "apps", Kind: "Deployment", Namespace: "prod", Name: "web"}, Action: store.DriftReported,
		Patch: `[{"op":"replace","path":"/spec/replicas","value":1}]`, Manager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.RecordAudit(ctx, store.AuditEntry{Actor: "alice", Action: store.AuditSuspend, Pipeline: ref, Reason: "freeze"}); err != nil {
		t.Fatal(err)
	}
	ck, _ := f.signIn("viewer-token")
	for path, wants := range map[string][]string{
		"/ui/":                  {`data-pipeline="web"`, "#1", "0123456789ab", "drifted"},
		"/ui/deployments":       {"east/prod", "reg/web@sha256:abc", "#1"},
		"/ui/drift":             {"kubectl-edit", `&#34;path&#34;: &#34;/spec/replicas&#34;`, "drift reported"},
		"/ui/audit":             {"alice", "suspend", "freeze"},
		"/ui/approvals":         {"No run is waiting"},
		"/ui/p/shop/web/runs/1": {"web-yaml", "Stage · deploy", "data-live=", "Deployed by this run", "reg/web@sha256:abc"},
	} {
		rec := f.do("GET", path, nil, []*http.Cookie{ck})
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d\n%s", path, rec.Code, rec.Body)
		}
		for _, want := range wants {
			if !strings.Contains(rec.Body.String(), want) {
				t.Errorf("%s lacks %q", path, want)
			}
		}
	}
	if rec := f.do("GET", "/ui/p/shop/web/runs/9", nil, []*http.Cookie{ck}); rec.Code != http.StatusNotFound {
		t.Fatalf("unknown run: %d", rec.Code)
	}
	if rec := f.do("GET", "/ui/static/live.js", nil, nil); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "EventSource") {
		t.Fatalf("static: %d", rec.Code)
	}
}

func TestLoadOrCreateKeyKeepsTheKey(t *testing.T) {
	file := filepath.Join(t.TempDir(), "d", KeyFileName)
	a, err := LoadOrCreateKey(file)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreateKey(file)
	if err != nil || string(a) != string(b) || len(a) != KeySize {
		t.Fatalf("second load: %v, same %v", err, string(a) == string(b))
	}
}

// countingReads counts the store reads of the live stream.
type countingReads struct {
	Reads
	n atomic.Int64
}

func (c *countingReads) GetRun(ctx context.Context, ref store.PipelineRef, id int64) (store.Run, error) {
	c.n.Add(1)
	return c.Reads.GetRun(ctx, ref, id)
}

func (c *countingReads) ListTasks(ctx context.Context, ref store.PipelineRef, id int64) ([]store.Task, error) {
	c.n.Add(1)
	return c.Reads.ListTasks(ctx, ref, id)
}

func (c *countingReads) ReadLogs(ctx context.Context, ref store.PipelineRef, id int64, q store.LogQuery) ([]store.LogLine, error) {
	c.n.Add(1)
	return c.Reads.ReadLogs(ctx, ref, id, q)
}

// An open live stream of a run where nothing happens reads nothing: it waits for the
// change feed, it does not poll.
func TestIdleLiveStreamReadsNothing(t *testing.T) {
	f := newFixture(t)
	counted := &countingReads{Reads: f.st}
	f.ui.reads = counted
	ctx := context.Background()
	ref := store.PipelineRef{Repository: "shop", Name: "web"}
	run := f.run(ref, "c1")
	if _, err := f.st.TransitionRun(ctx, ref, run.BuildID, store.RunQueued, store.RunRunning, ""); err != nil {
		t.Fatal(err)
	}
	ck, _ := f.signIn("viewer-token")
	srv := httptest.NewServer(f.h)
	t.Cleanup(srv.Close)
	events := openLive(t, srv.URL+"/ui/p/shop/web/runs/1/live", ck, "")
	next(t, events, "run")
	before := counted.n.Load()
	time.Sleep(time.Second) // an idle window: a poller would read in it
	if idle := counted.n.Load() - before; idle != 0 {
		t.Fatalf("%d store reads while nothing changed", idle)
	}
	if err := f.st.AppendLogs(ctx, ref, run.BuildID, "", []store.LogLine{{Text: "now", Stream: store.StreamSystem}}); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, events, "logs"); !strings.Contains(ev.data, "now") || counted.n.Load() == before {
		t.Fatalf("after a change: %s, %d reads", ev.data, counted.n.Load()-before)
	}
}
