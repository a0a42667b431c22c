// Package repofs reads a repository (a run's checkout or a working copy for `slipway
// validate`) the one way Slipway reads repositories: every path is resolved against the
// repository root and no symlink may leave it (absolute, escaping, dangling, directly or
// through a chain); files are size-checked before they are read; and folders are listed by
// one walker, so what validates is exactly what renders.
package repofs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// maxLinks bounds the symlinks followed for one path, as the kernel's ELOOP does.
const maxLinks = 40

// Errors of a symlink or path, for errors.Is.
var (
	// ErrOutside: the path, or a symlink on the way, leads out of the repository.
	ErrOutside = errors.New("leaves the repository")
	// ErrDangling: a symlink on the way points to nothing in the repository.
	ErrDangling = errors.New("dangling symlink")
	// ErrLinkLoop: too many symlinks to follow.
	ErrLinkLoop = errors.New("too many symlinks")
)

// Repo is a repository opened for reading. Reads go through an os.Root, so even a path that
// changes under us cannot leave the root; the resolver in front of it names the symlink that
// would have.
type Repo struct {
	root *os.Root
	dir  string
}

// Open opens the repository whose root is dir.
func Open(dir string) (*Repo, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", dir, err)
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", dir, err)
	}
	return &Repo{root: root, dir: abs}, nil
}

// Close releases the root.
func (r *Repo) Close() error { return r.root.Close() }

// Dir is the repository's root folder.
func (r *Repo) Dir() string { return r.dir }

// PathError says a path asked for cannot be used.
type PathError struct {
	Path string
	Err  error // ErrOutside or fs.ErrNotExist
}

func (e *PathError) Error() string {
	if errors.Is(e.Err, fs.ErrNotExist) {
		return fmt.Sprintf("%q does not exist in the repository", e.Path)
	}
	if errors.Is(e.Err, ErrOutside) {
		return fmt.Sprintf("path %q leaves the repository: use a path relative to its root", e.Path)
	}
	return fmt.Sprintf("%q: %v", e.Path, e.Err)
}

func (e *PathError) Unwrap() error { return e.Err }

// LinkError says why a symlink on the way to Path is not followed.
type LinkError struct {
	Path   string // the path asked for
	Link   string // the symlink, from the repository root
	Target string // what it points to
	Err    error  // ErrOutside, ErrDangling or ErrLinkLoop
}

func (e *LinkError) Error() string {
	var msg string
	switch {
	case errors.Is(e.Err, ErrDangling):
		msg = fmt.Sprintf("symlink %q is dangling: %q does not exist in the repository", e.Link, e.Target)
	case errors.Is(e.Err, ErrLinkLoop):
		msg = fmt.Sprintf("symlink %q: more than %d symlinks to follow", e.Link, maxLinks)
	case path.IsAbs(e.Target):
		msg = fmt.Sprintf("symlink %q points to the absolute path %q: symlinks must stay inside the repository", e.Link, e.Target)
	default:
		msg = fmt.Sprintf("symlink %q points outside the repository (%q)", e.Link, e.Target)
	}
	if e.Path != e.Link {
		msg = fmt.Sprintf("%q: %s", e.Path, msg)
	}
	return msg
}

func (e *LinkError) Unwrap() error { return e.Err }

// Resolve follows rel inside the repository and returns the path it really names: slash
// separated, from the root ("." for the root), with no symlink left in it.
func (r *Repo) Resolve(rel string) (string, error) {
	clean, err := local(rel)
	if err != nil {
		return "", err
	}
	links := 0
	parts, err := r.walk(nil, strings.Split(clean, "/"), clean, "", "", &links)
	if err != nil {
		return "", err
	}
	if len(parts) == 0 {
		return ".", nil
	}
	return strings.Join(parts, "/"), nil
}

// local cleans a path asked for, which must be relative and stay inside.
func local(rel string) (string, error) {
	slashed := filepath.ToSlash(rel)
	if path.IsAbs(slashed) || filepath.IsAbs(rel) || strings.ContainsRune(rel, 0) {
		return "", &PathError{Path: rel, Err: ErrOutside}
	}
	c := path.Clean(slashed)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", &PathError{Path: rel, Err: ErrOutside}
	}
	return c, nil
}

