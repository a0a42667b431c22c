package sources

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// SyncResult says what a Sync found and did.
type SyncResult struct {
	Commit   string // the branch head now in the mirror
	Previous string // the branch head the mirror had before; "" on the first sync
	// Fetched is false when the remote listing showed nothing moved and no fetch was made.
	Fetched bool
	// Recreated is true when the mirror was found broken and was rebuilt from scratch.
	Recreated bool
}

// Sync brings branch (and the tags pointing into what the mirror holds) up to date: one
// ref listing, and a fetch only if the branch head or those tags moved.
func (m *Mirrors) Sync(ctx context.Context, repo Repo, branch string) (SyncResult, error) {
	return m.SyncListed(ctx, repo, branch, Refs{})
}

// SyncListed is Sync after a Refs listing of the repository: it fetches what moved from
// that listing without listing the refs again (one round trip to the Git server fewer). A
// Refs not made by Refs lists them.
func (m *Mirrors) SyncListed(ctx context.Context, repo Repo, branch string, listed Refs) (SyncResult, error) {
	var res SyncResult
	log := m.logFor(repo).WithField("branch", branch)
	err := m.withRepo(ctx, repo, func() error {
		auth, err := m.auth(repo)
		if err != nil {
			return err
		}
		var refs remoteRefs
		if listed.listed != nil {
			refs = *listed.listed
		} else if refs, err = m.list(ctx, repo, auth); err != nil {
			return err
		}
		head, err := refs.head(repo, branch)
		if err != nil {
			return err
		}
		r, err := m.open(repo)
		if err != nil {
			return fmt.Errorf("%s: %w", repo.Name, err)
		}
		start := time.Now()
		res, err = m.update(ctx, r, repo, auth, branchRef(branch), head, refs)
		if err != nil && mayBeLocal(ctx, err) {
			verr := verify(r)
			if verr == nil && !errors.Is(err, errCorrupt) {
				return err
			}
			log.WithError(errors.Join(err, verr)).Warn("mirror is broken, re-creating it")
			if r, err = m.recreate(repo); err != nil {
				return fmt.Errorf("%s: %w", repo.Name, err)
			}
			res, err = m.update(ctx, r, repo, auth, branchRef(branch), head, refs)
			res.Recreated = true
		}
		if err != nil {
			return err
		}
		log = log.WithField("commit", res.Commit)
		if res.Fetched {
			log.WithFields(map[string]any{"previous": res.Previous, "duration": time.Since(start).Round(time.Millisecond).String()}).Info("fetched")
		} else {
			log.Debug("unchanged, no fetch")
		}
		return nil
	})
	return res, err
}

// update fetches what moved. Tags are fetched in a second pass when the first one brought
// the commits they point at.
func (m *Mirrors) update(ctx context.Context, r *git.Repository, repo Repo, auth transport.AuthMethod,
	branch plumbing.ReferenceName, head plumbing.Hash, refs remoteRefs) (SyncResult, error) {
	res := SyncResult{Commit: head.String()}
	if cur, err := r.Reference(branch, false); err == nil {
		res.Previous = cur.Hash().String()
	}
	needBranch := res.Previous != res.Commit
	if last, ok := m.readHeads.Load(m.dir(repo)); !needBranch && (!ok || last != res.Commit) {
		if err := readable(r, head); err != nil {
			return res, fmt.Errorf("%s: %w", repo.Name, err)
		}
		m.readHeads.Store(m.dir(repo), res.Commit)
	}
	for pass := 0; pass < 2; pass++ {
		specs, err := reconcileTags(r, refs, head)
		if err != nil {
			return res, fmt.Errorf("%s: tags: %w", repo.Name, err)
		}
		if needBranch {
			specs = append(specs, exactSpec(branch))
			needBranch = false
		}
		if len(specs) == 0 {
			break
		}
		if err := m.fetch(ctx, r, repo, auth, specs, m.depth, &refs); err != nil {
			return res, fmt.Errorf("fetch %s: %w", repo.Name, err)
		}
		res.Fetched = true
	}
	if !res.Fetched {
		return res, nil
	}
	// The server may have moved on between the listing and the fetch: report what we have.
	cur, err := r.Reference(branch, false)
	if err != nil {
		return res, fmt.Errorf("fetch %s: %w: %s missing after fetch: %v", repo.Name, errCorrupt, branch, err)
	}
	res.Commit = cur.Hash().String()
	if err := readable(r, cur.Hash()); err != nil {
		return res, fmt.Errorf("fetch %s: %w", repo.Name, err)
	}
	return res, nil
}

