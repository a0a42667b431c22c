package sources

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// defaultCompactAt is how many packs a mirror may hold before they are merged: git's own
// gc.autoPackLimit. Every fetch writes a pack and go-git merges none, while each object
// lookup and each open of the mirror reads every pack's index.
const defaultCompactAt = 50

// packWindow is how many objects the merge compares each object with for a delta: git's
// pack.window.
const packWindow = 10

// compactAfter merges the mirror's packs if there are too many (compact), after a call that
// succeeded: whatever fetched into it, this process or another. A failed merge leaves the
// mirror as it was, to be merged after a later call.
func (m *Mirrors) compactAfter(repo Repo) {
	start := time.Now()
	merged, err := m.compact(m.dir(repo))
	log := m.logFor(repo).WithField("duration", time.Since(start).Round(time.Millisecond).String())
	switch {
	case err != nil:
		log.WithError(err).Warn("merge the mirror's packs; trying again after a later fetch")
	case merged > 0:
		log.WithField("packs", merged).Info("merged the mirror's packs")
	}
}

// pack is one pack file of a mirror.
type pack struct {
	hash plumbing.Hash
	size int64
}

// compact merges the mirror's packs into one when it holds more than m.compactAt of them,
// as `git gc --auto` does after git's own fetches: all but the largest, which is usually
// the first fetch and would make every merge cost a rewrite of the whole mirror. Every
// object of the merged packs is kept, reachable or not: a mirror is shallow, which go-git's
// RepackObjects cannot walk, and a prefetched commit no ref names must stay. The merged packs
// are removed only once the new one is written whole, so a crash in between leaves objects
// twice, not missing. Callers hold the mirror's lock; the kept handle's index names the
// removed packs, so it is dropped.
func (m *Mirrors) compact(dir string) (merged int, err error) {
	packs, err := packFiles(dir)
	if err != nil || len(packs) <= m.compactAt {
		return 0, err
	}
	for i := range packs {
		fi, err := os.Stat(packs[i].path(dir, ".pack"))
		if err != nil {
			return 0, err
		}
		packs[i].size = fi.Size()
	}
	slices.SortFunc(packs, func(a, b pack) int { return cmp.Compare(b.size, a.size) })
	merge := packs[1:]
	hashes, err := packedObjects(dir, merge)
	if err != nil {
		return 0, err
	}
	m.forget(dir)
	st := filesystem.NewStorage(mirrorFS(dir), cache.NewObjectLRUDefault())
	w, err := st.PackfileWriter()
	if err != nil {
		return 0, err
	}
	written, err := packfile.NewEncoder(w, st, false).Encode(hashes, packWindow)
	// Closing the writer indexes the pack and moves it into place: it is not there before.
	if err = errors.Join(err, w.Close()); err != nil {
		return 0, fmt.Errorf("write the merged pack: %w", err)
	}
	for _, p := range merge {
		if p.hash == written {
			continue
		}
		if err := st.DeleteOldObjectPackAndIndex(p.hash, time.Time{}); err != nil {
			return 0, fmt.Errorf("remove a merged pack: %w", err)
		}
	}
	return len(merge), nil
}

func (p pack) path(dir, ext string) string {
	return filepath.Join(dir, "objects", "pack", "pack-"+p.hash.String()+ext)
}

// packFiles lists a mirror's pack files (their sizes unknown): the check after every call
// costs one read of the folder.
func packFiles(dir string) ([]pack, error) {
	entries, err := os.ReadDir(filepath.Join(dir, "objects", "pack"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var packs []pack
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".pack")
		if !ok || !strings.HasPrefix(name, "pack-") {
			continue
		}
		packs = append(packs, pack{hash: plumbing.NewHash(strings.TrimPrefix(name, "pack-"))})
	}
	return packs, nil
}

// packedObjects names every object in the packs, each once, from their indexes.
func packedObjects(dir string, packs []pack) ([]plumbing.Hash, error) {
	seen := map[plumbing.Hash]bool{}
	var hashes []plumbing.Hash
	for _, p := range packs {
		idx, err := readIndex(p.path(dir, ".idx"))
		if err != nil {
			return nil, err
		}
		iter, err := idx.Entries()
		if err != nil {
			return nil, err
		}
		for {
			e, err := iter.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				iter.Close()
				return nil, err
			}
			if !seen[e.Hash] {
				seen[e.Hash] = true
				hashes = append(hashes, e.Hash)
			}
		}
		iter.Close()
	}
	return hashes, nil
}

func readIndex(path string) (*idxfile.MemoryIndex, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	idx := idxfile.NewMemoryIndex()
	if err := idxfile.NewDecoder(newIndexReader(f, info)).Decode(idx); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return idx, nil
}
