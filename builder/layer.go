package builder

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is the time stamped on every file, config and history entry the native builder
// writes, so the same inputs give the same bytes and the registry already has the layers.
func epoch() time.Time { return time.Unix(0, 0).UTC() }

// entry is one file, folder or link of a layer being made. Name is absolute-free: a clean
// path without the leading slash.
type entry struct {
	hdr  tar.Header
	open func() (io.ReadCloser, error) // regular files only
}

// layerFiles collects what one instruction adds, last write of a path wins (as in a
// container filesystem).
type layerFiles map[string]entry

func (l layerFiles) put(e entry) { l[e.hdr.Name] = e }

// write makes a reproducible layer: entries sorted by name (parents first), fixed times,
// no user or group names, so unchanged inputs give the same digest. The uncompressed tar
// goes to a file in dir rather than memory, since contexts can be large.
func (l layerFiles) write(dir string, mt types.MediaType) (v1.Layer, error) {
	names := make([]string, 0, len(l))
	for n := range l {
		names = append(names, n)
	}
	sort.Strings(names)
	f, err := os.CreateTemp(dir, "layer-*.tar")
	if err != nil {
		return nil, fmt.Errorf("create layer file: %w", err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, n := range names {
		if err := writeEntry(tw, l[n]); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("write layer: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write layer: %w", err)
	}
	p := f.Name()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return os.Open(p) }, tarball.WithMediaType(mt))
}

func writeEntry(tw *tar.Writer, e entry) error {
	h := e.hdr
	h.ModTime, h.AccessTime, h.ChangeTime = epoch(), time.Time{}, time.Time{}
	h.Uname, h.Gname = "", ""
	h.PAXRecords, h.Xattrs = nil, nil //nolint:staticcheck // cleared so host xattrs never leak in
	h.Format = tar.FormatUnknown
	if h.Typeflag == tar.TypeDir {
		h.Name += "/"
	}
	if h.Typeflag != tar.TypeReg {
		h.Size = 0
	}
	if err := tw.WriteHeader(&h); err != nil {
		return fmt.Errorf("layer entry /%s: %w", e.hdr.Name, err)
	}
	if h.Typeflag != tar.TypeReg {
		return nil
	}
	rc, err := e.open()
	if err != nil {
		return fmt.Errorf("layer entry /%s: %w", e.hdr.Name, err)
	}
	defer rc.Close()
	n, err := io.Copy(tw, io.LimitReader(rc, h.Size))
	if err != nil {
		return fmt.Errorf("layer entry /%s: %w", e.hdr.Name, err)
	}
	if n != h.Size {
		return fmt.Errorf("layer entry /%s: file changed while building (%d of %d bytes)", e.hdr.Name, n, h.Size)
	}
	return nil
}

// cleanAbs turns an image path into the form layer entries use: clean, no leading slash;
// the root is "".
func cleanAbs(p string) string {
	p = path.Clean("/" + p)
	if p == "/" {
		return ""
	}
	return p[1:]
}
