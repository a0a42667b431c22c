package forge

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/config"
)

func TestProjectPath(t *testing.T) {
	ok := []struct{ forge, clone, want string }{
		{"https://git.example.com", "https://git.example.com/owner/app.git", "owner/app"},
		{"https://git.example.com", "https://git.example.com/owner/app", "owner/app"},
		{"https://git.example.com", "https://git.example.com/owner/app.git/", "owner/app"},
		{"https://git.example.com", "http://user:secret@git.example.com:3000/owner/app.git", "owner/app"},
		{"https://git.example.com/gitea/", "https://git.example.com/gitea/owner/app.git", "owner/app"},
		{"https://git.example.com", "ssh://git@git.example.com:2222/owner/app.git", "owner/app"},
		{"https://github.com", "git@github.com:octo/app.git", "octo/app"},
		{"https://gitlab.example.com", "git@gitlab.example.com:grp/sub/app.git", "grp/sub/app"},
		{"https://gitlab.example.com", "https://gitlab.example.com/grp/sub/app.git", "grp/sub/app"},
	}
	for _, c := range ok {
		p, err := ProjectPath(c.forge, c.clone)
		if err != nil || p.String() != c.want {
			t.Errorf("ProjectPath(%q, %q) = %q, %v; want %q", c.forge, c.clone, p, err, c.want)
		}
	}
	bad := []string{"https://git.example.com/app.git", "https://git.example.com/", "file:///srv/git/app.git",
		"/srv/git/app.git", "git.example.com", "https://git.example.com/owner//app.git", "https://git.example.com/../app.git"}
	for _, clone := range bad {
		if p, err := ProjectPath("https://git.example.com", clone); err == nil || !strings.Contains(err.Error(), "OWNER/NAME") {
			t.Errorf("ProjectPath(%q) = %q, %v; want an error naming OWNER/NAME", clone, p, err)
		}
	}
}

func TestNewFromConfig(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	repo := func(typ, url string) config.Repository {
		return config.Repository{Name: "app", URL: url, Forge: &config.Forge{Type: typ, URL: "https://git.example.com", TokenFile: token}}
	}
	for typ, want := range map[string]string{"gitea": "*forge.Gitea", "github": "*forge.GitHub", "gitlab": "*forge.GitLab"} {
		c, err := New(repo(typ, "https://git.example.com/owner/app.git"), Options{})
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if got := fmt.Sprintf("%T", c); got != want {
			t.Errorf("forge type %s made a %s", typ, got)
		}
	}
	if g, err := New(repo("gitea", "https://git.example.com/owner/app.git"), Options{}); err != nil || g.(*Gitea).token != "s3cret" {
		t.Fatalf("the token file's trailing newline is not part of the token (%v)", err)
	}
	if _, err := New(repo("gitea", "https://git.example.com/app.git"), Options{}); err == nil || !strings.Contains(err.Error(), "repository app") {
		t.Errorf("a clone URL without an owner: %v", err)
	}
	if _, err := New(repo("gitea", "git@git.example.com:grp/sub/app.git"), Options{}); err == nil {
		t.Error("a nested owner was accepted for Gitea")
	}
	missing := repo("gitea", "https://git.example.com/owner/app.git")
	missing.Forge.TokenFile = filepath.Join(dir, "absent")
	if _, err := New(missing, Options{}); !errors.Is(err, fs.ErrNotExist) || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a missing token file: %v", err)
	}
	if _, err := New(config.Repository{Name: "app"}, Options{}); err == nil {
		t.Error("a repository without forge made a client")
	}
}
