package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/slipwayhq/slipway/test/leakscan"
)

// secretValue is what a Secret in a stored revision holds; the tests look for it in the
// database files.
const secretValue = "hunter2-but-much-longer"

var secretObjects = []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: game}\n" +
	"stringData: {password: " + secretValue + "}\n" +
	"data: {token: " + base64.StdEncoding.EncodeToString([]byte(secretValue)) + "}\n")

// secretMasks are the run's secret values stored with the revision: packed like its objects.
var secretMasks = []string{secretValue, "another-secret-value"}

func newKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func keyring(t testing.TB, keys ...[]byte) *Keyring {
	t.Helper()
	kr, err := NewKeyring(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func saveSecret(t testing.TB, s *DB, buildID int64) {
	t.Helper()
	mustRun(t, s, testPipeline)
	if _, err := s.SaveRevision(testCtx(t), NewRevision{Pipeline: testPipeline, BuildID: buildID, Task: "web", Cluster: "local",
		Namespace: "game", Kind: DeployYAML, Objects: secretObjects,
		Inventory: []InventoryEntry{{Version: "v1", Kind: "Secret", Namespace: "game", Name: "db"}}, Masks: secretMasks}); err != nil {
		t.Fatal(err)
	}
}

func readSecret(t testing.TB, s *DB, buildID int64) {
	t.Helper()
	rev, err := s.GetRevision(testCtx(t), testPipeline, buildID, "web")
	if err != nil {
		t.Fatalf("read revision %d: %v", buildID, err)
	}
	if !bytes.Equal(rev.Objects, secretObjects) {
		t.Fatalf("revision %d objects %q, want %q", buildID, rev.Objects, secretObjects)
	}
	if !slices.Equal(rev.Masks, secretMasks) {
		t.Fatalf("revision %d masks %q, want %q", buildID, rev.Masks, secretMasks)
	}
}

// scanFolder returns what the leak scanner finds of secretValue in the database's folder
// (SQLite: every byte of the file, its WAL included), or on PostgreSQL in the stored
// revision payloads, as the server hands them out.
func scanFolder(t testing.TB, loc string) []leakscan.Finding {
	t.Helper()
	sc, err := leakscan.New(map[string]string{"password": secretValue, "a mask only": secretMasks[1]})
	if err != nil {
		t.Fatal(err)
	}
	if onPostgres() {
		return scanPostgresRevisions(t, sc, loc)
	}
	found, err := sc.Dir(context.Background(), filepath.Dir(loc))
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func TestKeyringSealOpen(t *testing.T) {
	a, b := newKey(t), newKey(t)
	kr := keyring(t, a)
	aad := objectsAAD(1, 2, "web")
	id, sealed, err := kr.seal([]byte("payload"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if id != KeyID(a) || bytes.Contains(sealed, []byte("payload")) {
		t.Fatalf("sealed with %s (want %s): %q", id, KeyID(a), sealed)
	}
	if _, again, _ := kr.seal([]byte("payload"), aad); bytes.Equal(again, sealed) {
		t.Error("two seals of one payload are equal: the nonce is not random")
	}
	if got, err := kr.open(id, sealed, aad); err != nil || string(got) != "payload" {
		t.Fatalf("open: %q, %v", got, err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	if _, err := kr.open(id, tampered, aad); !errors.Is(err, ErrDecrypt) {
		t.Errorf("tampered payload: %v, want ErrDecrypt", err)
	}
	if _, err := kr.open(id, sealed, objectsAAD(1, 3, "web")); !errors.Is(err, ErrDecrypt) {
		t.Errorf("payload of another row: %v, want ErrDecrypt", err)
	}
	if _, err := kr.open(id, sealed[:5], aad); !errors.Is(err, ErrDecrypt) {
		t.Errorf("cut payload: %v, want ErrDecrypt", err)
	}
	var missing *MissingKeyError
	if _, err := keyring(t, b).open(id, sealed, aad); !errors.As(err, &missing) || missing.KeyID != id {
		t.Errorf("open with the wrong key: %v, want a MissingKeyError naming %s", err, id)
	}
	if got, err := keyring(t, b, a).open(id, sealed, aad); err != nil || string(got) != "payload" {
		t.Errorf("a second key does not decrypt: %q, %v", got, err)
	}
	if _, err := NewKeyring(a, a); err == nil {
		t.Error("the same key twice was accepted")
	}
	if _, err := NewKeyring(a[:16]); err == nil {
		t.Error("a 16-byte key was accepted")
	}
}

func TestParseAndEnsureKeyFile(t *testing.T) {
	k := newKey(t)
	for name, data := range map[string][]byte{
		"raw": k, "base64": []byte(base64.StdEncoding.EncodeToString(k)), "base64 with newline": []byte(base64.StdEncoding.EncodeToString(k) + "\n"),
	} {
		if got, err := ParseKey(data); err != nil || !bytes.Equal(got, k) {
			t.Errorf("%s: %x, %v", name, got, err)
		}
	}
	for name, data := range map[string][]byte{
		"empty": nil, "short": k[:31], "long base64": []byte(base64.StdEncoding.EncodeToString(append(k, 1))), "text": []byte("not a key at all\n"),
	} {
		if _, err := ParseKey(data); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}

	path := filepath.Join(t.TempDir(), "data", "store.key")
	created, err := EnsureKeyFile(path)
	if err != nil || !created {
		t.Fatalf("first EnsureKeyFile: %v, created %v", err, created)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", info.Mode(), err)
	}
	first, err := ReadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if created, err := EnsureKeyFile(path); err != nil || created {
		t.Fatalf("second EnsureKeyFile: %v, created %v", err, created)
	}
	if again, err := ReadKeyFile(path); err != nil || !bytes.Equal(again, first) {
		t.Fatalf("the key changed: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
}

// With a keyring no file of the store holds the Secret's value, in any form; without
// one the scanner finds it (so the scan can fail).
func TestRevisionsEncryptedAtRest(t *testing.T) {
	t.Run("with a keyring", func(t *testing.T) {
		s, path := openTest(t, WithKeyring(keyring(t, newKey(t))))
		saveSecret(t, s, 1)
		readSecret(t, s, 1)
		if found := scanFolder(t, path); len(found) > 0 {
			t.Errorf("secret found at rest: %v", found)
		}
		_ = s.Close()
		if found := scanFolder(t, path); len(found) > 0 {
			t.Errorf("secret found at rest after close: %v", found)
		}
	})
	t.Run("without", func(t *testing.T) {
		s, path := openTest(t)
		saveSecret(t, s, 1)
		_ = s.Close()
		if found := scanFolder(t, path); len(found) == 0 {
			t.Error("the plaintext store's secret was not found: the scan cannot fail")
		}
	})
}

// A store written before schema version 7 (or without keys) holds plaintext payloads: a
// keyring reads them, and opening with one encrypts them and leaves no plaintext behind.
func TestPlaintextRevisionsAreSealedOnOpen(t *testing.T) {
	s, path := openTest(t)
	ctx := testCtx(t)
	saveSecret(t, s, 1)
	saveSecret(t, s, 2)
	for _, q := range []string{ // back to a version 6 database
		`DROP INDEX revisions_by_key`,
		`ALTER TABLE revisions DROP COLUMN objects_key`,
		`DELETE FROM schema_migrations WHERE version = 7`,
	} {
		if _, err := s.writer.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	_ = s.Close()
	if found := scanFolder(t, path); len(found) == 0 {
		t.Fatal("the legacy store's secret was not found: the scan cannot fail")
	}

	kr := keyring(t, newKey(t))
	s2 := openAt(t, path, WithKeyring(kr))
	readSecret(t, s2, 1)
	readSecret(t, s2, 2)
	var plain int
	if err := s2.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM revisions WHERE objects_key <> $1 OR objects_encoding <> $2`,
		kr.Primary(), encodingSealed).Scan(&plain); err != nil || plain != 0 {
		t.Fatalf("%d revisions not sealed with the key (%v)", plain, err)
	}
	if found := scanFolder(t, path); len(found) > 0 {
		t.Errorf("plaintext left in the files after sealing: %v", found)
	}
	_ = s2.Close()
	if found := scanFolder(t, path); len(found) > 0 {
		t.Errorf("plaintext left in the files after close: %v", found)
	}
}

// Rotation: a new first key writes, the old one still reads; Reencrypt moves everything
// to the new key, after which the old one can go, and a store lacking a key in use
// refuses to open.
func TestKeyRotation(t *testing.T) {
	oldKey, newKey := newKey(t), newKey(t)
	s, path := openTest(t, WithKeyring(keyring(t, oldKey)))
	saveSecret(t, s, 1)
	_ = s.Close()

	s2 := openAt(t, path, WithKeyring(keyring(t, newKey, oldKey)))
	readSecret(t, s2, 1)
	saveSecret(t, s2, 2)
	res, err := s2.Reencrypt(testCtx(t))
	if err != nil || res.Rewritten != 1 || res.KeyID != KeyID(newKey) {
		t.Fatalf("reencrypt: %+v, %v; want 1 rewritten with %s", res, err, KeyID(newKey))
	}
	if res, err := s2.Reencrypt(testCtx(t)); err != nil || res.Rewritten != 0 {
		t.Fatalf("second reencrypt: %+v, %v; want nothing left", res, err)
	}
	_ = s2.Close()

	s3 := openAt(t, path, WithKeyring(keyring(t, newKey)))
	readSecret(t, s3, 1)
	readSecret(t, s3, 2)
	_ = s3.Close()

	var missing *MissingKeyError
	if _, err := openLoc(testCtx(t), path, WithKeyring(keyring(t, oldKey))); !errors.As(err, &missing) || missing.KeyID != KeyID(newKey) {
		t.Fatalf("open with only the retired key: %v, want a MissingKeyError naming %s", err, KeyID(newKey))
	}
	// Without keys the store opens (it has nothing to check them against) but cannot read.
	s4 := openAt(t, path)
	if _, err := s4.GetRevision(testCtx(t), testPipeline, 1, "web"); !errors.As(err, &missing) {
		t.Fatalf("read without keys: %v, want a MissingKeyError", err)
	}
	if _, err := s4.Reencrypt(testCtx(t)); err == nil {
		t.Fatal("reencrypt without keys succeeded")
	}
}

// A payload moved into another revision's row does not decrypt there.
func TestMovedPayloadIsRefused(t *testing.T) {
	s, _ := openTest(t, WithKeyring(keyring(t, newKey(t))))
	ctx := testCtx(t)
	saveSecret(t, s, 1)
	mustRun(t, s, testPipeline)
	if _, err := s.SaveRevision(ctx, NewRevision{Pipeline: testPipeline, BuildID: 2, Task: "web", Cluster: "local",
		Kind: DeployYAML, Objects: []byte("kind: ConfigMap")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.writer.ExecContext(ctx, `UPDATE revisions SET (objects, objects_size, objects_digest) =
		(SELECT objects, objects_size, objects_digest FROM revisions WHERE build_id = 1) WHERE build_id = 2`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRevision(ctx, testPipeline, 2, "web"); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("read a moved payload: %v, want ErrDecrypt", err)
	}
	readSecret(t, s, 1)
}

func scanPostgresRevisions(t testing.TB, sc *leakscan.Scanner, dsn string) []leakscan.Finding {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(testCtx(t), `SELECT id, objects, COALESCE(masks, ''::bytea) FROM revisions`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var found []leakscan.Finding
	for rows.Next() {
		var id int64
		var objects, masks []byte
		if err := rows.Scan(&id, &objects, &masks); err != nil {
			t.Fatal(err)
		}
		found = append(found, sc.Bytes(fmt.Sprintf("revision %d objects", id), objects)...)
		found = append(found, sc.Bytes(fmt.Sprintf("revision %d masks", id), masks)...)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return found
}
