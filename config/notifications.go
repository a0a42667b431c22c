package config

import (
	"net/mail"
	"net/url"
	"path"
	"slices"
	"time"

	"github.com/slipwayhq/slipway/pipeline/yamlstrict"
)

// The events a notification target may select (docs/notifications.md).
const (
	EventRunSucceeded        = "run.succeeded"
	EventRunFailed           = "run.failed"
	EventRunTimedOut         = "run.timed_out"
	EventRunCancelled        = "run.cancelled"
	EventRunSuperseded       = "run.superseded"
	EventRunApprovalTimedOut = "run.approval_timed_out"
	EventRunRolledBack       = "run.rolled_back"
	EventRunInterrupted      = "run.interrupted"
	EventApprovalNeeded      = "approval.needed"
	EventDriftDetected       = "drift.detected"
	EventDriftCorrected      = "drift.corrected"
)

// NotificationEvents lists every event, in the order the docs give them.
func NotificationEvents() []string {
	return []string{EventRunSucceeded, EventRunFailed, EventRunTimedOut, EventRunCancelled, EventRunSuperseded,
		EventRunApprovalTimedOut, EventRunInterrupted, EventRunRolledBack, EventApprovalNeeded, EventDriftDetected, EventDriftCorrected}
}

// Notifications says who is told about runs, approvals and drift, and how hard the daemon
// tries.
type Notifications struct {
	Targets []NotificationTarget `yaml:"targets,omitempty" doc:"Where notifications go: webhooks, Slack-compatible incoming webhooks, mail."`
	Retry   NotificationRetry    `yaml:"retry,omitempty" doc:"How failed deliveries are retried."`
}

// NotificationRetry is the backoff of failed deliveries: initialDelay, doubling up to
// maxDelay, for at most maxAttempts attempts.
type NotificationRetry struct {
	InitialDelay Duration `yaml:"initialDelay,omitempty" default:"5s" doc:"Wait after the first failed attempt; each further failure doubles it. Default: 5s."`
	MaxDelay     Duration `yaml:"maxDelay,omitempty" default:"10m" doc:"Longest wait between two attempts. Default: 10m."`
	MaxAttempts  int      `yaml:"maxAttempts,omitempty" default:"20" doc:"Attempts before a delivery is given up and recorded as failed. Default: 20."`
}

// NotificationTarget is one named place notifications go.
type NotificationTarget struct {
	Name      string   `yaml:"name" required:"true" doc:"DNS-1123 label naming the target in logs and the store."`
	Type      string   `yaml:"type" required:"true" enum:"webhook,slack,email" doc:"webhook (signed JSON), slack (incoming webhook) or email (SMTP with STARTTLS)."`
	Events    []string `yaml:"events,omitempty" doc:"Events sent to it (run.succeeded, run.failed, run.timed_out, run.cancelled, run.superseded, run.approval_timed_out, run.interrupted, run.rolled_back, approval.needed, drift.detected, drift.corrected). Default: all."`
	Pipelines []string `yaml:"pipelines,omitempty" doc:"REPOSITORY/PIPELINE patterns (* matches within a name, as in jack-2048/* or */deploy-*) whose events it gets. Default: all."`
	// webhook
	URL        string `yaml:"url,omitempty" doc:"webhook: the http(s) URL the JSON is POSTed to."`
	SecretFile string `yaml:"secretFile,omitempty" doc:"webhook: file holding the HMAC-SHA256 key that signs each body."`
	// slack
	URLFile string `yaml:"urlFile,omitempty" doc:"slack: file holding the incoming webhook URL (its path is the credential)."`
	// email
	SMTP *SMTP    `yaml:"smtp,omitempty" doc:"email: the SMTP server."`
	From string   `yaml:"from,omitempty" doc:"email: sender address."`
	To   []string `yaml:"to,omitempty" doc:"email: recipient addresses."`
}

// SMTP is a mail server reached with STARTTLS and, optionally, authentication.
type SMTP struct {
	Address      string `yaml:"address" required:"true" doc:"host:port of the SMTP server's submission port (usually 587)."`
	UsernameFile string `yaml:"usernameFile,omitempty" doc:"File holding the user name for AUTH PLAIN (with passwordFile)."`
	PasswordFile string `yaml:"passwordFile,omitempty" doc:"File holding the password."`
	CAFile       string `yaml:"caFile,omitempty" doc:"PEM file of the CA that signed the server's certificate. Default: the system's roots."`
}

// FieldHint explains that secrets are never written inline.
func (*NotificationTarget) FieldHint(key string) string {
	if key == "secret" || key == "webhookURL" {
		return inlineSecretHint("secret")
	}
	return inlineSecretHint(key)
}

// FieldHint explains that secrets are never written inline.
func (*SMTP) FieldHint(key string) string { return inlineSecretHint(key) }

// Wants reports whether the target takes the event of the pipeline REPOSITORY/NAME.
func (t *NotificationTarget) Wants(event, repository, pipeline string) bool {
	if len(t.Events) > 0 && !slices.Contains(t.Events, event) {
		return false
	}
	if len(t.Pipelines) == 0 {
		return true
	}
	for _, p := range t.Pipelines {
		if ok, _ := path.Match(p, repository+"/"+pipeline); ok {
			return true
		}
	}
	return false
}

