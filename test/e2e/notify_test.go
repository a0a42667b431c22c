package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/notify"
	"github.com/slipwayhq/slipway/test/testenv"
)

// notifyReceiver is a webhook and Slack endpoint on loopback that can go down and come back
// on the same port. It checks every webhook's signature and timestamp as docs/notifications.md
// tells receivers to, and counts what arrives by message id.
type notifyReceiver struct {
	t    *testing.T
	key  []byte
	addr string

	mu       sync.Mutex
	srv      *http.Server
	hooks    map[string]int // message id → deliveries
	bodies   map[string][]byte
	slack    []string
	badSigns []string
}

func newNotifyReceiver(t *testing.T, key []byte) *notifyReceiver {
	r := &notifyReceiver{t: t, key: key, hooks: map[string]int{}, bodies: map[string][]byte{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(r.down)
	return r
}

func (r *notifyReceiver) serve(ln net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hook", r.hook)
	mux.HandleFunc("POST /slack/T000/B000/secretpath", r.slackHook)
	r.mu.Lock()
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	srv := r.srv
	r.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// down stops answering: connections to the port are refused.
func (r *notifyReceiver) down() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
}

// up listens on the same port again.
func (r *notifyReceiver) up() {
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", r.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		r.t.Fatalf("listen again on %s: %v", r.addr, err)
	}
	r.serve(ln)
}

func (r *notifyReceiver) hook(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	ts, sig := req.Header.Get("X-Slipway-Timestamp"), req.Header.Get("X-Slipway-Signature-256")
	mac := hmac.New(sha256.New, r.key)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	secs, err := strconv.ParseInt(ts, 10, 64)
	age := time.Since(time.Unix(secs, 0))
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || !hmac.Equal([]byte(sig), []byte(want)) || age > 5*time.Minute || age < -5*time.Minute {
		r.badSigns = append(r.badSigns, fmt.Sprintf("timestamp %q signature %q", ts, sig))
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var m struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(body, &m)
	if m.ID == "" || m.ID != req.Header.Get("X-Slipway-Delivery") {
		r.badSigns = append(r.badSigns, "message id "+m.ID+" header "+req.Header.Get("X-Slipway-Delivery"))
	}
	r.hooks[m.ID]++
	r.bodies[m.ID] = body
}

func (r *notifyReceiver) slackHook(w http.ResponseWriter, req *http.Request) {
	var m struct {
		Text string `json:"text"`
	}
	if err := json.NewDecoder(req.Body).Decode(&m); err != nil || m.Text == "" {
		http.Error(w, "no text", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.slack = append(r.slack, m.Text)
}

type hookCounts struct {
	hooks  map[string]int
	bodies map[string][]byte
	slack  []string
	bad    []string
}

func (r *notifyReceiver) counts() hookCounts {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := hookCounts{hooks: map[string]int{}, bodies: map[string][]byte{}, slack: append([]string(nil), r.slack...), bad: append([]string(nil), r.badSigns...)}
	for k, v := range r.hooks {
		c.hooks[k] = v
		c.bodies[k] = r.bodies[k]
	}
	return c
}

// notifyPipeline is a one-task script pipeline that echoes a secret, plainly and as an
// output, and records a version output.
const notifyPipeline = `name: notified
secrets:
  - {name: NOTIFY_TOKEN, file: %s}
stages:
  - name: build
    tasks:
      - name: build
        type: script
        executor: local
        outputs: [VERSION, ECHO]
        secretEnv: {TOKEN: NOTIFY_TOKEN}
        script: |
          echo "token is $TOKEN"
          echo "VERSION=1.0.$BUILD_ID" >> "$SLIPWAY_OUTPUT"
          echo "ECHO=token $TOKEN here" >> "$SLIPWAY_OUTPUT"
`

// TestNotificationsMailWebhookSlack: every finished run reaches Mailpit (over STARTTLS
// with AUTH) as one mail with its outputs, a signed webhook and a Slack message; with the
// receiver down for 30 s and the daemon restarted meanwhile, the deliveries arrive once it
// is back, none lost and none twice; the secret a task echoes shows in no message.
func TestNotificationsMailWebhookSlack(t *testing.T) {
	env := testenv.Get(t)
	mailpit := env.Mailpit(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	repo, repoName, cfg := scriptConfig(t, env)
	dir := filepath.Dir(cfg)
	const secret = "n0tify-S3cret-value"
	key := []byte("webhook-signing-key")
	recv := newNotifyReceiver(t, key)
	rcpt := fmt.Sprintf("ops-%d@example.com", time.Now().UnixNano())
	for name, content := range map[string]string{
		"token": secret, "hook.key": string(key), "slack.url": "http://" + recv.addr + "/slack/T000/B000/secretpath",
		"smtp-user": env.SMTPUser, "smtp-password": env.SMTPPassword,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	appendConfig(t, cfg, fmt.Sprintf(`externalURL: http://slipway.test
notifications:
  retry: {initialDelay: 500ms, maxDelay: 2s, maxAttempts: 1000}
  targets:
    - {name: hook, type: webhook, url: "http://%s/hook", secretFile: hook.key, pipelines: ["%s/*"]}
    - {name: chat, type: slack, urlFile: slack.url, events: [run.succeeded, run.failed]}
    - name: mail
      type: email
      smtp: {address: "%s", usernameFile: smtp-user, passwordFile: smtp-password, caFile: %s}
      from: slipway@example.com
      to: [%s]
`, recv.addr, repoName, env.SMTPAddr, env.SMTPCA, rcpt))

	d := startServe(t, cfg)
	repo.commit("first", map[string][]byte{".pipeline.yaml": []byte(fmt.Sprintf(notifyPipeline, filepath.Join(dir, "token")))})
	waitPipelineHistory(t, cfg, "notified", 90*time.Second, "run 1 succeeded", func(h []historyEntry) bool {
		return len(h) == 1 && h[0].Status == "succeeded"
	})
	waitFor(t, 30*time.Second, "run 1's webhook and Slack message", func() bool {
		c := recv.counts()
		return len(c.hooks) == 1 && len(c.slack) == 1
	})

	// The receiver goes down for 30 s; two runs finish meanwhile, and the daemon restarts.
	recv.down()
	downAt := time.Now()
	repo.commit("second", map[string][]byte{"a.txt": []byte("2")})
	waitPipelineHistory(t, cfg, "notified", 90*time.Second, "run 2 succeeded", func(h []historyEntry) bool {
		return len(h) == 2 && h[0].Status == "succeeded"
	})
	d.stop(t)
	d = startServe(t, cfg)
	repo.commit("third", map[string][]byte{"a.txt": []byte("3")})
	waitPipelineHistory(t, cfg, "notified", 90*time.Second, "run 3 succeeded", func(h []historyEntry) bool {
		return len(h) == 3 && h[0].Status == "succeeded"
	})
	if c := recv.counts(); len(c.hooks) != 1 || len(c.slack) != 1 {
		t.Fatalf("deliveries while the receiver was down: %d webhooks, %d Slack messages", len(c.hooks), len(c.slack))
	}
	time.Sleep(time.Until(downAt.Add(30 * time.Second)))
	recv.up()
	back := time.Now()
	waitFor(t, 30*time.Second, "the three runs' webhooks and Slack messages", func() bool {
		c := recv.counts()
		return len(c.hooks) == 3 && len(c.slack) == 3
	})
	t.Logf("the held deliveries arrived %s after the receiver came back", time.Since(back).Round(100*time.Millisecond))
	time.Sleep(3 * time.Second) // time for a duplicate to show
	d.stop(t)

	c := recv.counts()
	if len(c.bad) > 0 {
		t.Errorf("webhooks that failed verification: %q", c.bad)
	}
	if len(c.hooks) != 3 || len(c.slack) != 3 {
		t.Errorf("%d webhooks, %d Slack messages; want 3 each", len(c.hooks), len(c.slack))
	}
	leaks := []string{secret, base64.StdEncoding.EncodeToString([]byte(secret))}
	seen := map[int64]bool{}
	for id, n := range c.hooks {
		if n != 1 {
			t.Errorf("message %s delivered %d times", id, n)
		}
		var m struct {
			Event      string `json:"event"`
			Repository string `json:"repository"`
			Pipeline   string `json:"pipeline"`
			BuildID    int64  `json:"buildID"`
			Run        struct {
				Status, Commit, URL string
				DurationSeconds     float64
				Tasks               []struct {
					Name    string
					Outputs map[string]string
				}
			} `json:"run"`
		}
		if err := json.Unmarshal(c.bodies[id], &m); err != nil {
			t.Fatal(err)
		}
		seen[m.BuildID] = true
		wantURL := fmt.Sprintf("http://slipway.test/ui/p/%s/notified/runs/%d", repoName, m.BuildID)
		if m.Event != "run.succeeded" || m.Repository != repoName || m.Run.Status != "succeeded" || len(m.Run.Commit) != 40 ||
			m.Run.URL != wantURL || m.Run.DurationSeconds <= 0 || len(m.Run.Tasks) != 1 ||
			m.Run.Tasks[0].Outputs["VERSION"] != fmt.Sprintf("1.0.%d", m.BuildID) || m.Run.Tasks[0].Outputs["ECHO"] != "token *** here" {
			t.Errorf("webhook message:\n%s", c.bodies[id])
		}
		checkNoLeak(t, "webhook "+id, string(c.bodies[id]), leaks)
	}
	if !seen[1] || !seen[2] || !seen[3] {
		t.Errorf("webhooks for runs %v, want 1, 2 and 3", seen)
	}
	for i, text := range c.slack {
		if !strings.Contains(text, "succeeded") || !strings.Contains(text, "tasks.build.ECHO=token *** here") {
			t.Errorf("Slack message %d:\n%s", i, text)
		}
		checkNoLeak(t, fmt.Sprintf("Slack message %d", i), text, leaks)
	}

	// One mail per finished run, with its outputs, sent over STARTTLS with AUTH (Mailpit
	// refuses anything else).
	mails, err := mailpit.Search(ctx, "to:"+rcpt)
	if err != nil {
		t.Fatal(err)
	}
	if len(mails) != 3 {
		t.Fatalf("%d mails to %s, want 3 (one per run): %+v", len(mails), rcpt, mails)
	}
	got := map[string]bool{}
	for _, s := range mails {
		m, err := mailpit.Message(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := mailpit.Raw(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		got[m.Subject] = true
		var id int64
		if _, err := fmt.Sscanf(m.Subject[strings.Index(m.Subject, "#"):], "#%d", &id); err != nil {
			t.Fatalf("subject %q", m.Subject)
		}
		for _, want := range []string{"Status:    succeeded", fmt.Sprintf("BUILD_ID:  %d", id), fmt.Sprintf("tasks.build.VERSION=1.0.%d", id),
			"tasks.build.ECHO=token *** here", fmt.Sprintf("Run:       http://slipway.test/ui/p/%s/notified/runs/%d", repoName, id), "Duration:"} {
			if !strings.Contains(m.Text, want) {
				t.Errorf("mail %q lacks %q:\n%s", m.Subject, want, m.Text)
			}
		}
		if m.From.Address != "slipway@example.com" {
			t.Errorf("mail from %q", m.From.Address)
		}
		checkNoLeak(t, "mail "+m.Subject, raw, leaks)
	}
	for id := 1; id <= 3; id++ {
		if want := fmt.Sprintf("[slipway] %s/notified #%d succeeded", repoName, id); !got[want] {
			t.Errorf("no mail %q among %v", want, got)
		}
	}
}

func checkNoLeak(t *testing.T, what, text string, leaks []string) {
	t.Helper()
	for _, l := range leaks {
		if strings.Contains(text, l) {
			t.Errorf("%s shows the secret (%q):\n%s", what, l, text)
		}
	}
}

// TestMailpitRequiresStartTLSAndAuth: the environment's SMTP server refuses mail sent in the
// clear or without AUTH, so the notification test's mail proves Slipway used both; and
// Slipway's mail sender fails, without sending, on a wrong password or an untrusted
// certificate.
func TestMailpitRequiresStartTLSAndAuth(t *testing.T) {
	env := testenv.Get(t)
	env.Mailpit(t)
	host, _, _ := net.SplitHostPort(env.SMTPAddr)
	try := func(starttls bool) error {
		c, err := smtp.Dial(env.SMTPAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if starttls {
			pem, err := os.ReadFile(env.SMTPCA)
			if err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			if err := c.StartTLS(&tls.Config{ServerName: host, RootCAs: pool}); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Mail("probe@example.com"); err != nil {
			return err
		}
		return c.Rcpt("probe@example.com")
	}
	if err := try(false); err == nil {
		t.Error("Mailpit took mail without STARTTLS")
	}
	if err := try(true); err == nil {
		t.Error("Mailpit took mail without AUTH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pem, err := os.ReadFile(env.SMTPCA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	msg := notify.Message{ID: "slipway-event-probe", Event: "run.succeeded", Repository: "r", Pipeline: "p", BuildID: 1, Time: time.Now(),
		Run: &notify.Run{Status: "succeeded", Trigger: "push"}}
	rcpt := fmt.Sprintf("probe-%d@example.com", time.Now().UnixNano())
	for name, m := range map[string]*notify.Mail{
		"wrong password":        {Address: env.SMTPAddr, Username: env.SMTPUser, Password: "wrong", RootCAs: pool},
		"untrusted certificate": {Address: env.SMTPAddr, Username: env.SMTPUser, Password: env.SMTPPassword, RootCAs: x509.NewCertPool()},
	} {
		m.From, m.To = "slipway@example.com", []string{rcpt}
		want := map[string]string{"wrong password": "smtp AUTH", "untrusted certificate": "smtp STARTTLS"}[name]
		if err := m.Send(ctx, msg, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error at %s", name, err, want)
		}
	}
	good := &notify.Mail{Address: env.SMTPAddr, Username: env.SMTPUser, Password: env.SMTPPassword, RootCAs: pool, From: "slipway@example.com", To: []string{rcpt}}
	if err := good.Send(ctx, msg, nil); err != nil {
		t.Fatalf("with STARTTLS and AUTH: %v", err)
	}
	mails, err := env.Mailpit(t).Search(ctx, "to:"+rcpt)
	if err != nil || len(mails) != 1 || mails[0].Subject != "[slipway] r/p #1 succeeded" {
		t.Fatalf("mails to %s: %+v %v", rcpt, mails, err)
	}
}
