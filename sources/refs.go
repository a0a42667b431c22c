package sources

import (
	"context"
	"fmt"

	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
)

// Refs is one listing of a repository's branches and tags, by short name.
type Refs struct {
	Heads map[string]string // branch → head commit
	Tags  map[string]string // tag → the commit it points at (annotated tags peeled)
	// listed is the listing itself, so SyncListed need not list the refs again.
	listed *remoteRefs
}

// Refs lists the repository's branches and tags with one ref listing (ls-remote): nothing
// is fetched and no mirror is touched, so a poll of an unchanged repository costs this call.
func (m *Mirrors) Refs(ctx context.Context, repo Repo) (Refs, error) {
	auth, err := m.auth(repo)
	if err != nil {
		return Refs{}, err
	}
	refs, err := m.list(ctx, repo, auth)
	if err != nil {
		return Refs{}, err
	}
	out := Refs{Heads: make(map[string]string, len(refs.heads)), Tags: make(map[string]string, len(refs.targets)), listed: &refs}
	for name, h := range refs.heads {
		out.Heads[name.Short()] = h.String()
	}
	for name, h := range refs.targets {
		out.Tags[name.Short()] = h.String()
	}
	return out, nil
}

// FetchTag brings tag and the history below it (to the mirror's depth) into the mirror and
// returns the commit it points at, so a run can be prepared at the tagged commit.
func (m *Mirrors) FetchTag(ctx context.Context, repo Repo, tag string) (string, error) {
	var commit string
	err := m.withRepo(ctx, repo, func() error {
		auth, err := m.auth(repo)
		if err != nil {
			return err
		}
		r, err := m.open(repo)
		if err != nil {
			return fmt.Errorf("%s: %w", repo.Name, err)
		}
		name := plumbing.NewTagReferenceName(tag)
		if err := m.fetch(ctx, r, repo, auth, []config.RefSpec{exactSpec(name)}, m.depth, nil); err != nil {
			return fmt.Errorf("fetch tag %s of %s: %w", tag, repo.Name, err)
		}
		ref, err := r.Reference(name, false)
		if err != nil {
			return fmt.Errorf("fetch tag %s of %s: %w: %v", tag, repo.Name, ErrCommitNotFound, err)
		}
		h := peel(r, ref.Hash())
		if _, err := r.CommitObject(h); err != nil {
			return fmt.Errorf("tag %s of %s does not point at a commit: %w", tag, repo.Name, ErrCommitNotFound)
		}
		commit = h.String()
		return nil
	})
	return commit, err
}
