package webui

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/notify"
	"github.com/slipwayhq/slipway/store"
)

// The link a notification carries opens that run's page in the console.
func TestNotificationLinkOpensTheRunPage(t *testing.T) {
	f := newFixture(t)
	ref := store.PipelineRef{Repository: "shop", Name: "web app"}
	run, err := f.st.CreateRun(context.Background(), store.NewRun{Pipeline: ref, Commit: "abc1234", Trigger: store.TriggerPush, Holder: "h"})
	if err != nil {
		t.Fatal(err)
	}
	link, err := url.Parse(notify.RunURL("https://slipway.example.com/", ref, run.BuildID))
	if err != nil {
		t.Fatal(err)
	}
	cookie, _ := f.signIn("viewer-token")
	rec := f.do("GET", link.EscapedPath(), nil, []*http.Cookie{cookie})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "abc1234") {
		t.Fatalf("GET %s = %d; want the run's page:\n%s", link.EscapedPath(), rec.Code, rec.Body.String())
	}
}
