package builder

import (
	"archive/tar"
	"fmt"
	"path"
	"strings"
)

// owner is a --chown result; nil keeps the sources' owners (root for the context).
type owner struct{ uid, gid int }

// copyPlan says where one COPY or ADD puts its sources.
type copyPlan struct {
	dest    string // as written, after variable expansion
	workdir string
	chown   *owner
	chmod   *int64
}

// place turns matched sources into the files of one layer, following Docker's rules:
// a folder's contents go into dest; a file goes to dest, or into it when dest ends in "/",
// is an existing folder, or there are several sources. Missing parents are created
// (0755, owned as --chown says); existing ones are left alone so their modes survive.
func (p copyPlan) place(trees []tree, ix fsIndex) (layerFiles, error) {
	dest := p.dest
	if !path.IsAbs(dest) {
		dest = path.Join("/", p.workdir, dest)
	}
	intoDir := strings.HasSuffix(p.dest, "/") || strings.HasSuffix(p.dest, "/.") || p.dest == "."
	if len(trees) > 1 && !intoDir {
		return nil, fmt.Errorf("destination %q must be a folder ending in / when copying several sources", p.dest)
	}
	base := ix.resolve(dest)
	files := layerFiles{}
	for _, t := range trees {
		root := base
		if !t.isDir && (intoDir || len(trees) > 1 || ix.isDir(base)) {
			root = cleanAbs(path.Join(base, path.Base(t.name)))
		}
		if t.isDir {
			p.mkdirs(files, ix, root)
		} else {
			p.mkdirs(files, ix, cleanAbs(path.Dir("/"+root)))
		}
		for _, it := range t.items {
			e := entry{hdr: it.hdr, open: it.open}
			e.hdr.Name = cleanAbs(path.Join(root, it.rel))
			if e.hdr.Name == "" {
				continue // the root folder is never replaced
			}
			if p.chown != nil {
				e.hdr.Uid, e.hdr.Gid = p.chown.uid, p.chown.gid
			}
			if p.chmod != nil && e.hdr.Typeflag != tar.TypeSymlink {
				e.hdr.Mode = *p.chmod
			}
			if e.hdr.Typeflag == tar.TypeLink {
				e.hdr.Linkname = cleanAbs(path.Join(root, e.hdr.Linkname))
			}
			files.put(e)
		}
	}
	return files, nil
}

// mkdirs adds dir and its missing parents as folders.
func (p copyPlan) mkdirs(files layerFiles, ix fsIndex, dir string) {
	if dir == "" {
		return
	}
	parts := strings.Split(dir, "/")
	for i := range parts {
		d := strings.Join(parts[:i+1], "/")
		if _, ok := files[d]; ok || ix.exists(d) {
			continue
		}
		h := tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755}
		if p.chown != nil {
			h.Uid, h.Gid = p.chown.uid, p.chown.gid
		}
		files.put(entry{hdr: h})
	}
}
