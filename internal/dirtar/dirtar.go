// Package dirtar moves a folder through a tar stream: Pack writes a folder's tree, Sync makes
// a folder hold exactly the tree a tar stream carries (files written or changed, and those
// missing from the stream removed). Script executors use it to send a run's workspace to
// where a script runs and to bring back what the script changed.
//
// The stream on the way back is untrusted (a script made it): every path is confined to the
// folder with os.Root, so neither ".." nor a symbolic link can lead a write outside.
package dirtar

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Pack writes dir's tree to w as a tar stream: folders, regular files and symbolic links
// (as links, never followed), with their modes and modification times, owned by root, names
// relative to dir. Other kinds of files (sockets, devices, pipes) are left out.
func Pack(ctx context.Context, dir string, w io.Writer) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		case info.IsDir(), info.Mode().IsRegular():
		default:
			return nil
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	return nil
}

// PathError reports an entry of a stream that Sync refuses.
type PathError struct {
	Name   string
	Reason string
}

func (e *PathError) Error() string { return fmt.Sprintf("tar entry %q: %s", e.Name, e.Reason) }

// ErrPath is matched by every *PathError (errors.Is).
var ErrPath = errors.New("bad tar entry")

// Is makes errors.Is(err, ErrPath) match.
func (e *PathError) Is(target error) bool { return target == ErrPath }

// Options tune Sync.
type Options struct {
	// Prefix: only entries under this folder of the stream are the tree ("workspace/"); the
	// others go to Other. Empty: every entry is.
	Prefix string
	// Other receives the entries outside Prefix (with their content readable from r).
	Other func(hdr *tar.Header, r io.Reader) error
}

// Sync makes dir hold exactly the tree in the tar stream r: folders made, files and links
// written where they are new or differ (size, mode or modification time to the second, as
// rsync's quick check), and everything in dir that the stream does not name removed. dir
// must exist.
func Sync(ctx context.Context, dir string, r io.Reader, opts Options) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer root.Close()
	s := &syncer{root: root, seen: map[string]bool{".": true}}
	tr := tar.NewReader(r)
	var dirTimes []*tar.Header
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("sync %s: %w", dir, err)
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("sync %s: read tar: %w", dir, err)
		}
		name, inTree, err := entryName(hdr.Name, opts.Prefix)
		if err != nil {
			return fmt.Errorf("sync %s: %w", dir, err)
		}
		if !inTree {
			if opts.Other != nil {
				if err := opts.Other(hdr, tr); err != nil {
					return fmt.Errorf("sync %s: %w", dir, err)
				}
			}
			continue
		}
		if name == "." {
			continue
		}
		if err := s.apply(name, hdr, tr); err != nil {
			return fmt.Errorf("sync %s: %s: %w", dir, name, err)
		}
		if hdr.Typeflag == tar.TypeDir {
			h := *hdr
			h.Name = name
			dirTimes = append(dirTimes, &h)
		}
	}
	if err := s.removeUnseen("."); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	// Folder times last: writing into a folder moves its time.
	for i := len(dirTimes) - 1; i >= 0; i-- {
		h := dirTimes[i]
		_ = root.Chtimes(h.Name, h.ModTime, h.ModTime)
	}
	return nil
}

// entryName turns a stream's entry name into a slash path relative to the tree ("." for
// its top), reporting whether it is in the tree at all.
func entryName(raw, prefix string) (string, bool, error) {
	if strings.ContainsRune(raw, 0) {
		return "", false, &PathError{Name: raw, Reason: "the name holds a NUL byte"}
	}
	name := strings.TrimPrefix(raw, "./")
	if prefix != "" {
		p := strings.TrimSuffix(prefix, "/")
		switch {
		case strings.TrimSuffix(name, "/") == p:
			return ".", true, nil
		case strings.HasPrefix(name, p+"/"):
			name = name[len(p)+1:]
		default:
			return "", false, nil
		}
	}
	name = strings.TrimSuffix(name, "/")
	if name == "" || name == "." {
		return ".", true, nil
	}
	if !filepath.IsLocal(filepath.FromSlash(name)) || path.Clean(name) != name {
		return "", false, &PathError{Name: raw, Reason: "the path leaves the folder or is not clean"}
	}
	return name, true, nil
}

type syncer struct {
	root *os.Root
	seen map[string]bool
}

func (s *syncer) apply(name string, hdr *tar.Header, r io.Reader) error {
	// Parents are in the tree too (tar lists them first; a stream may omit them).
	for p := path.Dir(name); p != "."; p = path.Dir(p) {
		s.seen[p] = true
	}
	s.seen[name] = true
	mode := fs.FileMode(hdr.Mode) & fs.ModePerm
	cur, err := s.root.Lstat(name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if cur != nil && !cur.IsDir() {
			if err := s.root.Remove(name); err != nil {
				return err
			}
			cur = nil
		}
		if cur == nil {
			if err := s.root.MkdirAll(name, 0o755); err != nil {
				return err
			}
		}
		return s.root.Chmod(name, mode|0o700)
	case tar.TypeReg:
		if cur != nil && cur.Mode().IsRegular() && cur.Size() == hdr.Size && cur.Mode().Perm() == mode &&
			cur.ModTime().Unix() == hdr.ModTime.Unix() {
			return nil // unchanged by rsync's quick check
		}
		if err := s.clear(name, cur); err != nil {
			return err
		}
		return s.writeFile(name, mode, hdr.ModTime, r)
	case tar.TypeSymlink:
		if cur != nil && cur.Mode()&fs.ModeSymlink != 0 {
			if target, err := s.root.Readlink(name); err == nil && target == hdr.Linkname {
				return nil
			}
		}
		if err := s.clear(name, cur); err != nil {
			return err
		}
		return s.root.Symlink(hdr.Linkname, name)
	case tar.TypeLink:
		old, inTree, err := entryName(hdr.Linkname, "")
		if err != nil || !inTree || old == "." {
			return &PathError{Name: hdr.Name, Reason: "a hard link to " + hdr.Linkname}
		}
		if err := s.clear(name, cur); err != nil {
			return err
		}
		return s.root.Link(old, name)
	default:
		// Devices, pipes and the like have no place in a workspace.
		return nil
	}
}

// clear removes what is at name (a file, link or folder) before something else takes it.
func (s *syncer) clear(name string, cur fs.FileInfo) error {
	if cur == nil {
		return nil
	}
	if cur.IsDir() {
		return s.root.RemoveAll(name)
	}
	return s.root.Remove(name)
}

func (s *syncer) writeFile(name string, mode fs.FileMode, mtime time.Time, r io.Reader) error {
	f, err := s.root.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// The creation mode went through the umask.
	if err := s.root.Chmod(name, mode); err != nil {
		return err
	}
	return s.root.Chtimes(name, mtime, mtime)
}

// removeUnseen removes, under folder dir, everything the stream did not name.
func (s *syncer) removeUnseen(dir string) error {
	f, err := s.root.Open(dir)
	if err != nil {
		return err
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		name := path.Join(dir, e.Name())
		if !s.seen[name] {
			if err := s.root.RemoveAll(name); err != nil {
				return err
			}
			continue
		}
		if e.IsDir() { // not a link to a folder: DirEntry does not follow links
			if err := s.removeUnseen(name); err != nil {
				return err
			}
		}
	}
	return nil
}
