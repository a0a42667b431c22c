package sources

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-billy/v5/osfs"
)

// mirrorFS is the filesystem a mirror's go-git storage works on: the mirror's folder, with
// its pack indexes (objects/pack/*.idx) read and written through buffers. go-git decodes
// and encodes an index four bytes at a time straight on the file (its 256-entry fan-out
// alone is 256 reads), so every look that opened a mirror or stored a fetched pack made
// hundreds of system calls per index; a push to a thousand repositories made hundreds of
// thousands. The files are the same; only the calls change.
func mirrorFS(dir string) billy.Filesystem { return packIndexFS{osfs.New(dir)} }

type packIndexFS struct{ billy.Filesystem }

// A pack index (about 28 bytes an object) is read through a buffer of its own size up to
// maxIndexBuffer: a small index in one call, a large one in bounded memory. An index being
// written is buffered in indexWriteBuffer: it is written once per fetch, and its size is
// not known until it is.
const (
	maxIndexBuffer   = 64 << 10
	indexWriteBuffer = 16 << 10
)

func isPackIndex(name string) bool { return strings.HasSuffix(name, ".idx") }

// Open reads a pack index through a buffer.
func (fs packIndexFS) Open(name string) (billy.File, error) {
	f, err := fs.Filesystem.Open(name)
	if err != nil || !isPackIndex(name) {
		return f, err
	}
	info, err := fs.Filesystem.Stat(name)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("pack index %s: %w", name, err), f.Close())
	}
	return &readIndexFile{File: f, indexReader: newIndexReader(f, info)}, nil
}

// Create writes a pack index through a buffer flushed on Close.
func (fs packIndexFS) Create(name string) (billy.File, error) {
	f, err := fs.Filesystem.Create(name)
	if err != nil || !isPackIndex(name) {
		return f, err
	}
	return &writeIndexFile{File: f, w: bufio.NewWriterSize(f, indexWriteBuffer)}, nil
}

// Chmod passes through: go-git sets a written pack's and index's permissions when the
// filesystem can.
func (fs packIndexFS) Chmod(name string, mode os.FileMode) error {
	if c, ok := fs.Filesystem.(billy.Chmod); ok {
		return c.Chmod(name, mode)
	}
	return nil
}

// Capabilities are the wrapped filesystem's.
func (fs packIndexFS) Capabilities() billy.Capability { return billy.Capabilities(fs.Filesystem) }

// indexReader reads a pack index through a buffer of its size, up to maxIndexBuffer. It
// answers Stat, which go-git's index decoder uses to check the index's size against its
// fan-out before trusting it.
type indexReader struct {
	*bufio.Reader
	info os.FileInfo
}

func newIndexReader(r io.Reader, info os.FileInfo) indexReader {
	return indexReader{bufio.NewReaderSize(r, int(min(max(info.Size(), 16), maxIndexBuffer))), info}
}

func (r indexReader) Stat() (os.FileInfo, error) { return r.info, nil }

// readIndexFile is a pack index opened through mirrorFS.
type readIndexFile struct {
	billy.File
	indexReader
}

func (f *readIndexFile) Read(p []byte) (int, error) { return f.indexReader.Read(p) }

func (f *readIndexFile) Seek(offset int64, whence int) (int64, error) {
	if whence == io.SeekCurrent {
		offset -= int64(f.Buffered()) // the file is ahead of the reader by what is buffered
	}
	pos, err := f.File.Seek(offset, whence)
	f.Reset(f.File)
	return pos, err
}

// writeIndexFile buffers the writes of a pack index being created; anything but a write
// flushes first, so the file underneath is always what was written.
type writeIndexFile struct {
	billy.File
	w *bufio.Writer
}

func (f *writeIndexFile) Write(p []byte) (int, error) { return f.w.Write(p) }

func (f *writeIndexFile) Close() error { return errors.Join(f.w.Flush(), f.File.Close()) }

func (f *writeIndexFile) Read(p []byte) (int, error) {
	if err := f.w.Flush(); err != nil {
		return 0, err
	}
	return f.File.Read(p)
}

func (f *writeIndexFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.w.Flush(); err != nil {
		return 0, err
	}
	return f.File.ReadAt(p, off)
}

func (f *writeIndexFile) Seek(offset int64, whence int) (int64, error) {
	if err := f.w.Flush(); err != nil {
		return 0, err
	}
	return f.File.Seek(offset, whence)
}

func (f *writeIndexFile) Truncate(size int64) error {
	if err := f.w.Flush(); err != nil {
		return err
	}
	return f.File.Truncate(size)
}
