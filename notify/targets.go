package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"net/smtp"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/slipwayhq/slipway/config"
)

// Sender delivers one message to one target.
type Sender interface {
	Send(ctx context.Context, m Message, body []byte) error
}

// NewSender makes the sender of a configured target, reading its secret files now so a
// missing one stops the daemon at start, naming the file.
func NewSender(t config.NotificationTarget, client *http.Client, now func() time.Time) (Sender, error) {
	switch t.Type {
	case "webhook":
		key, err := config.ReadSecretFile(t.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("notification target %s: secretFile: %w", t.Name, err)
		}
		return &Webhook{URL: t.URL, Key: key, Client: client, Now: now}, nil
	case "slack":
		u, err := config.ReadSecretFile(t.URLFile)
		if err != nil {
			return nil, fmt.Errorf("notification target %s: urlFile: %w", t.Name, err)
		}
		if pu, err := url.Parse(string(u)); err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
			return nil, fmt.Errorf("notification target %s: urlFile %s does not hold an http(s) URL", t.Name, t.URLFile)
		}
		return &Slack{URL: string(u), Client: client}, nil
	case "email":
		m := &Mail{Address: t.SMTP.Address, From: t.From, To: t.To}
		if t.SMTP.UsernameFile != "" {
			user, err := config.ReadSecretFile(t.SMTP.UsernameFile)
			if err != nil {
				return nil, fmt.Errorf("notification target %s: smtp.usernameFile: %w", t.Name, err)
			}
			pass, err := config.ReadSecretFile(t.SMTP.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("notification target %s: smtp.passwordFile: %w", t.Name, err)
			}
			m.Username, m.Password = string(user), string(pass)
		}
		if t.SMTP.CAFile != "" {
			pem, err := os.ReadFile(t.SMTP.CAFile)
			if err != nil {
				return nil, fmt.Errorf("notification target %s: smtp.caFile: %w", t.Name, err)
			}
			m.RootCAs = x509.NewCertPool()
			if !m.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("notification target %s: smtp.caFile %s holds no PEM certificate", t.Name, t.SMTP.CAFile)
			}
		}
		return m, nil
	}
	return nil, fmt.Errorf("notification target %s: unknown type %q", t.Name, t.Type)
}

// Webhook POSTs the message as signed JSON.
type Webhook struct {
	URL    string
	Key    []byte
	Client *http.Client
	Now    func() time.Time
}

// Send implements Sender.
func (w *Webhook) Send(ctx context.Context, m Message, body []byte) error {
	ts := w.Now()
	return post(ctx, w.Client, w.URL, body, map[string]string{
		HeaderTimestamp: fmt.Sprint(ts.Unix()),
		HeaderSignature: Sign(w.Key, ts, body),
		HeaderEvent:     m.Event,
		HeaderDelivery:  m.ID,
	}, false)
}

// Slack POSTs the message's text to a Slack-compatible incoming webhook (Mattermost,
// Rocket.Chat and others take the same {"text": ...}).
type Slack struct {
	URL    string
	Client *http.Client
}

// Send implements Sender.
func (s *Slack) Send(ctx context.Context, m Message, _ []byte) error {
	text := "*" + slackEscape(m.Subject()) + "*\n```\n" + slackEscape(m.Text()) + "```"
	body, err := json.Marshal(map[string]string{"text": text})
	if err != nil {
		return err
	}
	return post(ctx, s.Client, s.URL, body, nil, true)
}

// slackEscape escapes what Slack's mrkdwn treats as markup.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "```", "'''").Replace(s)
}

// post sends body and wants a 2xx. secretURL: the URL is a credential and never appears in
// an error (net/http's errors quote it).
func post(ctx context.Context, client *http.Client, u string, body []byte, headers map[string]string, secretURL bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return errors.New("invalid target URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "slipway-notify")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if secretURL && errors.As(err, &ue) {
			return fmt.Errorf("POST to the target: %w", ue.Err)
		}
		return err
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("target answered %s: %s", resp.Status, strings.TrimSpace(string(snippet)))
	}
	return nil
}

// Mail sends the message over SMTP, always with STARTTLS (the password and the run's
// results never cross the network in the clear), with AUTH PLAIN when a user is set.
type Mail struct {
	Address            string // host:port
	Username, Password string
	RootCAs            *x509.CertPool // nil: the system's
	From               string
	To                 []string
}

// Send implements Sender.
func (ml *Mail) Send(ctx context.Context, m Message, _ []byte) error {
	host, _, err := net.SplitHostPort(ml.Address)
	if err != nil {
		return err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", ml.Address)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return fmt.Errorf("smtp greeting: %w", err)
	}
	defer c.Close()
	if err := c.Hello("slipway.localhost"); err != nil {
		return fmt.Errorf("smtp EHLO: %w", err)
	}
	if ok, _ := c.Extension("STARTTLS"); !ok {
		return fmt.Errorf("smtp server %s does not offer STARTTLS; Slipway sends mail only encrypted", ml.Address)
	}
	if err := c.StartTLS(&tls.Config{ServerName: host, RootCAs: ml.RootCAs, MinVersion: tls.VersionTLS12}); err != nil {
		return fmt.Errorf("smtp STARTTLS: %w", err)
	}
	if ml.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", ml.Username, ml.Password, host)); err != nil {
			return fmt.Errorf("smtp AUTH: %w", err)
		}
	}
	from, err := mail.ParseAddress(ml.From)
	if err != nil {
		return err
	}
	if err := c.Mail(from.Address); err != nil {
		return fmt.Errorf("smtp MAIL FROM: %w", err)
	}
	for _, to := range ml.To {
		a, err := mail.ParseAddress(to)
		if err != nil {
			return err
		}
		if err := c.Rcpt(a.Address); err != nil {
			return fmt.Errorf("smtp RCPT TO %s: %w", a.Address, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if _, err := w.Write(ml.compose(m, host)); err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	return c.Quit()
}

// compose writes the mail: headers (the subject Q-encoded, so no value can add a header)
// and the text body, quoted-printable.
func (ml *Mail) compose(m Message, host string) []byte {
	var b bytes.Buffer
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	hdr := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	hdr("From", ml.From)
	hdr("To", strings.Join(ml.To, ", "))
	hdr("Subject", mime.QEncoding.Encode("utf-8", strings.NewReplacer("\r", " ", "\n", " ").Replace(m.Subject())))
	hdr("Date", m.Time.Format(time.RFC1123Z))
	hdr("Message-ID", fmt.Sprintf("<%s.%s@%s>", m.ID, hex.EncodeToString(id), host))
	hdr("X-Slipway-Event", m.Event)
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", `text/plain; charset="utf-8"`)
	hdr("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	_, _ = qp.Write([]byte(strings.ReplaceAll(m.Text(), "\n", "\r\n")))
	_ = qp.Close()
	return b.Bytes()
}
