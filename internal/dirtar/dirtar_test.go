package dirtar

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPackThenSyncMirrorsTheTree(t *testing.T) {
	ctx := context.Background()
	src, dst := t.TempDir(), t.TempDir()
	write(t, src, "a.txt", "one")
	write(t, src, "sub/b.sh", "#!/bin/sh\n")
	if err := os.Chmod(filepath.Join(src, "sub/b.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub/b.sh", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	write(t, dst, "stale/old.txt", "gone")
	write(t, dst, "a.txt", "different")
	var buf bytes.Buffer
	if err := Pack(ctx, src, &buf); err != nil {
		t.Fatal(err)
	}
	if err := Sync(ctx, dst, &buf, Options{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "a.txt")); string(b) != "one" {
		t.Errorf("a.txt = %q, want one", b)
	}
	if fi, err := os.Stat(filepath.Join(dst, "sub/b.sh")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("sub/b.sh: %v %v, want mode 0755", fi, err)
	}
	if l, err := os.Readlink(filepath.Join(dst, "link")); err != nil || l != "sub/b.sh" {
		t.Errorf("link -> %q (%v), want sub/b.sh", l, err)
	}
	if _, err := os.Stat(filepath.Join(dst, "stale")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale folder not removed: %v", err)
	}
}

func TestSyncPrefixAndOther(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name, body string) {
		_ = tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(1, 0)})
		_, _ = tw.Write([]byte(body))
	}
	_ = tw.WriteHeader(&tar.Header{Name: "workspace/", Typeflag: tar.TypeDir, Mode: 0o755})
	add("workspace/x", "in tree")
	add("slipway/output", "K=V\n")
	_ = tw.Close()
	dst := t.TempDir()
	var other string
	err := Sync(context.Background(), dst, &buf, Options{Prefix: "workspace/", Other: func(h *tar.Header, r io.Reader) error {
		b, _ := io.ReadAll(r)
		other = h.Name + ":" + string(b)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "x")); string(b) != "in tree" {
		t.Errorf("x = %q", b)
	}
	if other != "slipway/output:K=V\n" {
		t.Errorf("other = %q", other)
	}
}

func TestSyncRefusesEscapes(t *testing.T) {
	for name, entries := range map[string][]tar.Header{
		"dotdot":       {{Name: "../evil", Typeflag: tar.TypeReg, Mode: 0o644}},
		"absolute":     {{Name: "/tmp/evil", Typeflag: tar.TypeReg, Mode: 0o644}},
		"through link": {{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/tmp"}, {Name: "l/evil", Typeflag: tar.TypeReg, Mode: 0o644}},
		"hard link":    {{Name: "h", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"}},
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			for _, h := range entries {
				if err := tw.WriteHeader(&h); err != nil {
					t.Fatal(err)
				}
			}
			_ = tw.Close()
			outside := t.TempDir()
			dst := filepath.Join(outside, "ws")
			if err := os.Mkdir(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := Sync(context.Background(), dst, &buf, Options{}); err == nil {
				t.Fatal("Sync accepted an entry that leaves the folder")
			}
			if _, err := os.Stat(filepath.Join(outside, "evil")); err == nil {
				t.Fatal("a file was written outside the folder")
			}
			if _, err := os.Stat("/tmp/evil"); err == nil {
				t.Fatal("a file was written to /tmp")
			}
		})
	}
}
