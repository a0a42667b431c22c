package preview

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/sources"
	"github.com/slipwayhq/slipway/sources/forge"
)

// blockingRenderer previews instantly, except heads in block, which wait until their
// context ends (superseded) and say so on started first.
type blockingRenderer struct {
	block   map[string]bool
	started chan string
}

func (r *blockingRenderer) Preview(ctx context.Context, req reconciler.PreviewRequest) (*reconciler.Preview, error) {
	if r.block[req.Head] {
		r.started <- req.Head
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return &reconciler.Preview{Commit: sources.Commit{Hash: req.Head, ShortHash: req.Head[:7]}}, nil
}

// recordingForge keeps the comments and statuses it was sent.
type recordingForge struct {
	mu       sync.Mutex
	comments map[string]string // by key
	statuses map[string][]forge.StatusState
}

func (f *recordingForge) UpsertComment(_ context.Context, _ int64, key, body string) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.comments[key] = body
	return 1, nil
}

func (f *recordingForge) SetStatus(_ context.Context, sha string, s forge.Status) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statuses[sha] = append(f.statuses[sha], s.State)
	return nil
}

// A newer head of a pull request cancels the preview being rendered; only the newest is
// posted, and the superseded head keeps its pending status.
func TestPreviewerCoalescesHeads(t *testing.T) {
	const older, newer = "aaaaaaaaaaaa", "bbbbbbbbbbbb"
	r := &blockingRenderer{block: map[string]bool{older: true}, started: make(chan string, 1)}
	f := &recordingForge{comments: map[string]string{}, statuses: map[string][]forge.StatusState{}}
	done := make(chan Result, 2)
	p := New(Options{Renderer: r, Repositories: map[string]Repository{"app": {Forge: f, CommentLimit: 65536}},
		Done: func(res Result) { done <- res }, Log: logrus.NewEntry(logrus.New())})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go p.Run(ctx)

	if err := p.Request(Request{Repository: "app", Number: 7, Head: older}); err != nil {
		t.Fatal(err)
	}
	<-r.started
	if err := p.Request(Request{Repository: "app", Number: 7, Head: newer}); err != nil {
		t.Fatal(err)
	}
	first, second := <-done, <-done
	if first.Head != older || first.Err == nil || first.State != "" {
		t.Errorf("the superseded preview ended %+v, want cancelled without a state", first)
	}
	if second.Head != newer || second.State != forge.StatusSuccess || second.Parts != 1 {
		t.Errorf("the newest preview ended %+v", second)
	}
	if body := f.comments["preview"]; !strings.Contains(body, "Slipway preview of bbbbbbb") || len(f.comments) != 1 {
		t.Errorf("comments %v, want the newest head's only", f.comments)
	}
	if got := f.statuses[older]; len(got) != 1 || got[0] != forge.StatusPending {
		t.Errorf("statuses of the superseded head %v, want pending only", got)
	}
	if got := f.statuses[newer]; len(got) != 2 || got[1] != forge.StatusSuccess {
		t.Errorf("statuses of the newest head %v, want pending then success", got)
	}
	if err := p.Request(Request{Repository: "other", Number: 1}); err == nil {
		t.Error("a repository without a forge was accepted")
	}
}

// A preview that needs fewer parts than the last one edits the parts it no longer uses.
func TestPreviewerBlanksUnusedParts(t *testing.T) {
	r := &blockingRenderer{}
	f := &recordingForge{comments: map[string]string{}, statuses: map[string][]forge.StatusState{}}
	done := make(chan Result, 1)
	p := New(Options{Renderer: r, Repositories: map[string]Repository{"app": {Forge: f, CommentLimit: 200}},
		Done: func(res Result) { done <- res }, Log: logrus.NewEntry(logrus.New())})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go p.Run(ctx)
	if err := p.Request(Request{Repository: "app", Number: 1, Head: "cccccccccccc"}); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.Parts < 2 {
		t.Fatalf("a preview over a 200-byte limit posted %d parts", res.Parts)
	}
	p.mu.Lock()
	p.prs[prKey{"app", 1}].parts = res.Parts + 2 // as if an earlier preview had been longer
	p.mu.Unlock()
	if err := p.Request(Request{Repository: "app", Number: 1, Head: "dddddddddddd"}); err != nil {
		t.Fatal(err)
	}
	<-done
	for i := res.Parts; i < res.Parts+2; i++ {
		if body := f.comments[partKey(i)]; !strings.Contains(body, "no longer used") {
			t.Errorf("part %d says %q, want it marked unused", i+1, body)
		}
	}
	if !strings.Contains(f.comments["preview"], "dddddddd"[:7]) {
		t.Errorf("the first part is not the newest preview: %q", f.comments["preview"])
	}
}
