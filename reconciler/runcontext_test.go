package reconciler

import (
	"context"
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

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
		"GIT_BRANCH": "master", "GIT_TAG": "", "VERSION": "0.0.0-7+0123456", "TRIGGER": "push",
	}
	for k, v := range want {
		if untagged[k] != v {
			t.Errorf("%s = %q, want %q", k, untagged[k], v)
		}
	}
	tagged := builtinVars(co, p, store.Run{BuildID: 8, Tag: "v1.2.3", Trigger: store.TriggerManual})
	if tagged["VERSION"] != "1.2.3" || tagged["GIT_TAG"] != "v1.2.3" {
		t.Errorf("run of a tag: VERSION %q GIT_TAG %q, want 1.2.3 and v1.2.3", tagged["VERSION"], tagged["GIT_TAG"])
	}
	if plain := builtinVars(co, p, store.Run{BuildID: 9, Tag: "2.0.0-rc.1"}); plain["VERSION"] != "2.0.0-rc.1" {
		t.Errorf("a tag without v: VERSION %q, want the tag itself", plain["VERSION"])
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

// TestRollbackRunMasksRestoredSecrets: a rollback run has no pipeline secrets of its own; it
// masks the values stored with the revisions it re-applies.
func TestRollbackRunMasksRestoredSecrets(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ref := store.PipelineRef{Repository: "repo", Name: "app"}
	run, err := st.CreateRun(ctx, store.NewRun{Pipeline: ref, Commit: "c", Branch: "main", Trigger: store.TriggerPush})
	if err != nil {
		t.Fatal(err)
	}
	const secret = "restored-s3cr3t-value"
	if _, err := st.SaveRevision(ctx, store.NewRevision{Pipeline: ref, BuildID: run.BuildID, Task: "web", Cluster: "c",
		Namespace: "n", Kind: store.DeployYAML, Objects: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {k: " + secret + "}\n"),
		Inventory: []store.InventoryEntry{{Version: "v1", Kind: "ConfigMap", Namespace: "n", Name: "x"}}, Masks: []string{secret}}); err != nil {
		t.Fatal(err)
	}
	r := &Runner{store: st}
	rc, err := r.newRunContext(ctx, RollbackJob(ref, run.BuildID), store.Run{Pipeline: ref, BuildID: run.BuildID + 1}, nil, logrus.NewEntry(logrus.New()))
	if err != nil {
		t.Fatal(err)
	}
	if got := rc.mask("invalid value " + secret + " (" + base64.StdEncoding.EncodeToString([]byte(secret)) + ")"); strings.Contains(got, secret) || strings.Count(got, "***") != 2 {
		t.Fatalf("rollback run masks %q", got)
	}
	if got := rc.maskValues(); len(got) != 1 || got[0] != secret {
		t.Fatalf("a revision the rollback stores would keep %q", got)
	}
}