// walk resolves parts below base, the components of a link-free folder path. link and target
// are the symlink whose target parts is ("" for the path asked for), for errors.
func (r *Repo) walk(base, parts []string, asked, link, target string, links *int) ([]string, error) {
	base = slices.Clip(base) // appends below must not write into the caller's array
	for _, p := range parts {
		switch p {
		case "", ".":
			continue
		case "..":
			if len(base) == 0 {
				if link == "" {
					return nil, &PathError{Path: asked, Err: ErrOutside}
				}
				return nil, &LinkError{Path: asked, Link: link, Target: target, Err: ErrOutside}
			}
			base = base[: len(base)-1 : len(base)-1]
			continue
		}
		cur := strings.Join(append(slices.Clip(base), p), "/")
		fi, err := r.root.Lstat(cur)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				if link != "" {
					return nil, &LinkError{Path: asked, Link: link, Target: target, Err: ErrDangling}
				}
				return nil, &PathError{Path: asked, Err: fs.ErrNotExist}
			}
			return nil, fmt.Errorf("%q: %w", asked, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			base = append(base, p)
			continue
		}
		*links++
		if *links > maxLinks {
			return nil, &LinkError{Path: asked, Link: cur, Err: ErrLinkLoop}
		}
		t, err := r.root.Readlink(cur)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", asked, err)
		}
		if t == "" || path.IsAbs(t) || strings.ContainsRune(t, 0) {
			return nil, &LinkError{Path: asked, Link: cur, Target: t, Err: ErrOutside}
		}
		if base, err = r.walk(base, strings.Split(t, "/"), asked, cur, t, links); err != nil {
			return nil, err
		}
	}
	return base, nil
}

// Stat describes what rel names, symlinks followed inside the repository.
func (r *Repo) Stat(rel string) (fs.FileInfo, error) {
	real, err := r.Resolve(rel)
	if err != nil {
		return nil, err
	}
	return r.root.Stat(real)
}

// Open opens the file rel names for reading. O_NONBLOCK keeps a named pipe in a working
// copy from blocking the open; ReadFile then refuses it as not a regular file.
func (r *Repo) Open(rel string) (*os.File, error) {
	real, err := r.Resolve(rel)
	if err != nil {
		return nil, err
	}
	return r.root.OpenFile(real, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
}

// RealPath is the absolute path on disk of what rel names, for tools that take paths (the
// builder). Only the checkout writes the repository, so the path stays what was resolved.
func (r *Repo) RealPath(rel string) (string, error) {
	real, err := r.Resolve(rel)
	if err != nil {
		return "", err
	}
	return filepath.Join(r.dir, filepath.FromSlash(real)), nil
}

// ReadFile reads the regular file rel names. Its size is checked against limit before any
// of it is read, and no more than the limit is read even if it grows.
func (r *Repo) ReadFile(rel string, limit Limit) ([]byte, error) {
	f, err := r.Open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", rel)
	}
	if limit.Max > 0 && fi.Size() > limit.Max {
		return nil, &TooLargeError{File: rel, Size: fi.Size(), Limit: limit}
	}
	rd := io.Reader(f)
	if limit.Max > 0 {
		rd = io.LimitReader(f, limit.Max+1)
	}
	data, err := io.ReadAll(rd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	if limit.Max > 0 && int64(len(data)) > limit.Max {
		return nil, &TooLargeError{File: rel, Size: int64(len(data)), Limit: limit}
	}
	return data, nil
}

// TextLimits bound a text file Slipway renders.
type TextLimits struct {
	File Limit // the whole file
	Line Limit // one line, without its line break
}

// ReadText reads a file to render, refusing it when it or one of its lines is over limits.
func (r *Repo) ReadText(rel string, limits TextLimits) ([]byte, error) {
	data, err := r.ReadFile(rel, limits.File)
	if err != nil {
		return nil, err
	}
	if limits.Line.Max <= 0 {
		return data, nil
	}
	rest := data
	for line := 1; len(rest) > 0; line++ {
		l := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			l, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		if int64(len(bytes.TrimSuffix(l, []byte("\r")))) > limits.Line.Max {
			return nil, &TooLargeError{File: rel, Line: line, Size: int64(len(l)), Limit: limits.Line}
		}
	}
	return data, nil
}
