package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/store"
)

func TestAuditListsEntries(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := openWith(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	web := store.PipelineRef{Repository: "shop", Name: "web"}
	api := store.PipelineRef{Repository: "shop", Name: "api"}
	rolledBack := store.Run{Pipeline: web, BuildID: 3}
	if _, err := st.RecordAudit(ctx, store.AuditEntry{Actor: cliActor(), Action: store.AuditRollback, Pipeline: rolledBack.Pipeline,
		BuildID: rolledBack.BuildID, Reason: "slipway rollback --to 2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordAudit(ctx, store.AuditEntry{Actor: "gate", Action: store.AuditGateDecision, Pipeline: api, BuildID: 1,
		Reason: "PR #7: 2 of 2 approvals", Evidence: json.RawMessage(`{"pr":7}`)}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	cfg := filepath.Join(dir, "slipway.yaml")

	out, _, err := run(t, "audit", "--config", cfg, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var rows []auditRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var evidence bytes.Buffer
	if len(rows) == 2 {
		_ = json.Compact(&evidence, rows[0].Evidence)
	}
	if len(rows) != 2 || rows[0].Action != "gate-decision" || evidence.String() != `{"pr":7}` ||
		rows[1].Actor != cliActor() || !strings.HasPrefix(rows[1].Actor, "cli:") || rows[1].Action != "rollback" || rows[1].BuildID != 3 {
		t.Fatalf("audit -o json:\n%s", out)
	}
	out, _, err = run(t, "audit", "--config", cfg, "shop/web")
	if err != nil || !strings.Contains(out, "rollback") || strings.Contains(out, "gate-decision") || !strings.HasPrefix(out, "TIME") {
		t.Fatalf("audit shop/web: %v\n%s", err, out)
	}
	out, _, err = run(t, "audit", "--config", cfg, "api", "--limit", "1")
	if err != nil || !strings.Contains(out, "PR #7") || strings.Contains(out, "rollback") {
		t.Fatalf("audit api: %v\n%s", err, out)
	}
	out, _, err = run(t, "audit", "--config", cfg, "nope")
	if err != nil || strings.TrimSpace(out) != "no audit entries" {
		t.Fatalf("audit of a pipeline without entries: %v\n%s", err, out)
	}
}

func TestTokenNewAndHash(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "alice.token")
	out, _, err := run(t, "token", "new", "alice", "--role", "operator,approver", "--repository", "team-*", "--token-file", tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := os.Stat(tokenFile); info.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v", info.Mode().Perm())
	}
	if strings.Contains(out, strings.TrimSpace(string(token))) {
		t.Fatalf("the token was printed although --token-file was given:\n%s", out)
	}
	// What it prints is a valid users: entry whose hash is the token's.
	users, err := config.ParseAPIUsers("tokens.yaml", []byte("users:\n"+out))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	u := users.Users[0]
	if u.Name != "alice" || u.TokenHash != sha256.Sum256([]byte(strings.TrimSpace(string(token)))) ||
		!u.HasRole(config.RoleApprover) || !u.MayAccess("team-web") || u.MayAccess("web") {
		t.Fatalf("entry %+v from:\n%s", u, out)
	}

	root := newRootCommand()
	var hashOut strings.Builder
	root.SetOut(&hashOut)
	root.SetIn(strings.NewReader(string(token)))
	root.SetArgs([]string{"token", "hash"})
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(hashOut.String()) != hex.EncodeToString(u.TokenHash[:]) {
		t.Fatalf("token hash printed %q, want %x", hashOut.String(), u.TokenHash)
	}

	if _, _, err := run(t, "token", "new", "cli:bob", "--role", "viewer"); err == nil || !strings.Contains(err.Error(), "cli:bob") {
		t.Fatalf("a bad name: %v", err)
	}
	if _, _, err := run(t, "token", "new", "bob", "--role", "boss"); err == nil || !strings.Contains(err.Error(), "boss") {
		t.Fatalf("a bad role: %v", err)
	}
}
