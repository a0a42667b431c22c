package daemon

import (
	"context"
	"testing"

	"github.com/slipwayhq/slipway/store"
)

// revisionsOf is a store that knows one current revision per pipeline asked for, and
// records which of them were read in full (known said no).
type revisionsOf struct {
	store.Store
	full []store.PipelineRef
}

func (s *revisionsOf) EachCurrentRevisionOf(_ context.Context, pipelines []store.PipelineRef, known func(*store.Revision) bool, fn func(*store.Revision) error) error {
	for _, p := range pipelines {
		r := store.Revision{Pipeline: p, Task: "deploy", Objects: []byte("kind: ConfigMap\n")}
		if known(&r) {
			r.Objects = nil
		} else {
			s.full = append(s.full, p)
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	return nil
}

// A replica's watches reload the pipelines whose tasks ended: of those, they see the owned
// repositories' only, and the others' objects are never read.
func TestOwnedStoreReloadsOwnedPipelinesOnly(t *testing.T) {
	inner := &revisionsOf{}
	s := ownedStore{Store: inner, owns: func(repo string) bool { return repo == "mine" }}
	mine, theirs := store.PipelineRef{Repository: "mine", Name: "app"}, store.PipelineRef{Repository: "theirs", Name: "app"}
	var got []store.PipelineRef
	err := s.EachCurrentRevisionOf(context.Background(), []store.PipelineRef{theirs, mine}, func(*store.Revision) bool { return false },
		func(r *store.Revision) error {
			got = append(got, r.Pipeline)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != mine || len(inner.full) != 1 || inner.full[0] != mine {
		t.Fatalf("handed out %v, read in full %v; want the owned repository's only", got, inner.full)
	}
}
