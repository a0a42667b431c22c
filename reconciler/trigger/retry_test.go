package trigger

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/store"
)

// refusals records RefuseRetry calls: "pipeline#id: why".
type refusals struct{ got []string }

func (f *refusals) RefuseRetry(_ context.Context, ref store.PipelineRef, buildID int64, why string) error {
	f.got = append(f.got, fmt.Sprintf("%s#%d: %s", ref.Name, buildID, why))
	return nil
}

// TestRetryInterruptedSupersededByALaterCommit: an interrupted run is retried at its commit
// unless a later run of the pipeline on the branch is at another commit (a push the new
// owner found while the run was being declared interrupted): retrying the older commit
// after it would deploy a stale revision, so it is left interrupted, saying why.
func TestRetryInterruptedSupersededByALaterCommit(t *testing.T) {
	ctx := context.Background()
	r, h := newHubRig(t)
	refused := &refusals{}
	h.interrupts = refused
	retried := pl("web", nil)
	retried.RetryInterrupted = true
	r.files.files[sha("c0")] = []*pipeline.Pipeline{retried}
	r.files.files[sha("c1")] = []*pipeline.Pipeline{retried}
	interrupted := store.Run{Pipeline: webRef, BuildID: 3, Commit: sha("c0"), Branch: testBranch, Trigger: store.TriggerPush, Status: store.RunInterrupted}
	sameCommit := store.Run{Pipeline: webRef, BuildID: 4, Commit: sha("c0"), Branch: testBranch, Trigger: store.TriggerManual}
	otherBranch := store.Run{Pipeline: webRef, BuildID: 5, Commit: sha("c1"), Branch: "feature", Trigger: store.TriggerPush}
	r.records.mu.Lock()
	r.records.runs = map[store.PipelineRef][]store.Run{webRef: {otherBranch, sameCommit, interrupted}}
	r.records.mu.Unlock()

	// Later runs of the same commit, or of another branch, do not supersede it: retried.
	if err := h.RetryInterrupted(ctx, interrupted); err != nil {
		t.Fatal(err)
	}
	submitted, _, _ := r.runs.jobs()
	if len(submitted) != 1 || submitted[0].Trigger != store.TriggerRetry || submitted[0].Parent != 3 || len(refused.got) != 0 {
		t.Fatalf("submitted %v, refused %v: want one retry of #3", describe(submitted), refused.got)
	}

	// A later push of another commit on the branch: not retried, and the record says why.
	later := store.Run{Pipeline: webRef, BuildID: 6, Commit: sha("c1"), Branch: testBranch, Trigger: store.TriggerPush}
	r.records.mu.Lock()
	r.records.runs[webRef] = append([]store.Run{later}, r.records.runs[webRef]...)
	r.records.mu.Unlock()
	if err := h.RetryInterrupted(ctx, interrupted); err != nil {
		t.Fatal(err)
	}
	submitted, _, _ = r.runs.jobs()
	if len(submitted) != 1 || len(refused.got) != 1 || !strings.Contains(refused.got[0], "superseded by BUILD_ID 6 (commit "+sha("c1")[:7]+")") {
		t.Fatalf("submitted %v, refused %v: want #3 refused, superseded by #6", describe(submitted), refused.got)
	}
	if !strings.HasPrefix(refused.got[0], "web#3: ") {
		t.Fatalf("refused %v", refused.got)
	}
}
