package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// howToGetMailpit is appended to failures to reach the environment's Mailpit.
const howToGetMailpit = "the environment's Mailpit is started by hack/env-up.sh (binary built by " +
	"`hack/build-tools.sh mailpit` into ~/.cache/slipway); an environment started before Mailpit was added " +
	"lacks it: `make env-down && make env-up`; its log is .slipway/env/logs/mailpit.log"

// Mailpit reads the mail the environment's SMTP server received, through its HTTP API.
type Mailpit struct {
	URL string
	hc  *http.Client
}

// MailSummary is one message of Mailpit's search results.
type MailSummary struct {
	ID      string `json:"ID"`
	Subject string `json:"Subject"`
	To      []struct {
		Address string `json:"Address"`
	} `json:"To"`
}

// Mail is one message in full.
type Mail struct {
	ID      string `json:"ID"`
	Subject string `json:"Subject"`
	Text    string `json:"Text"`
	From    struct {
		Address string `json:"Address"`
	} `json:"From"`
}

// Mailpit returns a client of the environment's Mailpit, failing the test with directions
// when the environment has none.
func (e *Env) Mailpit(t testing.TB) *Mailpit {
	t.Helper()
	if e.MailpitURL == "" || e.SMTPAddr == "" || e.SMTPUser == "" || e.SMTPPassword == "" || e.SMTPCA == "" {
		t.Fatalf("testenv: %s has no Mailpit (SLIPWAY_SMTP_ADDR, SLIPWAY_SMTP_USER, SLIPWAY_SMTP_PASSWORD, SLIPWAY_SMTP_CA, SLIPWAY_MAILPIT_URL); %s",
			envFile, howToGetMailpit)
	}
	return &Mailpit{URL: e.MailpitURL, hc: &http.Client{Timeout: 30 * time.Second}}
}

// Search returns the messages matching a Mailpit search query (such as to:x@example.com),
// newest first.
func (m *Mailpit) Search(ctx context.Context, query string) ([]MailSummary, error) {
	var out struct {
		Messages []MailSummary `json:"messages"`
	}
	err := m.get(ctx, "/api/v1/search?limit=500&query="+url.QueryEscape(query), &out)
	return out.Messages, err
}

// Message returns one message with its text body.
func (m *Mailpit) Message(ctx context.Context, id string) (Mail, error) {
	var out Mail
	err := m.get(ctx, "/api/v1/message/"+url.PathEscape(id), &out)
	return out, err
}

// Raw returns the message as it arrived, headers included.
func (m *Mailpit) Raw(ctx context.Context, id string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.URL+"/api/v1/message/"+url.PathEscape(id)+"/raw", nil)
	if err != nil {
		return "", err
	}
	resp, err := m.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("mailpit: %w; %s", err, howToGetMailpit)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func (m *Mailpit) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.URL+path, nil)
	if err != nil {
		return err
	}
	resp, err := m.hc.Do(req)
	if err != nil {
		return fmt.Errorf("mailpit: %w; %s", err, howToGetMailpit)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("mailpit GET %s: %s: %s", path, resp.Status, b)
	}
	return json.Unmarshal(b, out)
}
