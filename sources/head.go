package sources

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
)

// remoteRefs is one ref listing (ls-remote) of a repository.
type remoteRefs struct {
	heads map[plumbing.ReferenceName]plumbing.Hash
	tags  map[plumbing.ReferenceName]plumbing.Hash // as advertised: a tag object for annotated tags
	// targets maps each tag to the object it finally points at (peeled), usually a commit.
	targets map[plumbing.ReferenceName]plumbing.Hash
	// caps are the server's capabilities as it advertised them with the refs.
	caps *capability.List
}

// Head returns the commit at the tip of branch on the server, with a ref listing only:
// nothing is fetched and no mirror is touched.
func (m *Mirrors) Head(ctx context.Context, repo Repo, branch string) (string, error) {
	auth, err := m.auth(repo)
	if err != nil {
		return "", err
	}
	refs, err := m.list(ctx, repo, auth)
	if err != nil {
		return "", err
	}
	h, err := refs.head(repo, branch)
	if err != nil {
		return "", err
	}
	m.logFor(repo).WithFields(map[string]any{"branch": branch, "commit": h.String()}).Debug("remote head")
	return h.String(), nil
}

func (m *Mirrors) list(ctx context.Context, repo Repo, auth transport.AuthMethod) (remoteRefs, error) {
	nctx, done, err := m.network(ctx, repo)
	if err != nil {
		return remoteRefs{}, fmt.Errorf("list refs of %s: %w", repo.Name, err)
	}
	defer done()
	ar, err := advertised(nctx, repo, auth)
	if err != nil {
		return remoteRefs{}, fmt.Errorf("list refs of %s: %w", repo.Name, describe(nctx, repo, err))
	}
	refs := remoteRefs{
		heads:   map[plumbing.ReferenceName]plumbing.Hash{},
		tags:    map[plumbing.ReferenceName]plumbing.Hash{},
		targets: map[plumbing.ReferenceName]plumbing.Hash{},
		caps:    ar.Capabilities,
	}
	m.caps.Store(m.dir(repo), ar.Capabilities.String())
	all, err := ar.AllReferences()
	if err != nil {
		return remoteRefs{}, fmt.Errorf("list refs of %s: %w", repo.Name, err)
	}
	for name, ref := range all {
		if ref.Type() != plumbing.HashReference {
			continue
		}
		switch {
		case name.IsBranch():
			refs.heads[name] = ref.Hash()
		case name.IsTag():
			refs.tags[name] = ref.Hash()
			refs.targets[name] = ref.Hash()
		}
	}
	for name, h := range ar.Peeled {
		if _, ok := refs.tags[plumbing.ReferenceName(name)]; ok {
			refs.targets[plumbing.ReferenceName(name)] = h
		}
	}
	return refs, nil
}

// advertised is the server's ref advertisement (what go-git's Remote.List reads), with
// its capabilities, which a fetch from the listing needs.
func advertised(ctx context.Context, repo Repo, auth transport.AuthMethod) (*packp.AdvRefs, error) {
	ep, err := transport.NewEndpoint(repo.URL)
	if err != nil {
		return nil, err
	}
	c, err := client.NewClient(ep)
	if err != nil {
		return nil, err
	}
	s, err := c.NewUploadPackSession(ep, auth)
	if err != nil {
		return nil, err
	}
	ar, err := s.AdvertisedReferencesContext(ctx)
	return ar, errors.Join(err, s.Close())
}

func (refs remoteRefs) head(repo Repo, branch string) (plumbing.Hash, error) {
	h, ok := refs.heads[branchRef(branch)]
	if !ok {
		return plumbing.ZeroHash, fmt.Errorf("%s: %w: %s", repo.Name, ErrBranchNotFound, branch)
	}
	return h, nil
}

// branchRef accepts "main" or "refs/heads/main".
func branchRef(branch string) plumbing.ReferenceName {
	if strings.HasPrefix(branch, "refs/heads/") {
		return plumbing.ReferenceName(branch)
	}
	return plumbing.NewBranchReferenceName(branch)
}
