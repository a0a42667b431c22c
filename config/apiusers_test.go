package config

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func hashOf(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func TestParseAPIUsers(t *testing.T) {
	file := "users:\n" +
		"  - name: alice\n    tokenSHA256: " + hashOf("a") + "\n    roles: [operator]\n    repositories: [app, team-*]\n" +
		"  - name: bob\n    tokenSHA256: " + strings.ToUpper(hashOf("b")) + "\n    roles: [viewer, approver]\n"
	u, err := ParseAPIUsers("tokens.yaml", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := u.Users[0], u.Users[1]
	if alice.TokenHash != sha256.Sum256([]byte("a")) || bob.TokenHash != sha256.Sum256([]byte("b")) {
		t.Fatalf("token hashes not decoded: %+v", u.Users)
	}
	for _, tc := range []struct {
		user APIUser
		role Role
		want bool
	}{
		{alice, RoleViewer, true}, {alice, RoleOperator, true}, {alice, RoleApprover, false}, {alice, RoleAdmin, false},
		{bob, RoleApprover, true}, {bob, RoleOperator, false}, {APIUser{Name: "none"}, RoleViewer, false},
		{LegacyAPIUser([]byte("t")), RoleApprover, true}, {LegacyAPIUser([]byte("t")), RoleAdmin, true},
	} {
		if got := tc.user.HasRole(tc.role); got != tc.want {
			t.Errorf("%s.HasRole(%s) = %v", tc.user.Name, tc.role, got)
		}
	}
	for repo, want := range map[string]bool{"app": true, "team-web": true, "other": false, "app2": false} {
		if alice.MayAccess(repo) != want {
			t.Errorf("alice.MayAccess(%s) = %v", repo, !want)
		}
	}
	if !bob.MayAccess("other") {
		t.Error("bob has no repository list and must reach every repository")
	}
}

func TestBadAPIUsers(t *testing.T) {
	h := hashOf("x")
	for _, tc := range []struct{ file, want string }{
		{"", "tokens.yaml:1:1: empty API tokens file"},
		{"users: []\n", "tokens.yaml:1:8: users is empty"},
		{"users:\n  - name: a\n    token: secret\n    roles: [admin]\n", `tokens.yaml:3:5: unknown field "token"`},
		{"users:\n  - name: a\n    token: secret\n    roles: [admin]\n", "set tokenSHA256 to the hex sha256"},
		{"users:\n  - name: a\n    tokenSHA256: secret\n    roles: [admin]\n", "tokens.yaml:3:18: tokenSHA256 must be 64 hex digits"},
		{"users:\n  - name: a\n    tokenSHA256: " + h + "\n    roles: [boss]\n", `tokens.yaml:4:13: role "boss" is not one of`},
		{"users:\n  - name: a\n    tokenSHA256: " + h + "\n    roles: []\n", "tokens.yaml:4:12: roles is empty"},
		{"users:\n  - name: a\n    tokenSHA256: " + h + "\n", `missing required field "roles"`},
		{"users:\n  - name: cli:me\n    tokenSHA256: " + h + "\n    roles: [admin]\n", `tokens.yaml:2:11: name "cli:me"`},
		{"users:\n  - name: a\n    tokenSHA256: " + h + "\n    roles: [admin]\n  - name: a\n    tokenSHA256: " + hashOf("y") + "\n    roles: [admin]\n", `tokens.yaml:5:11: name "a" is used twice`},
		{"users:\n  - name: a\n    tokenSHA256: " + h + "\n    roles: [admin]\n  - name: b\n    tokenSHA256: " + h + "\n    roles: [admin]\n", "tokens.yaml:6:18: b has the same token as a"},
		{"users:\n  - name: a\n    tokenSHA256: " + h + "\n    roles: [admin]\n    repositories: ['[']\n", `tokens.yaml:5:20: repository pattern "["`},
	} {
		_, err := ParseAPIUsers("tokens.yaml", []byte(tc.file))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want it to contain %q", tc.file, err, tc.want)
		}
	}
}

func TestAPITokensFileResolved(t *testing.T) {
	c, err := Parse("slipway.yaml", []byte("dataDir: /data\napiTokensFile: api-users.yaml\n"))
	if err != nil {
		t.Fatal(err)
	}
	c.resolve("/etc/slipway")
	if c.APITokensFile != "/etc/slipway/api-users.yaml" {
		t.Errorf("apiTokensFile resolved to %q", c.APITokensFile)
	}
	if _, err := Parse("slipway.yaml", []byte("dataDir: /data\napiTokens: x\n")); err == nil || !strings.Contains(err.Error(), "apiTokensFile") {
		t.Errorf("an inline apiTokens: err = %v, want the hint to apiTokensFile", err)
	}
}
