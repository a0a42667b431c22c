package kustomize

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/internal/repofs"
)

// The file system kustomize gets is the checkout, read-only, and nothing beyond it.
func TestRepoFSIsTheCheckoutOnly(t *testing.T) {
	r := checkout(t, map[string]string{"k/a.yaml": "a: 1\n", "k/b.yml": "b: 2\n", "k/.hidden.yaml": "h: 3\n", "k/sub/c.yaml": "c: 3\n", "link": "-> k"})
	f := newRepoFS(r, limits)
	if got, err := f.Glob(root + "/k/*.y*ml"); err != nil || strings.Join(got, ",") != root+"/k/a.yaml,"+root+"/k/b.yml" {
		t.Errorf("Glob = %v, %v", got, err)
	}
	if d, file, err := f.CleanedAbs(root + "/link/a.yaml"); err != nil || string(d) != root+"/k" || file != "a.yaml" {
		t.Errorf("CleanedAbs through a link inside = %q %q %v", d, file, err)
	}
	if !f.IsDir("link/sub") || f.IsDir("k/a.yaml") || !f.Exists(root+"/k/sub/c.yaml") || f.Exists("/etc/passwd") {
		t.Error("IsDir or Exists wrong")
	}
	var walked []string
	if err := f.Walk(root+"/k", func(p string, _ os.FileInfo, err error) error {
		walked = append(walked, strings.TrimPrefix(p, root+"/"))
		return err
	}); err != nil || strings.Join(walked, ",") != "k,k/.hidden.yaml,k/a.yaml,k/b.yml,k/sub,k/sub/c.yaml" {
		t.Errorf("Walk = %v, %v", walked, err)
	}
	for _, err := range []error{f.WriteFile(root+"/k/x.yaml", nil), f.MkdirAll(root + "/k/new"), f.RemoveAll(root + "/k")} {
		if !errors.Is(err, ErrReadOnly) {
			t.Errorf("a write: %v, want ErrReadOnly", err)
		}
	}
	if _, err := os.Stat(filepath.Join(r.Dir(), "k", "a.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadFile(root + "/../secret.yaml"); !errors.Is(err, repofs.ErrOutside) {
		t.Errorf("ReadFile outside = %v", err)
	}
	file, err := f.Open(root + "/k/a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if fi, err := file.Stat(); err != nil || fi.Size() != 5 || fi.Name() != "a.yaml" {
		t.Errorf("Stat = %v, %v", fi, err)
	}
}