// reconcileTags keeps the mirror's tags equal to the remote tags that point at the new
// head or at objects the mirror already has (others would drag in unrelated history):
// it deletes stale ones locally and returns refspecs for those to fetch.
func reconcileTags(r *git.Repository, refs remoteRefs, head plumbing.Hash) ([]config.RefSpec, error) {
	want := map[plumbing.ReferenceName]plumbing.Hash{}
	for name, h := range refs.tags {
		if t := refs.targets[name]; t == head || hasObject(r, t) {
			want[name] = h
		}
	}
	local, err := r.Tags()
	if err != nil {
		return nil, err
	}
	have := map[plumbing.ReferenceName]plumbing.Hash{}
	err = local.ForEach(func(ref *plumbing.Reference) error {
		have[ref.Name()] = ref.Hash()
		if _, ok := want[ref.Name()]; !ok {
			return r.Storer.RemoveReference(ref.Name())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var specs []config.RefSpec
	for name, h := range want {
		if have[name] != h {
			specs = append(specs, exactSpec(name))
		}
	}
	return specs, nil
}

func exactSpec(name plumbing.ReferenceName) config.RefSpec {
	return config.RefSpec("+" + name.String() + ":" + name.String())
}

// infiniteDepth is what `git fetch --unshallow` sends.
const infiniteDepth = 0x7fffffff

// wireDepth is the depth a fetch asks for: depth < 0 means all history, which a shallow
// mirror must still ask for as a depth, since go-git sends its shallow commits only along
// with one; without them the server would assume history the mirror lacks and leave
// objects out.
func wireDepth(depth int, shallow []plumbing.Hash) int {
	if depth >= 0 {
		return depth
	}
	if len(shallow) > 0 {
		return infiniteDepth
	}
	return 0
}

// fetch runs one fetch. depth < 0 means all history. listed, when not nil, is a listing
// of the refs to fetch them from without listing them again (fetchListed).
func (m *Mirrors) fetch(ctx context.Context, r *git.Repository, repo Repo, auth transport.AuthMethod,
	specs []config.RefSpec, depth int, listed *remoteRefs) error {
	shallow, err := r.Storer.Shallow()
	if err != nil {
		return fmt.Errorf("%w: shallow file: %v", errCorrupt, err)
	}
	depth = wireDepth(depth, shallow)
	if listed != nil {
		done, err := m.fetchListed(ctx, r, repo, auth, specs, depth, listed)
		switch {
		case done:
			return tidyShallow(r)
		case err != nil && ctx.Err() != nil:
			return err
		case err != nil:
			// The branch may have been force-pushed since the listing, so the commit it
			// named is no longer the server's to give: fetch with a fresh listing.
			m.logFor(repo).WithError(err).Debug("fetch from the listing failed; fetching with a new listing")
		}
	}
	nctx, done, err := m.network(ctx, repo)
	if err != nil {
		return err // update names the fetch
	}
	defer done()
	err = remote(r, repo).FetchContext(nctx, &git.FetchOptions{
		RemoteName: "origin",
		RefSpecs:   specs,
		Depth:      depth,
		Auth:       auth,
		Tags:       git.NoTags, // tags come through explicit refspecs (see reconcileTags)
		Force:      true,
	})
	if errors.Is(err, git.NoErrAlreadyUpToDate) {
		err = nil
	}
	if err != nil {
		return describe(nctx, repo, err)
	}
	return tidyShallow(r)
}

// tidyShallow drops commits from the shallow list whose parents the mirror now has: go-git
// only ever adds to the list, and a stale entry makes the server resend history.
func tidyShallow(r *git.Repository) error {
	shallow, err := r.Storer.Shallow()
	if err != nil || len(shallow) == 0 {
		return err
	}
	keep := shallow[:0:0]
	for _, h := range shallow {
		c, err := r.CommitObject(h)
		if err != nil {
			keep = append(keep, h)
			continue
		}
		for _, p := range c.ParentHashes {
			if !hasObject(r, p) {
				keep = append(keep, h)
				break
			}
		}
	}
	if len(keep) == len(shallow) {
		return nil
	}
	return r.Storer.SetShallow(keep)
}
