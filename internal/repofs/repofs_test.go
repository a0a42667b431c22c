package repofs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// tree writes files (content) and symlinks ("-> target") under a fresh folder inside a
// parent that also holds outside.txt, a file a hostile link would want to read.
func tree(t *testing.T, entries map[string]string) *Repo {
	t.Helper()
	parent := t.TempDir()
	if err := os.WriteFile(filepath.Join(parent, "outside.txt"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(parent, "repo")
	for name, body := range entries {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if target, ok := strings.CutPrefix(body, "-> "); ok {
			err = os.Symlink(target, p)
		} else if strings.HasSuffix(name, "/") {
			err = os.MkdirAll(p, 0o755)
		} else {
			err = os.WriteFile(p, []byte(body), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	r, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestResolveRefusesEveryWayOut(t *testing.T) {
	r := tree(t, map[string]string{
		"deploy/app.yaml":      "kind: ConfigMap\n",
		"deploy/link.yaml":     "-> app.yaml",
		"deploy/dangling.yaml": "-> missing.yaml",
		"deploy/abs.yaml":      "-> /etc/passwd",
		"deploy/up.yaml":       "-> ../../outside.txt",
		"self":                 "-> .",
		"parent":               "-> self/..",
		// A chain whose end does not exist (yet): it must not survive because it dangles.
		"deploy/chain.yaml": "-> ../hop/x.yaml",
		"hop":               "-> parent/repo-neighbour",
		// A chain that stays inside lexically at every step but leaves through a link.
		"deploy/sneaky.yaml": "-> ../self/../outside.txt",
		"loop-a":             "-> loop-b",
		"loop-b":             "-> loop-a",
		"ok":                 "-> deploy/link.yaml",
	})
	for _, rel := range []string{"deploy/app.yaml", "deploy/link.yaml", "ok", "self/deploy/app.yaml", "./deploy/../deploy/app.yaml"} {
		got, err := r.Resolve(rel)
		if err != nil || got != "deploy/app.yaml" {
			t.Errorf("Resolve(%q) = %q, %v; want deploy/app.yaml", rel, got, err)
		}
	}
	for _, tc := range []struct {
		rel, link string
		want      error
		msg       string
	}{
		{"deploy/dangling.yaml", "deploy/dangling.yaml", ErrDangling, `symlink "deploy/dangling.yaml" is dangling: "missing.yaml" does not exist`},
		{"deploy/abs.yaml", "deploy/abs.yaml", ErrOutside, `points to the absolute path "/etc/passwd"`},
		{"deploy/up.yaml", "deploy/up.yaml", ErrOutside, `symlink "deploy/up.yaml" points outside the repository ("../../outside.txt")`},
		{"parent", "parent", ErrOutside, "points outside the repository"},
		{"deploy/chain.yaml", "hop", ErrOutside, `"deploy/chain.yaml": symlink "parent" points outside`},
		{"deploy/sneaky.yaml", "deploy/sneaky.yaml", ErrOutside, `symlink "deploy/sneaky.yaml" points outside the repository`},
		{"loop-a", "", ErrLinkLoop, "more than 40 symlinks"},
		{"../outside.txt", "", ErrOutside, "leaves the repository"},
		{"/etc/passwd", "", ErrOutside, "leaves the repository"},
		{"deploy/none.yaml", "", fs.ErrNotExist, `"deploy/none.yaml" does not exist in the repository`},
		{"deploy/app.yaml/x", "", fs.ErrNotExist, "does not exist"},
	} {
		_, err := r.Resolve(tc.rel)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Resolve(%q) = %v; want %v saying %q", tc.rel, err, tc.want, tc.msg)
		}
		if _, err := r.ReadFile(tc.rel, Limit{}); !errors.Is(err, tc.want) {
			t.Errorf("ReadFile(%q) = %v; want %v", tc.rel, err, tc.want)
		}
	}
}

func TestManifestsWalksOnlyInside(t *testing.T) {
	r := tree(t, map[string]string{
		"k8s/a.yaml":          "a",
		"k8s/sub/b.yml":       "b",
		"k8s/.hidden/x.txt":   "skipped",
		"k8s/.notes.txt":      "skipped",
		"k8s/shared":          "-> ../shared",
		"shared/c.json":       "{}",
		"bad/a.yaml":          "a",
		"bad/README.md":       "not a manifest",
		"out/a.yaml":          "a",
		"out/escape.yaml":     "-> ../../outside.txt",
		"dangle/a.yaml":       "a",
		"dangle/sub/gone.yml": "-> ../../nowhere.yaml",
		"absdir/a.yaml":       "a",
		"absdir/etc":          "-> /etc",
		"cycle/a.yaml":        "a",
		"cycle/again":         "-> ../cycle",
		"empty/":              "",
		"one.txt":             "a single file may have any name",
	})
	got, err := r.Manifests("k8s")
	want := []string{"k8s/a.yaml", "k8s/shared/c.json", "k8s/sub/b.yml"}
	if err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("Manifests(k8s) = %v, %v; want %v", got, err, want)
	}
	if got, err := r.Manifests("one.txt"); err != nil || len(got) != 1 {
		t.Errorf("Manifests(one.txt) = %v, %v", got, err)
	}
	for dir, want := range map[string]string{
		"bad":    `bad/README.md: not a manifest`,
		"out":    `symlink "out/escape.yaml" points outside`,
		"dangle": `symlink "dangle/sub/gone.yml" is dangling`,
		"absdir": `symlink "absdir/etc" points to the absolute path "/etc"`,
		"cycle":  `leads back to the folder`,
		"empty":  `folder "empty" has no .yaml, .yml or .json files`,
	} {
		if _, err := r.Manifests(dir); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Manifests(%s) = %v; want an error saying %q", dir, err, want)
		}
	}
}

func TestReadFileChecksSizeBeforeReading(t *testing.T) {
	r := tree(t, map[string]string{"small.yaml": "a: 1\n"})
	// A sparse file of 1 TiB: reading it in full could not finish, let alone fit in memory,
	// so a quick refusal proves the size was checked first.
	f, err := os.Create(filepath.Join(r.Dir(), "huge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 40); err != nil {
		t.Fatalf("this test needs a file system with sparse files (ext4, xfs, tmpfs; set TMPDIR to one): %v", err)
	}
	f.Close()
	_, err = r.ReadFile("huge.yaml", Limit{Max: 1 << 20, Setting: "pipelineFileSize"})
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Size != 1<<40 {
		t.Fatalf("ReadFile(huge) = %v; want a TooLargeError", err)
	}
	if want := "huge.yaml: file is larger than the limit of 1 MiB (the repository's limits.pipelineFileSize in slipway.yaml raises it)"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if b, err := r.ReadFile("small.yaml", Limit{Max: 5}); err != nil || string(b) != "a: 1\n" {
		t.Errorf("ReadFile at exactly the limit = %q, %v", b, err)
	}
}

func TestReadTextChecksLines(t *testing.T) {
	r := tree(t, map[string]string{"m.yaml": "a: 1\r\nb: " + strings.Repeat("x", 20) + "\nc: 3"})
	lim := TextLimits{File: Limit{Max: 1 << 10}, Line: Limit{Max: 23, Setting: "manifestLineSize"}}
	if _, err := r.ReadText("m.yaml", lim); err != nil {
		t.Fatalf("lines at the limit: %v", err)
	}
	lim.Line.Max = 22
	_, err := r.ReadText("m.yaml", lim)
	if !errors.Is(err, ErrTooLarge) || !strings.HasPrefix(err.Error(), "m.yaml:2: line is longer than the limit of 22 bytes (the repository's limits.manifestLineSize") {
		t.Errorf("ReadText = %v", err)
	}
}

func TestReadFileRefusesWhatIsNotAFile(t *testing.T) {
	r := tree(t, map[string]string{"dir/": ""})
	if err := syscall.Mkfifo(filepath.Join(r.Dir(), "pipe.yaml"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"pipe.yaml", "dir"} {
		if _, err := r.ReadFile(rel, Limit{}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("ReadFile(%s) = %v; want not a regular file", rel, err)
		}
	}
}
