package sources

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// ErrNoPrefetch: Prefetch cannot ask for the commit without listing the refs first (no
// listing of the repository yet, or a transport other than HTTP).
var ErrNoPrefetch = errors.New("prefetch needs an earlier ref listing over HTTP")

// Prefetch brings commit, with its history to the mirror's depth, into the mirror in one
// pack request, using the server capabilities of the repository's last ref listing. It
// moves no ref: a webhook's payload names the pushed commit, but only a ref listing says
// which commit the branch's head is, so the caller lists the refs meanwhile (the two
// round trips overlap) and syncs the branch from that listing; when the listing names
// commit, the sync has it whole and fetches nothing. A commit that is not the head (a
// stale or forged payload) costs its objects in the mirror and nothing else. It reports
// whether it fetched; a commit the mirror holds already is not fetched again.
func (m *Mirrors) Prefetch(ctx context.Context, repo Repo, commit string) (bool, error) {
	if !plumbing.IsHash(commit) || plumbing.NewHash(commit).IsZero() {
		return false, fmt.Errorf("%s: prefetch: %q is not a commit hash", repo.Name, commit)
	}
	h := plumbing.NewHash(commit)
	ep, err := transport.NewEndpoint(repo.URL)
	if err != nil || (ep.Protocol != "http" && ep.Protocol != "https") {
		return false, fmt.Errorf("%s: %w", repo.Name, ErrNoPrefetch)
	}
	encoded, ok := m.caps.Load(m.dir(repo))
	if !ok {
		return false, fmt.Errorf("%s: %w", repo.Name, ErrNoPrefetch)
	}
	caps := capability.NewList()
	if err := caps.Decode([]byte(encoded.(string))); err != nil {
		return false, fmt.Errorf("%s: %w: capabilities: %v", repo.Name, ErrNoPrefetch, err)
	}
	fetched := false
	err = m.withRepo(ctx, repo, func() error {
		auth, err := m.auth(repo)
		if err != nil {
			return err
		}
		r, err := m.open(repo)
		if err != nil {
			return fmt.Errorf("%s: %w", repo.Name, err)
		}
		if hasObject(r, h) {
			return nil
		}
		shallow, err := r.Storer.Shallow()
		if err != nil {
			return fmt.Errorf("%s: %w: shallow file: %v", repo.Name, errCorrupt, err)
		}
		depth := wireDepth(m.depth, shallow)
		listed := &remoteRefs{caps: caps}
		if err := m.fetchWants(ctx, r, repo, ep, auth, listed, []plumbing.Hash{h}, shallow, depth); err != nil {
			return fmt.Errorf("prefetch %s of %s: %w", commit, repo.Name, err)
		}
		if err := tidyShallow(r); err != nil {
			return fmt.Errorf("prefetch %s of %s: %w", commit, repo.Name, err)
		}
		if !hasObject(r, h) {
			return fmt.Errorf("prefetch %s of %s: %w", commit, repo.Name, ErrCommitNotFound)
		}
		m.prefetched.Store(m.dir(repo), h)
		fetched = true
		return nil
	})
	return fetched, err
}

// maxHistoryWalk bounds the commits InHistory reads below a head.
const maxHistoryWalk = 1000

// InHistory reports whether commit is head or one of its ancestors, as far as the mirror
// holds head's history (and at most maxHistoryWalk commits below it): a commit a prefetch
// brought is in the mirror whether or not it is on any branch, so its presence proves
// nothing.
func (m *Mirrors) InHistory(ctx context.Context, repo Repo, head, commit string) (bool, error) {
	hh, err := parseCommit(repo, head)
	if err != nil {
		return false, err
	}
	ch, err := parseCommit(repo, commit)
	if err != nil {
		return false, err
	}
	if hh == ch {
		return true, nil
	}
	found := false
	err = m.withRepo(ctx, repo, func() error {
		r, err := m.openExisting(repo)
		if err != nil {
			return fmt.Errorf("history of %s: %w", repo.Name, err)
		}
		c, err := r.CommitObject(hh)
		if err != nil {
			return fmt.Errorf("history of %s: %w: %s: %v", repo.Name, ErrCommitNotFound, head, err)
		}
		walked := 0
		// Errors are only the end of a shallow history: what was walked is all there is.
		_ = object.NewCommitPreorderIter(c, nil, nil).ForEach(func(c *object.Commit) error {
			walked++
			if c.Hash == ch {
				found = true
				return storer.ErrStop
			}
			if walked >= maxHistoryWalk || ctx.Err() != nil {
				return storer.ErrStop
			}
			return nil
		})
		return ctx.Err()
	})
	return found, err
}
