package sources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Checkout writes the tree of commit into dir, which must not exist or be empty: a fresh
// workspace per run, made private (0700). Executable bits are kept. Symlinks are written as
// Git has them, after every file, so nothing is ever written through one; they are never
// followed here. Whatever reads the checkout reads it through repofs, which refuses a
// symlink that leaves the root, dangles or is absolute, naming it: so a run refuses exactly
// what `slipway validate` refuses, and a link cannot point at anything outside, not even at
// a path that does not exist yet. Submodules are not checked out.
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
		links, err := writeTree(ctx, r, tree, dir)
		if links > 0 {
			log.WithField("symlinks", links).Debug("checked out symlinks; reads resolve them inside the workspace")
		}
		if err != nil {
			return fmt.Errorf("checkout %s at %s: %w", repo.Name, commit, err)
		}
		return nil
	})
}

// emptyDir creates dir or checks that it is empty, and makes it private: a workspace holds
// what a run renders, which no other user (or run) may read.
func emptyDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if fi, err := os.Lstat(dir); err != nil {
		return err
	} else if !fi.IsDir() {
		return fmt.Errorf("workspace %s is not a folder", dir)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
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

// writeTree materialises tree under root and returns how many symlinks it holds. Symlinks
// are made last, so no file or folder is ever written through one.
func writeTree(ctx context.Context, r *git.Repository, tree *object.Tree, root string) (int, error) {
	var links []symlink
	walker := object.NewTreeWalker(tree, true, nil)
	defer walker.Close()
	for {
		name, entry, err := walker.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		dst := filepath.Join(root, filepath.FromSlash(name))
		switch entry.Mode {
		case filemode.Dir:
			if err := os.Mkdir(dst, 0o755); err != nil {
				return 0, err
			}
		case filemode.Regular, filemode.Deprecated, filemode.Executable:
			perm := os.FileMode(0o644)
			if entry.Mode == filemode.Executable {
				perm = 0o755
			}
			if err := writeBlob(r, entry.Hash, dst, perm); err != nil {
				return 0, err
			}
		case filemode.Symlink:
			target, err := blobString(r, entry.Hash)
			if err != nil {
				return 0, err
			}
			if target == "" || strings.ContainsRune(target, 0) {
				return 0, fmt.Errorf("%s: symlink with an empty or invalid target", name)
			}
			links = append(links, symlink{name: name, target: target})
		case filemode.Submodule:
			// A gitlink names a commit of another repository; there is nothing to write.
		default:
			return 0, fmt.Errorf("%s: unsupported mode %s", name, entry.Mode)
		}
	}
	for _, l := range links {
		if err := os.Symlink(l.target, filepath.Join(root, filepath.FromSlash(l.name))); err != nil {
			return 0, err
		}
	}
	return len(links), nil
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
