package builder

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/patternmatcher"

	"github.com/slipwayhq/slipway/render"
)

// item is one file, folder or link under a COPY source. rel is its path below the
// matched source ("" for the source itself when it is a file).
type item struct {
	rel  string
	hdr  tar.Header // Typeflag, Mode, Size, Linkname, Uid, Gid
	open func() (io.ReadCloser, error)
}

// tree is one matched COPY source: a file (one item, rel "") or a folder's contents.
type tree struct {
	name  string // the source as matched, for messages and the base name
	isDir bool
	items []item
}

// contextSource is the build context on disk, seen through .dockerignore.
type contextSource struct {
	dir    string // real path
	ignore *patternmatcher.PatternMatcher
}

func hasWildcard(p string) bool { return strings.ContainsAny(p, "*?[") }

// match resolves a COPY source. Every match must stay inside the context, symlinks
// included; links below a matched folder are copied as links, never followed.
func (c contextSource) match(src string) ([]tree, error) {
	rel := strings.TrimPrefix(path.Clean("/"+filepath.ToSlash(src)), "/")
	if rel == "" {
		rel = "."
	}
	if s := strings.TrimLeft(filepath.ToSlash(src), "/"); s != "" && path.Clean(s) != "." && !filepath.IsLocal(s) {
		return nil, fmt.Errorf("source %q: leaves the build context", src)
	}
	rels := []string{rel}
	if hasWildcard(rel) {
		found, err := filepath.Glob(filepath.Join(c.dir, filepath.FromSlash(rel)))
		if err != nil {
			return nil, fmt.Errorf("source %q: %w", src, err)
		}
		rels = rels[:0]
		for _, f := range found {
			r, err := filepath.Rel(c.dir, f)
			if err != nil {
				return nil, err
			}
			if ok, _ := c.ignored(filepath.ToSlash(r)); !ok {
				rels = append(rels, filepath.ToSlash(r))
			}
		}
		if len(rels) == 0 {
			return nil, fmt.Errorf("source %q: no files match in the build context", src)
		}
	} else if ok, err := c.ignored(rel); err != nil {
		return nil, err
	} else if ok {
		return nil, fmt.Errorf("source %q: excluded by .dockerignore", src)
	}
	var out []tree
	for _, r := range rels {
		t, err := c.tree(r)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func (c contextSource) ignored(rel string) (bool, error) {
	if rel == "." {
		return false, nil
	}
	ok, err := c.ignore.MatchesOrParentMatches(rel)
	if err != nil {
		return false, fmt.Errorf(".dockerignore: %w", err)
	}
	return ok, nil
}

func (c contextSource) tree(rel string) (tree, error) {
	real, err := render.InsideRoot(c.dir, filepath.FromSlash(rel))
	if err != nil {
		return tree{}, fmt.Errorf("source %q must stay inside the build context: %w", rel, err)
	}
	info, err := os.Stat(real)
	if err != nil {
		return tree{}, fmt.Errorf("source %q: %w", rel, err)
	}
	if !info.IsDir() {
		it, ok, err := diskItem(real, "", info)
		if err != nil || !ok {
			return tree{}, fmt.Errorf("source %q: not a regular file or folder (%v)", rel, err)
		}
		return tree{name: rel, items: []item{it}}, nil
	}
	t := tree{name: rel, isDir: true}
	err = filepath.WalkDir(real, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == real {
			return nil
		}
		sub, err := filepath.Rel(real, p)
		if err != nil {
			return err
		}
		sub = filepath.ToSlash(sub)
		ig, err := c.ignored(path.Join(rel, sub))
		if err != nil {
			return err
		}
		if ig {
			if d.IsDir() && !c.ignore.Exclusions() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		it, ok, err := diskItem(p, sub, info)
		if err != nil {
			return err
		}
		if ok {
			t.items = append(t.items, it)
		}
		return nil
	})
	if err != nil {
		return tree{}, fmt.Errorf("source %q: %w", rel, err)
	}
	return t, nil
}

// diskItem describes a file of the context; sockets, devices and pipes are left out.
// Owners are root's: the checkout's owners mean nothing inside the image.
func diskItem(p, rel string, info fs.FileInfo) (item, bool, error) {
	h := tar.Header{Mode: unixMode(info.Mode())}
	switch {
	case info.Mode().IsRegular():
		h.Typeflag, h.Size = tar.TypeReg, info.Size()
	case info.IsDir():
		h.Typeflag = tar.TypeDir
	case info.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return item{}, false, err
		}
		h.Typeflag, h.Linkname = tar.TypeSymlink, target
	default:
		return item{}, false, nil
	}
	return item{rel: rel, hdr: h, open: func() (io.ReadCloser, error) { return os.Open(p) }}, true, nil
}

// unixMode converts Go's file mode to the permission and special bits a tar header holds.
func unixMode(m fs.FileMode) int64 {
	out := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		out |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		out |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		out |= 0o1000
	}
	return out
}

// imageSource is a previous stage or another image, for COPY --from.
type imageSource struct {
	img v1.Image
}

// match reads the matching paths out of the image's filesystem. Owners are kept, as
// Docker keeps them when copying between stages.
func (s imageSource) match(src string) ([]tree, error) {
	pattern := cleanAbs(src)
	under := func(name string) (top string, ok bool) {
		parts := strings.Split(name, "/")
		for i := range parts {
			p := strings.Join(parts[:i+1], "/")
			if m, _ := path.Match(pattern, p); m || p == pattern {
				return p, true
			}
		}
		return "", pattern == ""
	}
	files, err := readImageFiles(s.img, func(name string) bool { _, ok := under(name); return ok })
	if err != nil {
		return nil, err
	}
	trees := map[string]*tree{}
	for name, f := range files {
		top, _ := under(name)
		t := trees[top]
		if t == nil {
			t = &tree{name: "/" + top}
			trees[top] = t
		}
		if name == top {
			if f.hdr.Typeflag == tar.TypeDir {
				t.isDir = true
				continue
			}
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(name, top), "/")
		h := tar.Header{Typeflag: f.hdr.Typeflag, Mode: f.hdr.Mode & 0o7777, Size: int64(len(f.data)),
			Linkname: f.hdr.Linkname, Uid: f.hdr.Uid, Gid: f.hdr.Gid}
		if h.Typeflag == tar.TypeRegA {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeLink {
			h.Typeflag = tar.TypeReg // the link's target is copied as its own file
			if tf, ok := files[cleanAbs(f.hdr.Linkname)]; ok {
				f.data = tf.data
				h.Size = int64(len(f.data))
				h.Mode = tf.hdr.Mode & 0o7777
			}
		}
		data := f.data
		t.items = append(t.items, item{rel: rel, hdr: h, open: func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		}})
	}
	if len(trees) == 0 {
		return nil, fmt.Errorf("source %q: not found in the image", src)
	}
	keys := make([]string, 0, len(trees))
	for k := range trees {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]tree, 0, len(keys))
	for _, k := range keys {
		t := *trees[k]
		if !t.isDir && len(t.items) != 1 {
			t.isDir = true // a folder whose own entry the image does not list
		}
		out = append(out, t)
	}
	return out, nil
}
