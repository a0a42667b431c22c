package sources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// ChangedPaths lists the files (slash-separated, sorted) that differ between the trees of
// commits from and to: added, modified and deleted, a rename as both its old and new path.
// An empty from lists every file of to. Neither commit has to be an ancestor of the other,
// and history between them is not needed.
func (m *Mirrors) ChangedPaths(ctx context.Context, repo Repo, from, to string) ([]string, error) {
	toHash, err := parseCommit(repo, to)
	if err != nil {
		return nil, err
	}
	var fromHash plumbing.Hash
	if from != "" {
		if fromHash, err = parseCommit(repo, from); err != nil {
			return nil, err
		}
	}
	var paths []string
	err = m.withRepo(ctx, repo, func() error {
		r, err := m.openExisting(repo)
		if err != nil {
			return fmt.Errorf("changed paths %s: %w", repo.Name, err)
		}
		toTree, err := m.commitTree(ctx, r, repo, toHash)
		if err != nil {
			return err
		}
		if from == "" {
			paths, err = allFiles(ctx, toTree)
		} else {
			var fromTree *object.Tree
			if fromTree, err = m.commitTree(ctx, r, repo, fromHash); err != nil {
				return err
			}
			paths, err = diffPaths(ctx, fromTree, toTree)
		}
		if err != nil {
			return fmt.Errorf("changed paths %s: %w", repo.Name, err)
		}
		return nil
	})
	return paths, err
}

func (m *Mirrors) commitTree(ctx context.Context, r *git.Repository, repo Repo, h plumbing.Hash) (*object.Tree, error) {
	if err := m.ensureCommit(ctx, r, repo, h); err != nil {
		return nil, err
	}
	c, err := r.CommitObject(h)
	if err != nil {
		return nil, fmt.Errorf("%s: commit %s: %w", repo.Name, h, err)
	}
	t, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("%s: tree of %s: %w", repo.Name, h, err)
	}
	return t, nil
}

func diffPaths(ctx context.Context, from, to *object.Tree) ([]string, error) {
	changes, err := object.DiffTreeWithOptions(ctx, from, to, nil)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, c := range changes {
		if c.From.Name != "" {
			set[c.From.Name] = true
		}
		if c.To.Name != "" {
			set[c.To.Name] = true
		}
	}
	paths := make([]string, 0, len(set))
	for p := range set {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return paths, nil
}

func allFiles(ctx context.Context, t *object.Tree) ([]string, error) {
	var paths []string
	w := object.NewTreeWalker(t, true, nil)
	defer w.Close()
	for {
		name, entry, err := w.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if entry.Mode.IsFile() {
			paths = append(paths, name)
		}
	}
	sort.Strings(paths)
	return paths, nil
}
