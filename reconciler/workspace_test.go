package reconciler

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/sources"
	"github.com/slipwayhq/slipway/store"
)

// Workspaces hold rendered files and Secrets' values: each is private to the daemon's user
// and has a random name, so no other run (or user) can find or read it, even when the
// workspaces folder was made earlier with wider permissions.
func TestWorkspacesArePrivateAndUnpredictable(t *testing.T) {
	data := t.TempDir()
	if err := os.MkdirAll(filepath.Join(data, "workspaces"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := NewRunner(RunnerOptions{Sources: emptyCheckout{}, Config: &config.Config{DataDir: data}, Log: logrus.NewEntry(logrus.New())})
	// A script may write its workspace: its run gets one of its own once a script needs it
	// (until then the run reads the commit's shared checkout, see checkouts).
	p := &pipeline.Pipeline{Name: "app", Stages: []pipeline.Stage{{Tasks: []pipeline.Task{{Type: pipeline.TypeScript}}}}}
	job := RunJob(&Checkout{Repo: sources.Repo{Name: "app"}}, p, store.TriggerPush, 0)
	var names []string
	for range 2 {
		rc, err := r.newRunContext(context.Background(), job, store.Run{BuildID: 7}, nil, logrus.NewEntry(logrus.New()))
		if err != nil {
			t.Fatal(err)
		}
		defer rc.close()
		if rc.workspace != "" {
			t.Fatalf("a run made its own workspace %s before a script needed it", rc.workspace)
		}
		ws, err := r.ownWorkspace(context.Background(), rc)
		if again, _ := r.ownWorkspace(context.Background(), rc); err != nil || again != ws || rc.files().Dir() != ws {
			t.Fatalf("own workspace %s, then %s, reading %s: %v; want one, read from then on", ws, again, rc.files().Dir(), err)
		}
		fi, err := os.Stat(rc.workspace)
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("workspace %s: %v, %v; want mode 0700", rc.workspace, fi.Mode(), err)
		}
		names = append(names, filepath.Base(rc.workspace))
	}
	if names[0] == names[1] {
		t.Errorf("two runs of the same BUILD_ID share the workspace name %s", names[0])
	}
	if fi, err := os.Stat(filepath.Join(data, "workspaces")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("workspaces folder: %v, %v; want mode 0700", fi.Mode(), err)
	}
}
