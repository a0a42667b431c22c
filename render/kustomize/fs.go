package kustomize

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/slipwayhq/slipway/internal/repofs"
)

// root is where the checkout appears to kustomize. It is not a folder of the host: every
// path below it is read through repofs, and every path outside it is refused, so a
// kustomization cannot reach past the checkout (a "../" too many, a symlink out).
const root = "/checkout"

// ErrReadOnly: kustomize tried to write. A build only reads.
var ErrReadOnly = errors.New("the checkout is read-only to kustomize")

// repoFS is the checkout as kustomize's file system (filesys.FileSystem): reads go through
// repofs (symlinks followed only inside, sizes within the repository's limits), each file
// read is checked for what Slipway refuses before kustomize acts on it, and nothing is
// written. It is used by one build at a time.
type repoFS struct {
	repo   *repofs.Repo
	limits repofs.TextLimits
	read   []string // files read, from the repository root, in order, once each
	// refused is the first read refused for a reason other than absence: kustomize folds
	// some read errors into its own ("missing kustomization"), so the build reports this.
	refused error
}

func newRepoFS(repo *repofs.Repo, limits repofs.TextLimits) *repoFS {
	return &repoFS{repo: repo, limits: limits}
}

// rel maps a path kustomize asks for to one from the repository root.
func (f *repoFS) rel(p string) (string, error) {
	p = filepath.ToSlash(p)
	if !path.IsAbs(p) {
		p = path.Join(root, p)
	}
	p = path.Clean(p)
	switch {
	case p == root:
		return ".", nil
	case strings.HasPrefix(p, root+"/"):
		return p[len(root)+1:], nil
	}
	out, err := filepath.Rel(root, p) // how far out, as the kustomization wrote it
	if err != nil {
		out = p
	}
	return "", &repofs.PathError{Path: filepath.ToSlash(out), Err: repofs.ErrOutside}
}

// abs is the path kustomize sees for a path from the repository root.
func abs(rel string) string { return path.Join(root, rel) }

// note remembers the first refusal that is not a plain "does not exist".
func (f *repoFS) note(err error) error {
	if err != nil && f.refused == nil && !errors.Is(err, fs.ErrNotExist) {
		f.refused = err
	}
	return err
}

func (f *repoFS) stat(p string) (fs.FileInfo, string, error) {
	rel, err := f.rel(p)
	if err != nil {
		return nil, "", f.note(err)
	}
	real, err := f.repo.Resolve(rel)
	if err != nil {
		return nil, "", f.note(err)
	}
	fi, err := f.repo.Stat(real)
	if err != nil {
		return nil, "", err
	}
	return fi, real, nil
}

// CleanedAbs resolves p as the loader's root-only restrictor needs it: the real folder
// (symlinks resolved, inside the checkout) and the file name, empty for a folder.
func (f *repoFS) CleanedAbs(p string) (filesys.ConfirmedDir, string, error) {
	fi, real, err := f.stat(p)
	if err != nil {
		return "", "", err
	}
	if fi.IsDir() {
		return filesys.ConfirmedDir(abs(real)), "", nil
	}
	return filesys.ConfirmedDir(abs(path.Dir(real))), path.Base(real), nil
}

func (f *repoFS) Exists(p string) bool {
	_, _, err := f.stat(p)
	return err == nil
}

func (f *repoFS) IsDir(p string) bool {
	fi, _, err := f.stat(p)
	return err == nil && fi.IsDir()
}

func (f *repoFS) ReadDir(p string) ([]string, error) {
	rel, err := f.rel(p)
	if err != nil {
		return nil, f.note(err)
	}
	names, err := f.repo.ReadDir(rel)
	return names, f.note(err)
}

// ReadFile reads a file within the repository's limits. A kustomization, or a generator or
// transformer configuration, is checked (check.go) before kustomize gets it, so a remote
// base or a Helm chart is refused before kustomize could fetch or run anything.
func (f *repoFS) ReadFile(p string) ([]byte, error) {
	rel, err := f.rel(p)
	if err != nil {
		return nil, f.note(err)
	}
	data, err := f.repo.ReadText(rel, f.limits)
	if err != nil {
		return nil, f.note(err)
	}
	if slices.Contains(konfig.RecognizedKustomizationFileNames(), path.Base(rel)) {
		err = checkKustomization(rel, data)
	} else {
		err = checkConfig(rel, data)
	}
	if err != nil {
		return nil, f.note(err)
	}
	if !slices.Contains(f.read, rel) {
		f.read = append(f.read, rel)
	}
	return data, nil
}

func (f *repoFS) Open(p string) (filesys.File, error) {
	data, err := f.ReadFile(p)
	if err != nil {
		return nil, err
	}
	return &memFile{Reader: bytes.NewReader(data), name: path.Base(p), size: int64(len(data))}, nil
}

// Glob matches the last element of pattern in its folder, as kustomize's callers use it.
func (f *repoFS) Glob(pattern string) ([]string, error) {
	dir, base := path.Split(filepath.ToSlash(pattern))
	if strings.ContainsAny(dir, `*?[\`) {
		return nil, fmt.Errorf("glob %q: patterns are supported in the last path element only", pattern)
	}
	names, err := f.ReadDir(dir)
	if err != nil {
		return nil, nil // filepath.Glob: a folder that cannot be read matches nothing
	}
	var out []string
	for _, n := range names {
		if ok, err := path.Match(base, n); err != nil {
			return nil, err
		} else if ok && (!strings.HasPrefix(n, ".") || strings.HasPrefix(base, ".")) {
			out = append(out, path.Join(dir, n))
		}
	}
	return out, nil
}

func (f *repoFS) Walk(p string, fn filepath.WalkFunc) error {
	fi, _, err := f.stat(p)
	if err != nil {
		return fn(p, nil, err)
	}
	if err := fn(p, fi, nil); err != nil || !fi.IsDir() {
		if errors.Is(err, filepath.SkipDir) {
			return nil
		}
		return err
	}
	names, err := f.ReadDir(p)
	if err != nil {
		return fn(p, fi, err)
	}
	for _, n := range names {
		if err := f.Walk(path.Join(p, n), fn); err != nil && !errors.Is(err, filepath.SkipDir) {
			return err
		}
	}
	return nil
}

func (f *repoFS) Create(string) (filesys.File, error) { return nil, ErrReadOnly }
func (f *repoFS) Mkdir(string) error                  { return ErrReadOnly }
func (f *repoFS) MkdirAll(string) error               { return ErrReadOnly }
func (f *repoFS) RemoveAll(string) error              { return ErrReadOnly }
func (f *repoFS) WriteFile(string, []byte) error      { return ErrReadOnly }

// memFile is a file already read, as Open returns it.
type memFile struct {
	*bytes.Reader
	name string
	size int64
}

func (m *memFile) Write([]byte) (int, error) { return 0, ErrReadOnly }
func (m *memFile) Close() error              { return nil }
func (m *memFile) Stat() (os.FileInfo, error) {
	return fileInfo{name: m.name, size: m.size}, nil
}

type fileInfo struct {
	name string
	size int64
}

func (i fileInfo) Name() string       { return i.name }
func (i fileInfo) Size() int64        { return i.size }
func (i fileInfo) Mode() fs.FileMode  { return 0o444 }
func (i fileInfo) ModTime() time.Time { return time.Time{} }
func (i fileInfo) IsDir() bool        { return false }
func (i fileInfo) Sys() any           { return nil }
