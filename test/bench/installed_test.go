package bench

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// installedCopy copies the binary at src into dir as an installation puts it on disk
// (written, synced) and drops the copy from the page cache, so the daemon maps its code from
// disk the way a freshly installed binary is. The Go linker writes its output through a
// memory mapping, and a binary run straight from the build keeps that page cache: the
// kernel maps it in larger pieces (some as 2 MiB pages), and its file-backed RSS is
// 10-15 MiB above the same binary's when loaded from disk (at rest 68 against 57 MiB).
// Memory figures are the shipped binary's, not the build directory's.
func installedCopy(t *testing.T, src, dir string) string {
	t.Helper()
	dst := filepath.Join(dir, "slipway-installed")
	if err := copyInstalled(src, dst); err != nil {
		t.Fatalf("install %s for the benchmark: %v", src, err)
	}
	return dst
}

func copyInstalled(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	// Clean pages only leave the cache: sync first.
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	if err := unix.Fadvise(int(out.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		out.Close()
		return fmt.Errorf("drop %s from the page cache: %w", dst, err)
	}
	return out.Close()
}
