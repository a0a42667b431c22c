package sources

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestMirrorDirName(t *testing.T) {
	seen := map[string]string{}
	for _, name := range []string{"app", "team/app", "team_app", "team app", "..", ".", "../../etc", ".hidden",
		"", "ünïcode", strings.Repeat("x", 200), strings.Repeat("x", 201), "App", "app.git"} {
		got := mirrorDirName(name)
		if got == "" || got == "." || got == ".." || strings.HasPrefix(got, ".") {
			t.Errorf("mirrorDirName(%q) = %q: not a safe folder name", name, got)
		}
		if filepath.Base(got) != got || strings.ContainsAny(got, `/\`) {
			t.Errorf("mirrorDirName(%q) = %q: not a single path element", name, got)
		}
		if len(got) > 80 {
			t.Errorf("mirrorDirName(%q) is %d long", name, len(got))
		}
		if other, dup := seen[got]; dup {
			t.Errorf("%q and %q share the mirror %q", name, other, got)
		}
		seen[got] = name
		if again := mirrorDirName(name); again != got {
			t.Errorf("mirrorDirName(%q) is not stable: %q then %q", name, got, again)
		}
	}
	if got := mirrorDirName("my-app_1.2"); got != "my-app_1.2" {
		t.Errorf("a safe name should be kept as is, got %q", got)
	}
}
