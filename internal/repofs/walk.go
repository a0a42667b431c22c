package repofs

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// Files lists the files at rel: rel itself when it names a file, or every file below the
// folder it names, walked recursively. Paths are as reached from the root (through
// symlinked folders too), sorted. Symlinks are followed while they stay inside the
// repository; one that does not is an error naming it, never skipped. Entries whose name
// starts with "." are left out unless hidden is set.
func (r *Repo) Files(rel string, hidden bool) ([]string, error) {
	clean, err := local(rel)
	if err != nil {
		return nil, err
	}
	real, err := r.Resolve(clean)
	if err != nil {
		return nil, err
	}
	fi, err := r.root.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", rel, err)
	}
	if !fi.IsDir() {
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: not a regular file", clean)
		}
		return []string{clean}, nil
	}
	var out []string
	if err := r.walkDir(clean, real, hidden, map[string]bool{}, &out); err != nil {
		return nil, err
	}
	slices.Sort(out)
	return out, nil
}

// walkDir adds the files below the folder reached as asked (really at real). open holds the
// real folders being walked, so a symlink back to one of them is caught, not followed forever.
func (r *Repo) walkDir(asked, real string, hidden bool, open map[string]bool, out *[]string) error {
	if open[real] {
		return fmt.Errorf("%q: a symlink leads back to the folder %q holding it", asked, real)
	}
	open[real] = true
	defer delete(open, real)
	entries, err := fs.ReadDir(r.root.FS(), real)
	if err != nil {
		return fmt.Errorf("%q: %w", asked, err)
	}
	for _, e := range entries {
		if !hidden && strings.HasPrefix(e.Name(), ".") {
			continue
		}
		child := path.Join(asked, e.Name())
		childReal := path.Join(real, e.Name())
		mode := e.Type()
		if mode&fs.ModeSymlink != 0 {
			if childReal, err = r.Resolve(child); err != nil {
				return err
			}
			fi, err := r.root.Stat(childReal)
			if err != nil {
				return fmt.Errorf("%q: %w", child, err)
			}
			mode = fi.Mode().Type()
		}
		switch {
		case mode.IsDir():
			if err := r.walkDir(child, childReal, hidden, open, out); err != nil {
				return err
			}
		case mode.IsRegular():
			*out = append(*out, child)
		default:
			return fmt.Errorf("%s: not a regular file or folder", child)
		}
	}
	return nil
}

// manifestExts are the file types a manifest folder may hold.
var manifestExts = map[string]bool{".yaml": true, ".yml": true, ".json": true}

// ErrNotManifest: a manifest folder holds a file that is not a manifest.
var ErrNotManifest = errors.New("not a manifest (want .yaml, .yml or .json)")

// Manifests lists the manifest files a deploy-yaml path names: the file itself, or every
// file of the folder and its subfolders except those whose name starts with "." (a folder
// holding anything but .yaml, .yml and .json files, or none of them, is refused). Both
// `slipway validate` and runs list manifests with it.
func (r *Repo) Manifests(rel string) ([]string, error) {
	fi, err := r.Stat(rel)
	if err != nil {
		return nil, err
	}
	files, err := r.Files(rel, false)
	if err != nil || !fi.IsDir() {
		return files, err
	}
	for _, f := range files {
		if !manifestExts[strings.ToLower(path.Ext(f))] {
			return nil, fmt.Errorf("%s: %w", f, ErrNotManifest)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("folder %q has no .yaml, .yml or .json files", rel)
	}
	return files, nil
}

// ReadDir lists the names in the folder rel names (symlinks on the way followed inside the
// repository), sorted; the entries themselves are not resolved.
func (r *Repo) ReadDir(rel string) ([]string, error) {
	real, err := r.Resolve(rel)
	if err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(r.root.FS(), real)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", rel, err)
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names, nil
}
