package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/config"
)

func TestAPIUsers(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hash := func(token string) string {
		sum := sha256.Sum256([]byte(token))
		return hex.EncodeToString(sum[:])
	}
	legacy := write("api-token", "old-token\n")
	users := write("users.yaml", "users:\n  - name: alice\n    tokenSHA256: "+hash("alice-token")+"\n    roles: [operator]\n")

	got, err := APIUsers(&config.Config{APITokensFile: users, APITokenFile: legacy})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "alice" || got[1].Name != config.LegacyTokenUser ||
		got[1].TokenHash != sha256.Sum256([]byte("old-token")) || !got[1].HasRole(config.RoleAdmin) {
		t.Fatalf("users = %+v", got)
	}
	if got, err := APIUsers(&config.Config{}); err != nil || len(got) != 0 {
		t.Fatalf("no token files: %v, %v; want the API off", got, err)
	}
	clash := write("clash.yaml", "users:\n  - name: api-token\n    tokenSHA256: "+hash("x")+"\n    roles: [viewer]\n")
	if _, err := APIUsers(&config.Config{APITokensFile: clash, APITokenFile: legacy}); err == nil || !strings.Contains(err.Error(), "taken by apiTokenFile") {
		t.Fatalf("a user named api-token beside apiTokenFile: %v", err)
	}
	same := write("same.yaml", "users:\n  - name: bob\n    tokenSHA256: "+hash("old-token")+"\n    roles: [viewer]\n")
	if _, err := APIUsers(&config.Config{APITokensFile: same, APITokenFile: legacy}); err == nil || !strings.Contains(err.Error(), "bob has the token of apiTokenFile") {
		t.Fatalf("a user with apiTokenFile's token: %v", err)
	}
	bad := write("bad.yaml", "users:\n  - name: bob\n    tokenSHA256: nothex\n    roles: [viewer]\n")
	if _, err := APIUsers(&config.Config{APITokensFile: bad}); err == nil || !strings.Contains(err.Error(), "bad.yaml:3:") {
		t.Fatalf("a bad tokens file: %v, want file:line", err)
	}
}
