package sources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Checkout writes the tree of commit into dir, which must not exist or be empty: a fresh
// workspace per run. Executable bits are kept; symlinks stay symlinks, but one whose
// target lies outside dir is left out (and logged), so nothing read through the
// workspace can escape it. Submodules are not checked out.
func (m *Mirrors) Checkout(ctx context.Context, repo Repo, commit, dir string) error {
	h, err := parseCommit(repo, commit)
	if err != nil {
		return err
	}
	if err := emptyDir(dir); err != nil {
		return fmt.Errorf("checkout %s: %w", repo.Name, err)
	}
	log := m.logFor(repo).WithField("commit", commit)
	return m.withRepo(ctx, repo, func() error {
		r, err := m.openExisting(repo)
		if err != nil {
			return fmt.Errorf("checkout %s: %w", repo.Name, err)
		}
		if err := m.ensureCommit(ctx, r, repo, h); err != nil {
			return err
		}
		c, err := r.CommitObject(h)
		if err != nil {
			return fmt.Errorf("checkout %s: %w", repo.Name, err)
		}
		tree, err := c.Tree()
		if err != nil {
			return fmt.Errorf("checkout %s: %w", repo.Name, err)
		}
		skipped, err := writeTree(ctx, r, tree, dir)
		for _, s := range skipped {
			log.WithField("path", s).Warn("symlink points outside the workspace, not checked out")
		}
		if err != nil {
			return fmt.Errorf("checkout %s at %s: %w", repo.Name, commit, err)
		}
		return nil
	})
}

// emptyDir creates dir or checks that it is empty.
func emptyDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("workspace %s is not empty", dir)
	}
	return nil
}

type symlink struct{ name, target string }

// writeTree materialises tree under root. Symlinks are made last, so no file or folder is
// ever written through one.
func writeTree(ctx context.Context, r *git.Repository, tree *object.Tree, root string) (skipped []string, err error) {
	var links []symlink
	walker := object.NewTreeWalker(tree, true, nil)
	defer walker.Close()
	for {
		name, entry, err := walker.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return skipped, err
		}
		if err := ctx.Err(); err != nil {
			return skipped, err
		}
		dst := filepath.Join(root, filepath.FromSlash(name))
		switch entry.Mode {
		case filemode.Dir:
			if err := os.Mkdir(dst, 0o755); err != nil {
				return skipped, err
			}
		case filemode.Regular, filemode.Deprecated, filemode.Executable:
			perm := os.FileMode(0o644)
			if entry.Mode == filemode.Executable {
				perm = 0o755
			}
			if err := writeBlob(r, entry.Hash, dst, perm); err != nil {
				return skipped, err
			}
		case filemode.Symlink:
			target, err := blobString(r, entry.Hash)
			if err != nil {
				return skipped, err
			}
			links = append(links, symlink{name: name, target: target})
		case filemode.Submodule:
			// A gitlink names a commit of another repository; there is nothing to write.
		default:
			return skipped, fmt.Errorf("%s: unsupported mode %s", name, entry.Mode)
		}
	}
	for _, l := range links {
		if !linkStaysInside(l.name, l.target) {
			skipped = append(skipped, l.name)
			continue
		}
		if err := os.Symlink(filepath.FromSlash(l.target), filepath.Join(root, filepath.FromSlash(l.name))); err != nil {
			return skipped, err
		}
	}
	// Lexically safe links can still escape through other links (a -> ., b -> a/../x):
	// resolve each one for real and drop those that leave root.
	for _, l := range links {
		p := filepath.Join(root, filepath.FromSlash(l.name))
		if _, err := os.Lstat(p); err != nil {
			continue // skipped above
		}
		if resolved, err := filepath.EvalSymlinks(p); err == nil && !within(root, resolved) {
			if err := os.Remove(p); err != nil {
				return skipped, err
			}
			skipped = append(skipped, l.name)
		}
	}
	return skipped, nil
}

// linkStaysInside checks a symlink's target lexically, relative to the link's folder.
func linkStaysInside(name, target string) bool {
	if target == "" || path.IsAbs(target) || filepath.IsAbs(target) || strings.ContainsRune(target, 0) {
		return false
	}
	joined := path.Join(path.Dir(name), target)
	return joined != ".." && !strings.HasPrefix(joined, "../")
}

func within(root, p string) bool {
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return false
	}
	rel, err := filepath.Rel(realRoot, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func writeBlob(r *git.Repository, h plumbing.Hash, dst string, perm os.FileMode) (err error) {
	b, err := r.BlobObject(h)
	if err != nil {
		return err
	}
	rd, err := b.Reader()
	if err != nil {
		return err
	}
	defer rd.Close()
	// O_EXCL|O_NOFOLLOW: the workspace is fresh, so anything already there is an error.
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, perm)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	_, err = io.Copy(out, rd)
	return err
}

// blobString reads a symlink's target; targets are short paths.
func blobString(r *git.Repository, h plumbing.Hash) (string, error) {
	b, err := r.BlobObject(h)
	if err != nil {
		return "", err
	}
	rd, err := b.Reader()
	if err != nil {
		return "", err
	}
	defer rd.Close()
	data, err := io.ReadAll(io.LimitReader(rd, 4096))
	return string(data), err
}
