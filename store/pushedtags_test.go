package store

import (
	"errors"
	"reflect"
	"testing"
)

func TestPushedTags(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	a, b := PipelineRef{Repository: "shop", Name: "web"}, PipelineRef{Repository: "ops", Name: "web"}
	ra, rb := mustRun(t, s, a), mustRun(t, s, b)
	const repo = "registry.local:5000/shop/web"
	if err := s.RecordPushedTags(ctx, a, ra.BuildID, repo, []string{"alpha-1", "latest"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordPushedTags(ctx, b, rb.BuildID, repo, []string{"latest"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordPushedTags(ctx, a, ra.BuildID, repo, []string{"alpha-1"}); err != nil {
		t.Fatalf("recording a tag again: %v", err)
	}
	got, err := s.PushedTags(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]PipelineRef{"alpha-1": {a}, "latest": {b, a}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("pushed tags %v, want %v", got, want)
	}
	if err := s.ForgetPushedTag(ctx, a, repo, "latest"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.PushedTags(ctx, repo); !reflect.DeepEqual(got, map[string][]PipelineRef{"alpha-1": {a}, "latest": {b}}) {
		t.Errorf("after forgetting a's latest: %v", got)
	}
	if got, _ := s.PushedTags(ctx, "registry.local:5000/other"); len(got) != 0 {
		t.Errorf("another repository: %v", got)
	}
	err = s.RecordPushedTags(ctx, PipelineRef{Repository: "x", Name: "y"}, 1, repo, []string{"t"})
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown pipeline: %v", err)
	}
}
