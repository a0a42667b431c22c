package sources

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
)

// maxHaves bounds the commits of each local ref offered to the server as common history,
// as go-git's own fetch does (below the fetch depth when that is smaller).
const maxHaves = 100

// fetchListed fetches specs (exact "+ref:ref" refspecs) from the commits a ref listing
// named, without listing the refs again: go-git's fetch always starts with a listing of
// its own, one more round trip to the Git server on every push. Over HTTP the listing and
// the pack request are separate requests anyway, so the listing the look made serves. It
// reports false, having changed nothing, when it cannot serve specs this way (another
// transport, a ref the listing lacks); the caller then fetches the usual way.
func (m *Mirrors) fetchListed(ctx context.Context, r *git.Repository, repo Repo, auth transport.AuthMethod,
	specs []config.RefSpec, depth int, listed *remoteRefs) (bool, error) {
	if listed == nil || listed.caps == nil {
		return false, nil
	}
	ep, err := transport.NewEndpoint(repo.URL)
	if err != nil || (ep.Protocol != "http" && ep.Protocol != "https") {
		return false, nil
	}
	want := map[plumbing.ReferenceName]plumbing.Hash{}
	for _, s := range specs {
		if s.IsWildcard() || !s.IsForceUpdate() || s.Src() != s.Dst("").String() {
			return false, nil
		}
		name := plumbing.ReferenceName(s.Src())
		h, ok := listed.heads[name]
		if !ok {
			h, ok = listed.tags[name]
		}
		if !ok {
			return false, nil
		}
		want[name] = h
	}
	shallow, err := r.Storer.Shallow()
	if err != nil {
		return false, fmt.Errorf("%w: shallow file: %v", errCorrupt, err)
	}
	// As go-git's fetch: a commit the mirror has is wanted again while the mirror is
	// shallow, since its parents may be missing, unless a prefetch brought it whole.
	prefetched, _ := m.prefetched.Load(m.dir(repo))
	var wants []plumbing.Hash
	seen := map[plumbing.Hash]bool{}
	for _, h := range want {
		if !seen[h] && (len(shallow) > 0 && depth != 1 && prefetched != h || !hasObject(r, h)) {
			wants = append(wants, h)
		}
		seen[h] = true
	}
	if err := m.fetchWants(ctx, r, repo, ep, auth, listed, wants, shallow, depth); err != nil {
		return false, err
	}
	for name, h := range want {
		if err := r.Storer.SetReference(plumbing.NewHashReference(name, h)); err != nil {
			return false, err
		}
	}
	return true, nil
}

// fetchWants asks the server for the commits wanted (and their history to depth) in one
// pack request, offering what the mirror has as common history; it moves no ref. listed
// gives the server's capabilities and the commits it advertised.
func (m *Mirrors) fetchWants(ctx context.Context, r *git.Repository, repo Repo, ep *transport.Endpoint, auth transport.AuthMethod,
	listed *remoteRefs, wants, shallow []plumbing.Hash, depth int) error {
	if len(wants) == 0 {
		return nil
	}
	req := packp.NewUploadPackRequestFromCapabilities(listed.caps)
	if depth != 0 {
		req.Depth = packp.DepthCommits(depth)
		if err := req.Capabilities.Set(capability.Shallow); err != nil {
			return err
		}
		req.Shallows = shallow
	}
	if listed.caps.Supports(capability.NoProgress) {
		if err := req.Capabilities.Set(capability.NoProgress); err != nil {
			return err
		}
	}
	req.Wants = wants
	var err error
	if req.Haves, err = haves(r, listed, depth); err != nil {
		return err
	}
	return m.uploadPack(ctx, r, repo, ep, auth, req, depth)
}

// uploadPack asks the server for the pack req describes and stores it in the mirror.
func (m *Mirrors) uploadPack(ctx context.Context, r *git.Repository, repo Repo, ep *transport.Endpoint,
	auth transport.AuthMethod, req *packp.UploadPackRequest, depth int) (err error) {
	// The place first: over SSH, making the session already connects.
	nctx, done, err := m.network(ctx, repo)
	if err != nil {
		return err
	}
	defer done()
	c, err := client.NewClient(ep)
	if err != nil {
		return err
	}
	s, err := c.NewUploadPackSession(ep, auth)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	resp, err := s.UploadPack(nctx, req)
	if errors.Is(err, transport.ErrEmptyUploadPackRequest) {
		return nil // everything wanted is here already
	}
	if err != nil {
		return describe(nctx, repo, err)
	}
	defer func() { err = errors.Join(err, resp.Close()) }()
	if depth != 0 && len(resp.Shallows) > 0 {
		cur, err := r.Storer.Shallow()
		if err != nil {
			return err
		}
		known := map[plumbing.Hash]bool{}
		for _, h := range cur {
			known[h] = true
		}
		for _, h := range resp.Shallows {
			if !known[h] {
				cur = append(cur, h)
				known[h] = true
			}
		}
		if err := r.Storer.SetShallow(cur); err != nil {
			return err
		}
	}
	var pack io.Reader = resp
	switch {
	case req.Capabilities.Supports(capability.Sideband64k):
		pack = sideband.NewDemuxer(sideband.Sideband64k, resp)
	case req.Capabilities.Supports(capability.Sideband):
		pack = sideband.NewDemuxer(sideband.Sideband, resp)
	}
	if err := packfile.UpdateObjectStorage(r.Storer, pack); err != nil {
		return describe(nctx, repo, err)
	}
	return nil
}

// haves is what the mirror offers as common history: each local ref's commit and its
// ancestors, up to maxHaves (or the depth) per ref, stopping at commits the server
// advertised.
func haves(r *git.Repository, listed *remoteRefs, depth int) ([]plumbing.Hash, error) {
	remote := map[plumbing.Hash]bool{}
	for _, h := range listed.heads {
		remote[h] = true
	}
	for _, h := range listed.tags {
		remote[h] = true
	}
	refs, err := r.Storer.IterReferences()
	if err != nil {
		return nil, err
	}
	found := map[plumbing.Hash]bool{}
	err = refs.ForEach(func(ref *plumbing.Reference) error {
		h := ref.Hash()
		if ref.Type() != plumbing.HashReference || found[h] {
			return nil
		}
		c, err := object.GetCommit(r.Storer, h)
		if err != nil {
			if !errors.Is(err, plumbing.ErrObjectNotFound) {
				found[h] = true // a tag object or a tree: offered as it is
			}
			return nil
		}
		visit := maxHaves
		if depth > 0 && depth < visit {
			visit = depth
		}
		// Errors are only the end of a shallow history: what was walked is offered.
		_ = object.NewCommitPreorderIter(c, found, nil).ForEach(func(c *object.Commit) error {
			found[c.Hash] = true
			visit--
			if visit == 0 || remote[c.Hash] {
				return storer.ErrStop
			}
			return nil
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]plumbing.Hash, 0, len(found))
	for h := range found {
		out = append(out, h)
	}
	return out, nil
}
