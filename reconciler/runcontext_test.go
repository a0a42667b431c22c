package reconciler

import (
	"testing"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/sources"
	"github.com/slipwayhq/slipway/store"
)

func TestBuiltinVars(t *testing.T) {
	co := &Checkout{Branch: "master", Commit: sources.Commit{Hash: "0123456789abcdef0123456789abcdef01234567", ShortHash: "0123456"}}
	p := &pipeline.Pipeline{Name: "jack-2048"}
	untagged := builtinVars(co, p, store.Run{BuildID: 7, Trigger: store.TriggerPush})
	want := map[string]string{
		"BUILD_ID": "7", "PIPELINE": "jack-2048", "GIT_COMMIT": co.Commit.Hash, "GIT_SHORT_COMMIT": "0123456",
		"GIT_BRANCH": "master", "GIT_TAG": "", "VERSION": "0.0.0-0123456", "TRIGGER": "push",
	}
	for k, v := range want {
		if untagged[k] != v {
			t.Errorf("%s = %q, want %q", k, untagged[k], v)
		}
	}
	tagged := builtinVars(co, p, store.Run{BuildID: 8, Tag: "v1.2.3", Trigger: store.TriggerManual})
	if tagged["VERSION"] != "v1.2.3" || tagged["GIT_TAG"] != "v1.2.3" {
		t.Errorf("tagged commit: VERSION %q GIT_TAG %q, want the tag", tagged["VERSION"], tagged["GIT_TAG"])
	}
}

func TestMaskHidesEverySecretLongestFirst(t *testing.T) {
	rc := &runContext{}
	rc.addMasks([]string{"hunter2", "hunter2-long"})
	got := rc.mask("password hunter2-long and hunter2 again")
	if got != "password *** and *** again" {
		t.Fatalf("mask = %q", got)
	}
	// A restored revision's values are masked from then on, in their encoded forms too.
	rc.addMasks([]string{"old-secret-value", "hunter2"})
	if got := rc.mask("b64 b2xkLXNlY3JldC12YWx1ZQ== url old-secret-value"); got != "b64 *** url ***" {
		t.Fatalf("mask after addMasks = %q", got)
	}
	if got := rc.maskValues(); len(got) != 3 {
		t.Fatalf("maskValues = %q, want the three values once each", got)
	}
}
