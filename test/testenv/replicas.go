package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
)

// ReplicaFiles writes into dir the files every replica of one installation shares: the
// PostgreSQL password (pg-password, since slipway.yaml takes it from a file), the Git
// server's credentials (git-user, git-password), the store's and the web console's keys
// (store.key, ui-session.key) and an API token (api-token). It returns the URL of a fresh
// schema without its password, for slipway.yaml's store, and the token.
func (e *Env) ReplicaFiles(t testing.TB, dir string) (storeURL, token string) {
	t.Helper()
	u, err := url.Parse(PostgresSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	password, _ := u.User.Password()
	u.User = url.User(u.User.Username())
	token = hex.EncodeToString(randomBytes(16))
	for name, v := range map[string][]byte{"pg-password": []byte(password), "git-user": []byte(e.GitUser),
		"git-password": []byte(e.GitPassword), "store.key": randomBytes(keySize), "ui-session.key": randomBytes(keySize),
		"api-token": []byte(token)} {
		if err := os.WriteFile(filepath.Join(dir, name), v, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return u.String(), token
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// keySize is store.KeySize, which this package cannot import: the store's tests import it.
const keySize = 32
