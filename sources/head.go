package sources

import (
	"context"
	"fmt"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"
)

// remoteRefs is one ref listing (ls-remote) of a repository.
type remoteRefs struct {
	heads map[plumbing.ReferenceName]plumbing.Hash
	tags  map[plumbing.ReferenceName]plumbing.Hash // as advertised: a tag object for annotated tags
	// targets maps each tag to the object it finally points at (peeled), usually a commit.
	targets map[plumbing.ReferenceName]plumbing.Hash
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
	nctx, cancel := m.netCtx(ctx)
	defer cancel()
	rem := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{repo.URL}})
	list, err := rem.ListContext(nctx, &git.ListOptions{Auth: auth, PeelingOption: git.AppendPeeled})
	if err != nil {
		return remoteRefs{}, fmt.Errorf("list refs of %s: %w", repo.Name, describe(nctx, repo, err))
	}
	refs := remoteRefs{
		heads:   map[plumbing.ReferenceName]plumbing.Hash{},
		tags:    map[plumbing.ReferenceName]plumbing.Hash{},
		targets: map[plumbing.ReferenceName]plumbing.Hash{},
	}
	peeled := map[plumbing.ReferenceName]plumbing.Hash{}
	for _, ref := range list {
		if ref.Type() != plumbing.HashReference {
			continue
		}
		name := ref.Name()
		if base, ok := strings.CutSuffix(name.String(), "^{}"); ok {
			peeled[plumbing.ReferenceName(base)] = ref.Hash()
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
	for name, h := range peeled {
		if _, ok := refs.tags[name]; ok {
			refs.targets[name] = h
		}
	}
	return refs, nil
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