// Backoff is how long to wait after a delivery's attempt-th failed attempt (1 = the first).
func (r NotificationRetry) Backoff(attempt int) time.Duration {
	d := r.InitialDelay.Duration
	for i := 1; i < attempt && d < r.MaxDelay.Duration; i++ {
		d *= 2
	}
	return min(d, r.MaxDelay.Duration)
}

func (c *Config) resolveNotifications(abs func(*string)) {
	for i := range c.Notifications.Targets {
		t := &c.Notifications.Targets[i]
		abs(&t.SecretFile)
		abs(&t.URLFile)
		if t.SMTP != nil {
			abs(&t.SMTP.UsernameFile)
			abs(&t.SMTP.PasswordFile)
			abs(&t.SMTP.CAFile)
		}
	}
}

// notifications checks each target has what its type needs and nothing another type's.
func (k checker) notifications() {
	n := k.c.Notifications
	if k.c.ExternalURL != "" {
		if u, err := url.Parse(k.c.ExternalURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			k.at("externalURL", "externalURL %q must be an http(s) URL without credentials, such as https://slipway.example.com", k.c.ExternalURL)
		}
	}
	r := n.Retry
	if r.InitialDelay.Duration < 100*time.Millisecond {
		k.at("notifications.retry.initialDelay", "initialDelay must be at least 100ms")
	}
	if r.MaxDelay.Duration < r.InitialDelay.Duration {
		k.at("notifications.retry.maxDelay", "maxDelay (%s) is shorter than initialDelay (%s)", r.MaxDelay.Duration, r.InitialDelay.Duration)
	}
	if r.MaxAttempts < 1 {
		k.at("notifications.retry.maxAttempts", "maxAttempts must be at least 1")
	}
	names := map[string]bool{}
	for i := range n.Targets {
		f := yamlstrict.Index("notifications.targets", i)
		t := &n.Targets[i]
		if k.label(f+".name", "notification target name", t.Name) {
			if names[t.Name] {
				k.at(f+".name", "notification target name %q is used twice", t.Name)
			}
			names[t.Name] = true
		}
		for j, e := range t.Events {
			if !slices.Contains(NotificationEvents(), e) {
				k.at(yamlstrict.Index(f+".events", j), "target %s: unknown event %q (events: %s)", t.Name, e, orNone(NotificationEvents()))
			}
		}
		for j, p := range t.Pipelines {
			if _, err := path.Match(p, ""); err != nil || p == "" || path.Dir(p) == "." {
				k.at(yamlstrict.Index(f+".pipelines", j), "target %s: pipeline pattern %q must be REPOSITORY/PIPELINE, each a name or a pattern with *, such as jack-2048/* or */deploy", t.Name, p)
			}
		}
		k.notificationTarget(f, t)
	}
}

func (k checker) notificationTarget(f string, t *NotificationTarget) {
	only := func(field, value, types string) {
		if value != "" {
			k.at(f+"."+field, "target %s: %s is for type %s, not %s", t.Name, field, types, t.Type)
		}
	}
	need := func(field, value, what string) {
		if value == "" {
			k.at(f, "target %s of type %s needs %s (%s)", t.Name, t.Type, field, what)
		}
	}
	switch t.Type {
	case "webhook":
		need("url", t.URL, "the http(s) URL to POST to")
		need("secretFile", t.SecretFile, "a file holding the signing key")
		only("urlFile", t.URLFile, "slack")
	case "slack":
		need("urlFile", t.URLFile, "a file holding the incoming webhook URL")
		if t.URL != "" {
			k.at(f+".url", "target %s: a Slack webhook URL is a credential: put it in a file and set urlFile instead of url", t.Name)
		}
		only("secretFile", t.SecretFile, "webhook")
	case "email":
		only("url", t.URL, "webhook")
		only("urlFile", t.URLFile, "slack")
		only("secretFile", t.SecretFile, "webhook")
		if t.SMTP == nil {
			k.at(f, "target %s of type email needs smtp (address, and usernameFile and passwordFile for AUTH)", t.Name)
		}
		if _, err := mail.ParseAddress(t.From); err != nil {
			k.at(f+".from", "target %s: from %q is not a mail address", t.Name, t.From)
		}
		if len(t.To) == 0 {
			k.at(f, "target %s of type email needs to (one or more recipients)", t.Name)
		}
		for j, a := range t.To {
			if _, err := mail.ParseAddress(a); err != nil {
				k.at(yamlstrict.Index(f+".to", j), "target %s: %q is not a mail address", t.Name, a)
			}
		}
	}
	if t.Type != "email" && (t.SMTP != nil || t.From != "" || len(t.To) > 0) {
		k.at(f, "target %s: smtp, from and to are for type email, not %s", t.Name, t.Type)
	}
	if t.URL != "" {
		if u, err := url.Parse(t.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			k.at(f+".url", "target %s: url %q must be an http(s) URL", t.Name, t.URL)
		} else if _, has := u.User.Password(); has {
			k.at(f+".url", "target %s: url contains a password: secrets are never written in slipway.yaml; the body is signed with secretFile's key instead", t.Name)
		}
	}
	if s := t.SMTP; s != nil {
		if host, port, err := splitHostPort(s.Address); err != nil || host == "" || port == "" {
			k.at(f+".smtp.address", "target %s: smtp address %q must be host:port, such as smtp.example.com:587", t.Name, s.Address)
		}
		if (s.UsernameFile == "") != (s.PasswordFile == "") {
			k.at(f+".smtp", "target %s: smtp needs both usernameFile and passwordFile, or neither", t.Name)
		}
	}
}
