package builder

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// node is what the native builder needs to know about a path already in an image: its
// kind, so COPY into an existing folder or through a symlink behaves as in Docker, and
// its owner and mode, so new parents are only made where none exist.
type node struct {
	typ      byte
	linkname string
}

// fsIndex is the merged file tree of an image (paths as cleanAbs gives them).
type fsIndex map[string]node

func (ix fsIndex) clone() fsIndex {
	out := make(fsIndex, len(ix))
	for k, v := range ix {
		out[k] = v
	}
	return out
}

// add records what a new layer of ours holds.
func (ix fsIndex) add(files layerFiles) {
	for n, e := range files {
		ix[n] = node{typ: e.hdr.Typeflag, linkname: e.hdr.Linkname}
	}
}

// resolve follows symlinks in every component of p inside the image, as the container
// would see it, so a COPY to /var/run/x writes to /run/x when /var/run links there.
func (ix fsIndex) resolve(p string) string {
	p = cleanAbs(p)
	for hops := 0; hops < 40; hops++ {
		parts := strings.Split(p, "/")
		changed := false
		for i := range parts {
			cur := strings.Join(parts[:i+1], "/")
			n, ok := ix[cur]
			if !ok || n.typ != tar.TypeSymlink {
				continue
			}
			target := n.linkname
			if !path.IsAbs(target) {
				target = path.Join("/", path.Dir("/"+cur), target)
			}
			p = cleanAbs(path.Join(append([]string{target}, parts[i+1:]...)...))
			changed = true
			break
		}
		if !changed {
			return p
		}
	}
	return p
}

func (ix fsIndex) isDir(p string) bool {
	p = ix.resolve(p)
	if p == "" {
		return true
	}
	n, ok := ix[p]
	return ok && n.typ == tar.TypeDir
}

func (ix fsIndex) exists(p string) bool {
	_, ok := ix[ix.resolve(p)]
	return ok || ix.resolve(p) == ""
}

// layerIndexes remembers the headers of base layers by digest, so warm builds on the same
// base do not decompress it again.
type layerIndexes struct {
	mu     sync.Mutex
	layers map[v1.Hash][]tar.Header
}

// index builds the merged tree of img, applying whiteouts layer by layer.
func (c *layerIndexes) index(img v1.Image) (fsIndex, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("list layers: %w", err)
	}
	ix := fsIndex{}
	for _, l := range layers {
		hdrs, err := c.headers(l)
		if err != nil {
			return nil, err
		}
		applyLayer(ix, hdrs)
	}
	return ix, nil
}

func (c *layerIndexes) headers(l v1.Layer) ([]tar.Header, error) {
	d, err := l.Digest()
	if err != nil {
		return nil, fmt.Errorf("layer digest: %w", err)
	}
	c.mu.Lock()
	h, ok := c.layers[d]
	c.mu.Unlock()
	if ok {
		return h, nil
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, fmt.Errorf("read layer %s: %w", d, err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read layer %s: %w", d, err)
		}
		h = append(h, tar.Header{Name: hdr.Name, Typeflag: hdr.Typeflag, Linkname: hdr.Linkname})
	}
	c.mu.Lock()
	if c.layers == nil {
		c.layers = map[v1.Hash][]tar.Header{}
	}
	c.layers[d] = h
	c.mu.Unlock()
	return h, nil
}

const whiteoutPrefix, opaqueMarker = ".wh.", ".wh..wh..opq"

func applyLayer(ix fsIndex, hdrs []tar.Header) {
	lower := ix.clone()
	for _, h := range hdrs {
		name := cleanAbs(h.Name)
		dir, base := path.Split(name)
		dir = strings.TrimSuffix(dir, "/")
		switch {
		case base == opaqueMarker:
			removeBelow(ix, lower, dir)
		case strings.HasPrefix(base, whiteoutPrefix):
			victim := path.Join(dir, strings.TrimPrefix(base, whiteoutPrefix))
			delete(ix, victim)
			removeBelow(ix, lower, victim)
		default:
			typ := h.Typeflag
			if typ == tar.TypeRegA {
				typ = tar.TypeReg
			}
			ix[name] = node{typ: typ, linkname: h.Linkname}
		}
	}
}

// removeBelow drops what lower layers hold under dir (this layer's own entries stay).
func removeBelow(ix, lower fsIndex, dir string) {
	prefix := dir + "/"
	if dir == "" {
		prefix = ""
	}
	for n := range lower {
		if strings.HasPrefix(n, prefix) && n != dir {
			delete(ix, n)
		}
	}
}

// memFile is a file read out of an image, for COPY --from and /etc/passwd look-ups.
type memFile struct {
	hdr  tar.Header
	data []byte
}

// readImageFiles returns the entries of img's merged filesystem that want accepts.
func readImageFiles(img v1.Image, want func(name string) bool) (map[string]memFile, error) {
	rc := mutate.Extract(img)
	defer rc.Close()
	out := map[string]memFile{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read image filesystem: %w", err)
		}
		name := cleanAbs(hdr.Name)
		if !want(name) {
			continue
		}
		var buf bytes.Buffer
		if hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeRegA {
			if _, err := io.Copy(&buf, tr); err != nil {
				return nil, fmt.Errorf("read /%s from image: %w", name, err)
			}
		}
		h := *hdr
		h.Name = name
		out[name] = memFile{hdr: h, data: buf.Bytes()}
	}
}
