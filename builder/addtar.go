package builder

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// unpackTree turns a local archive (tar, optionally gzip, bzip2 or zstd compressed) into
// the tree ADD extracts into its destination. ok is false when the file is no archive,
// in which case ADD copies it like COPY. Entries that would land outside the destination
// are refused.
func unpackTree(t tree) (out tree, ok bool, err error) {
	if t.isDir || len(t.items) != 1 || t.items[0].hdr.Typeflag != tar.TypeReg {
		return t, false, nil
	}
	rc, err := t.items[0].open()
	if err != nil {
		return t, false, err
	}
	defer rc.Close()
	br := bufio.NewReader(rc)
	magic, _ := br.Peek(512)
	var r io.Reader
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		gz, err := gzip.NewReader(br)
		if err != nil {
			return t, false, fmt.Errorf("ADD %s: %w", t.name, err)
		}
		r = gz
	case bytes.HasPrefix(magic, []byte("BZh")):
		r = bzip2.NewReader(br)
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return t, false, fmt.Errorf("ADD %s: %w", t.name, err)
		}
		defer zr.Close()
		r = zr
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return t, false, fmt.Errorf("ADD %s: xz archives are not supported by the native builder; use gzip, bzip2 or zstd, or the buildkit builder", t.name)
	case len(magic) >= 262 && string(magic[257:262]) == "ustar":
		r = br
	default:
		return t, false, nil
	}
	out = tree{name: t.name, isDir: true}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, true, nil
		}
		if err != nil {
			return t, false, fmt.Errorf("ADD %s: read archive: %w", t.name, err)
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "/"))
		if name == "." {
			continue
		}
		if name == ".." || strings.HasPrefix(name, "../") {
			return t, false, fmt.Errorf("ADD %s: archive entry %q leaves the destination", t.name, hdr.Name)
		}
		h := tar.Header{Typeflag: hdr.Typeflag, Mode: hdr.Mode & 0o7777, Linkname: hdr.Linkname, Uid: hdr.Uid, Gid: hdr.Gid}
		var data []byte
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeRegA:
			h.Typeflag = tar.TypeReg
			if data, err = io.ReadAll(tr); err != nil {
				return t, false, fmt.Errorf("ADD %s: read %s: %w", t.name, name, err)
			}
			h.Size = int64(len(data))
		case tar.TypeLink:
			ln := path.Clean(strings.TrimPrefix(hdr.Linkname, "/"))
			if ln == ".." || strings.HasPrefix(ln, "../") {
				return t, false, fmt.Errorf("ADD %s: hard link %q leaves the destination", t.name, hdr.Name)
			}
			h.Linkname = ln
		case tar.TypeDir, tar.TypeSymlink:
		default:
			continue // devices and fifos have no place in an image built without root
		}
		out.items = append(out.items, item{rel: name, hdr: h, open: func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		}})
	}
}
