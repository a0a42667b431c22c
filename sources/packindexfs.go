package sources

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-billy/v5/osfs"
)

// mirrorFS is the filesystem a mirror's go-git storage works on: the mirror's folder, with
// its pack indexes (objects/pack/*.idx) read whole in one go and written through a buffer.
// go-git decodes and encodes an index four bytes at a time straight on the file (its
// 256-entry fan-out alone is 256 reads), so every look that opened a mirror or stored a
// fetched pack made hundreds of system calls per index; a push to a thousand repositories
// made hundreds of thousands. The files are the same; only the calls change.
func mirrorFS(dir string) billy.Filesystem { return packIndexFS{osfs.New(dir)} }

type packIndexFS struct{ billy.Filesystem }

func isPackIndex(name string) bool { return strings.HasSuffix(name, ".idx") }

// Open reads a pack index whole and serves it from memory: indexes are small (about 28
// bytes an object) and go-git reads each one once per handle.
func (fs packIndexFS) Open(name string) (billy.File, error) {
	f, err := fs.Filesystem.Open(name)
	if err != nil || !isPackIndex(name) {
		return f, err
	}
	var buf bytes.Buffer
	if fi, err := fs.Filesystem.Stat(name); err == nil {
		buf.Grow(int(fi.Size()) + bytes.MinRead) // one read for the file, one for its end
	}
	_, err = buf.ReadFrom(f)
	if err = errors.Join(err, f.Close()); err != nil {
		return nil, fmt.Errorf("read pack index %s: %w", name, err)
	}
	return &readIndexFile{name: f.Name(), Reader: bytes.NewReader(buf.Bytes())}, nil
}

// Create writes a pack index through a buffer flushed on Close.
func (fs packIndexFS) Create(name string) (billy.File, error) {
	f, err := fs.Filesystem.Create(name)
	if err != nil || !isPackIndex(name) {
		return f, err
	}
	return &writeIndexFile{File: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

// Chmod passes through: go-git sets a written pack's and index's permissions when the
// filesystem can.
func (fs packIndexFS) Chmod(name string, mode os.FileMode) error {
	if c, ok := fs.Filesystem.(billy.Chmod); ok {
		return c.Chmod(name, mode)
	}
	return nil
}

// readIndexFile is a pack index read into memory, read-only.
type readIndexFile struct {
	name string
	*bytes.Reader
}

var errIndexReadOnly = errors.New("pack index opened for reading")

func (f *readIndexFile) Name() string                            { return f.name }
func (f *readIndexFile) Write([]byte) (int, error)               { return 0, errIndexReadOnly }
func (f *readIndexFile) Truncate(int64) error                    { return errIndexReadOnly }
func (f *readIndexFile) Lock() error                             { return nil }
func (f *readIndexFile) Unlock() error                           { return nil }
func (f *readIndexFile) Close() error                            { return nil }
func (f *readIndexFile) ReadAt(p []byte, off int64) (int, error) { return f.Reader.ReadAt(p, off) }

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
