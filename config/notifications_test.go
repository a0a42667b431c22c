package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

const notifyBase = "dataDir: /d\n"

func TestNotificationsParse(t *testing.T) {
	c, err := Parse("slipway.yaml", []byte(notifyBase+`externalURL: https://slipway.example.com
notifications:
  retry: {initialDelay: 1s, maxDelay: 8s, maxAttempts: 5}
  targets:
    - {name: hook, type: webhook, url: "https://hooks.example.com/x", secretFile: hook.key, events: [run.failed], pipelines: ["jack-2048/*"]}
    - {name: chat, type: slack, urlFile: slack.url}
    - name: mail
      type: email
      smtp: {address: "smtp.example.com:587", usernameFile: u, passwordFile: p, caFile: ca.pem}
      from: slipway@example.com
      to: [ops@example.com]
`))
	if err != nil {
		t.Fatal(err)
	}
	c.resolve("/etc/slipway")
	n := c.Notifications
	if len(n.Targets) != 3 || n.Targets[0].SecretFile != "/etc/slipway/hook.key" || n.Targets[1].URLFile != "/etc/slipway/slack.url" ||
		n.Targets[2].SMTP.PasswordFile != "/etc/slipway/p" || n.Targets[2].SMTP.CAFile != "/etc/slipway/ca.pem" {
		t.Fatalf("targets not parsed or resolved: %+v", n.Targets)
	}
	hook := n.Targets[0]
	for _, c := range []struct {
		event, repo, pipeline string
		want                  bool
	}{
		{"run.failed", "jack-2048", "web", true},
		{"run.succeeded", "jack-2048", "web", false},
		{"run.failed", "other", "web", false},
	} {
		if got := hook.Wants(c.event, c.repo, c.pipeline); got != c.want {
			t.Errorf("Wants(%s, %s/%s) = %v", c.event, c.repo, c.pipeline, got)
		}
	}
	if !n.Targets[1].Wants("drift.corrected", "any", "thing") {
		t.Error("a target without events or pipelines takes everything")
	}
}

func TestNotificationRetryDefaultsAndBackoff(t *testing.T) {
	c, err := Parse("slipway.yaml", []byte(notifyBase))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Notifications.Retry
	if r.InitialDelay.Duration != 5*time.Second || r.MaxDelay.Duration != 10*time.Minute || r.MaxAttempts != 20 {
		t.Fatalf("defaults: %+v", r)
	}
	r = NotificationRetry{InitialDelay: Duration{time.Second}, MaxDelay: Duration{10 * time.Second}, MaxAttempts: 9}
	var got []time.Duration
	for a := 1; a <= 6; a++ {
		got = append(got, r.Backoff(a))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("backoff %v, want %v", got, want)
		}
	}
}

func TestNotificationsErrorsNameFileLineField(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"notifications:\n  targets:\n    - {name: hook, type: webhook, url: 'https://h/x'}\n", "slipway.yaml:4:7: target hook of type webhook needs secretFile"},
		{"notifications:\n  targets:\n    - {name: hook, type: webhook, url: 'ftp://h/x', secretFile: k}\n", "slipway.yaml:4:40: target hook: url \"ftp://h/x\" must be an http(s) URL"},
		{"notifications:\n  targets:\n    - {name: chat, type: slack, url: 'https://hooks.slack.com/services/T/B/X'}\n", "slipway.yaml:4:38: target chat: a Slack webhook URL is a credential: put it in a file and set urlFile instead of url"},
		{"notifications:\n  targets:\n    - {name: chat, type: slack, urlFile: u, secret: x}\n", "secrets are never written in slipway.yaml"},
		{"notifications:\n  targets:\n    - {name: a, type: slack, urlFile: u, events: [run.done]}\n", "slipway.yaml:4:51: target a: unknown event \"run.done\""},
		{"notifications:\n  targets:\n    - {name: a, type: slack, urlFile: u, pipelines: [jack]}\n", "slipway.yaml:4:54: target a: pipeline pattern \"jack\" must be REPOSITORY/PIPELINE"},
		{"notifications:\n  targets:\n    - {name: a, type: slack, urlFile: u}\n    - {name: a, type: slack, urlFile: v}\n", "slipway.yaml:5:14: notification target name \"a\" is used twice"},
		{"notifications:\n  targets:\n    - {name: m, type: email, smtp: {address: smtp}, from: x, to: []}\n", "target m: smtp address \"smtp\" must be host:port"},
		{"notifications:\n  targets:\n    - {name: m, type: email, smtp: {address: 'h:587', usernameFile: u}, from: a@b.c, to: [x@y.z]}\n", "slipway.yaml:4:36: target m: smtp needs both usernameFile and passwordFile"},
		{"notifications:\n  targets:\n    - {name: m, type: email, smtp: {address: 'h:587'}, from: 'not an address', to: [x@y.z]}\n", "slipway.yaml:4:62: target m: from \"not an address\" is not a mail address"},
		{"notifications:\n  targets:\n    - {name: m, type: mail}\n", "slipway.yaml:4:23: type: \"mail\" is not one of webhook, slack, email"},
		{"notifications:\n  retry: {initialDelay: 1s, maxDelay: 500ms}\n", "slipway.yaml:3:39: maxDelay (500ms) is shorter than initialDelay (1s)"},
		{"externalURL: slipway.example.com\n", "slipway.yaml:2:14: externalURL \"slipway.example.com\" must be an http(s) URL"},
	} {
		_, err := Parse("slipway.yaml", []byte(notifyBase+c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s\ngot  %v\nwant %s", c.yaml, err, c.want)
		}
	}
}

// The example in docs/notifications.md is a valid slipway.yaml.
func TestNotificationsDocExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/notifications.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	example, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/notifications.md has no yaml example")
	}
	c, err := Parse("notifications.md", []byte("dataDir: /d\n"+example))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Notifications.Targets) != 3 || c.ExternalURL != "https://slipway.example.com" {
		t.Fatalf("%+v", c.Notifications)
	}
}
