package sources

import (
	"context"
	"fmt"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
)

// deepenSteps are the depths tried, in order, when a commit is older than the mirror's
// shallow history; the last one fetches everything.
var deepenSteps = [...]int{10, 100, 1000, infiniteDepth}

// ensureCommit makes sure the mirror holds commit h, fetching more history of the branches
// it tracks when it does not. Callers hold the lock.
func (m *Mirrors) ensureCommit(ctx context.Context, r *git.Repository, repo Repo, h plumbing.Hash) error {
	if _, err := r.CommitObject(h); err == nil {
		return nil
	}
	specs, err := branchSpecs(r)
	if err != nil {
		return fmt.Errorf("%s: %w: %v", repo.Name, errCorrupt, err)
	}
	if len(specs) == 0 {
		return fmt.Errorf("%s: %w: %s (no branch synced yet)", repo.Name, ErrCommitNotFound, h)
	}
	auth, err := m.auth(repo)
	if err != nil {
		return err
	}
	steps := deepenSteps[:]
	if m.depth < 0 {
		steps = []int{-1} // full history already: only new commits could help
	}
	log := m.logFor(repo).WithField("commit", h.String())
	for _, depth := range steps {
		if depth > 0 && depth != infiniteDepth && depth <= m.depth {
			continue
		}
		log.WithField("depth", depth).Info("commit not in mirror, fetching more history")
		if err := m.fetch(ctx, r, repo, auth, specs, depth, nil); err != nil {
			return fmt.Errorf("deepen %s: %w", repo.Name, err)
		}
		if _, err := r.CommitObject(h); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%s: %w: %s is not in the history of %d synced branch(es)", repo.Name, ErrCommitNotFound, h, len(specs))
}

// branchSpecs are refspecs for the branches the mirror tracks (those Sync fetched).
func branchSpecs(r *git.Repository) ([]config.RefSpec, error) {
	iter, err := r.Branches()
	if err != nil {
		return nil, err
	}
	var specs []config.RefSpec
	err = iter.ForEach(func(ref *plumbing.Reference) error {
		specs = append(specs, exactSpec(ref.Name()))
		return nil
	})
	return specs, err
}

// parseCommit accepts a full hexadecimal commit hash only: abbreviated hashes are
// ambiguous and cannot be fetched.
func parseCommit(repo Repo, s string) (plumbing.Hash, error) {
	if len(s) != 40 || !plumbing.IsHash(s) {
		return plumbing.ZeroHash, fmt.Errorf("%s: %w: %q is not a full commit hash", repo.Name, ErrCommitNotFound, s)
	}
	return plumbing.NewHash(s), nil
}
