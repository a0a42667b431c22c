package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/daemon"
	"github.com/slipwayhq/slipway/store"
	"github.com/slipwayhq/slipway/test/testenv"
)

func writeKey(t *testing.T, path string) string {
	t.Helper()
	k := make([]byte, store.KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(k)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return store.KeyID(k)
}

// openWith opens the store of a slipway.yaml listing keys, as the daemon does.
func openWith(t *testing.T, dir string, keys ...string) (store.Store, error) {
	t.Helper()
	cfg := "dataDir: data\n"
	if len(keys) > 0 {
		cfg += "storeKeyFiles: [" + strings.Join(keys, ", ") + "]\n"
	}
	path := writeFile(t, dir, "slipway.yaml", cfg)
	_, st, err := daemon.OpenConfigAndStore(context.Background(), path, logrus.NewEntry(logrus.New()))
	return st, err
}

var rotated = store.PipelineRef{Repository: "r", Name: "p"}

func readRevision(t *testing.T, st store.Store, id int64) {
	t.Helper()
	rev, err := st.GetRevision(context.Background(), rotated, id, "deploy")
	if err != nil || string(rev.Objects) != "kind: Secret" {
		t.Fatalf("revision %d: %q, %v", id, rev.Objects, err)
	}
}

// saveRevisions records runs 1..n of the pipeline rotated, each with a revision.
func saveRevisions(t *testing.T, st store.Store, n int64) {
	t.Helper()
	ctx := context.Background()
	for id := int64(1); id <= n; id++ {
		if _, err := st.CreateRun(ctx, store.NewRun{Pipeline: rotated, Commit: "c", Branch: "main", Trigger: store.TriggerPush}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.SaveRevision(ctx, store.NewRevision{Pipeline: rotated, BuildID: id, Task: "deploy", Cluster: "c",
			Kind: store.DeployYAML, Objects: []byte("kind: Secret")}); err != nil {
			t.Fatal(err)
		}
	}
}

// The rotation procedure of docs/store.md, through the CLI verb.
func TestStoreReencryptRotatesTheKey(t *testing.T) {
	dir := t.TempDir()
	oldID := writeKey(t, filepath.Join(dir, "old.key"))
	newID := writeKey(t, filepath.Join(dir, "new.key"))

	st, err := openWith(t, dir, "old.key")
	if err != nil {
		t.Fatal(err)
	}
	saveRevisions(t, st, 2)
	st.Close()

	// The new key first, the old one still listed: both read.
	writeFile(t, dir, "slipway.yaml", "dataDir: data\nstoreKeyFiles: [new.key, old.key]\n")
	stdout, _, err := run(t, "store", "reencrypt", "--config", filepath.Join(dir, "slipway.yaml"))
	if err != nil || !strings.Contains(stdout, "re-encrypted 2 revisions") || !strings.Contains(stdout, newID) {
		t.Fatalf("store reencrypt: %v\n%s", err, stdout)
	}

	// The old key removed: everything still reads.
	st, err = openWith(t, dir, "new.key")
	if err != nil {
		t.Fatal(err)
	}
	readRevision(t, st, 1)
	readRevision(t, st, 2)
	st.Close()

	// The new key lost: the store refuses to open and says which key it needs.
	var missing *store.MissingKeyError
	if _, err := openWith(t, dir, "old.key"); !errors.As(err, &missing) || missing.KeyID != newID || strings.Contains(err.Error(), oldID) {
		t.Fatalf("open with the retired key only: %v; want it to ask for %s", err, newID)
	}
}

// Without storeKeyFiles the key is made in the data folder, once, with mode 0600, and a
// bad key file is reported with the field, its line and the file.
func TestStoreKeyDefaultAndErrors(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	l := logrus.New()
	l.SetOutput(&logs)
	path := writeFile(t, dir, "slipway.yaml", "dataDir: data\n")
	_, st, err := daemon.OpenConfigAndStore(context.Background(), path, logrus.NewEntry(l))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	key := filepath.Join(dir, "data", "store.key")
	info, err := os.Stat(key)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("default key %s: %v, mode %v", key, err, info)
	}
	if !strings.Contains(logs.String(), "created the key that encrypts stored revisions") || !strings.Contains(logs.String(), key) {
		t.Errorf("creating the key was not logged:\n%s", logs.String())
	}
	logs.Reset()
	if _, st, err = daemon.OpenConfigAndStore(context.Background(), path, logrus.NewEntry(l)); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if logs.Len() != 0 {
		t.Errorf("the second start logged:\n%s", logs.String())
	}

	writeFile(t, dir, "short.key", "c2hvcnQ=\n")
	_, err = openWith(t, dir, "new.key", "short.key")
	if err == nil || !strings.Contains(err.Error(), "slipway.yaml:2:17: storeKeyFiles[0]") || !strings.Contains(err.Error(), "new.key") {
		t.Errorf("missing key file: %v", err)
	}
	writeKey(t, filepath.Join(dir, "new.key"))
	_, err = openWith(t, dir, "new.key", "short.key")
	if err == nil || !strings.Contains(err.Error(), "slipway.yaml:2:26: storeKeyFiles[1]") || !strings.Contains(err.Error(), "openssl rand -base64 32") {
		t.Errorf("short key file: %v", err)
	}
}

// `slipway store migrate` copies a SQLite installation into PostgreSQL (the environment's,
// from `make env-up`); the copy carries on from the last BUILD_ID, and a second copy into
// the now full store is refused.
func TestStoreMigrateSQLiteToPostgres(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "slipway.db")
	src, err := store.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := src.CreateRun(ctx, store.NewRun{Pipeline: rotated, Trigger: store.TriggerPush}); err != nil {
			t.Fatal(err)
		}
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	// The password from a file, as the docs say, not on the command line.
	dsn, err := url.Parse(testenv.PostgresSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	password, _ := dsn.User.Password()
	dsn.User = url.User(dsn.User.Username())
	pwFile := writeFile(t, t.TempDir(), "db.password", password+"\n")

	args := []string{"store", "migrate", "--from", "sqlite://" + path, "--to", dsn.String(), "--to-password-file", pwFile}
	stdout, _, err := run(t, args...)
	if err != nil {
		t.Fatalf("store migrate: %v\n%s", err, stdout)
	}
	if !strings.Contains(stdout, "runs                        3 rows") || strings.Contains(stdout, password) {
		t.Fatalf("store migrate printed:\n%s", stdout)
	}

	pw, err := store.ReadPasswordFile(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := store.Open(ctx, dsn.String(), store.WithPassword(pw))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if r, err := dst.CreateRun(ctx, store.NewRun{Pipeline: rotated, Trigger: store.TriggerManual}); err != nil || r.BuildID != 4 {
		t.Fatalf("first run on the copy: BUILD_ID %d, %v; want 4", r.BuildID, err)
	}
	if _, _, err := run(t, args...); !errors.Is(err, store.ErrDestinationNotEmpty) {
		t.Fatalf("a second migrate into the same store: %v; want it refused as not empty", err)
	}
}

// The daemon opens a PostgreSQL store with the password of storePasswordFile, which
// slipway.yaml's DSN leaves out; without the file the server refuses it.
func TestStorePasswordFileOpensPostgres(t *testing.T) {
	dsn, err := url.Parse(testenv.PostgresSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	password, _ := dsn.User.Password()
	dsn.User = url.User(dsn.User.Username())
	dir := t.TempDir()
	writeFile(t, dir, "db.password", password+"\n")
	for _, c := range []struct {
		extra string
		ok    bool
	}{{"storePasswordFile: db.password\n", true}, {"", false}} {
		cfg := writeFile(t, dir, "slipway.yaml", "dataDir: data\nstore: "+dsn.String()+"\n"+c.extra)
		// Keep PGPASSWORD and ~/.pgpass out of it: the file alone must supply the password.
		t.Setenv("PGPASSWORD", "")
		t.Setenv("PGPASSFILE", filepath.Join(dir, "none"))
		_, st, err := daemon.OpenConfigAndStore(context.Background(), cfg, logrus.NewEntry(logrus.New()))
		if !c.ok {
			if err == nil {
				st.Close()
				t.Fatal("opened the PostgreSQL store without a password")
			}
			continue
		}
		if err != nil {
			t.Fatalf("open with storePasswordFile: %v", err)
		}
		if r, err := st.CreateRun(context.Background(), store.NewRun{Pipeline: rotated, Trigger: store.TriggerManual}); err != nil || r.BuildID != 1 {
			t.Fatalf("run on the PostgreSQL store: %d, %v", r.BuildID, err)
		}
		st.Close()
	}
}

// The backup and restore procedure of docs/store.md: a backup of a SQLite installation,
// restored into a new installation on PostgreSQL with the same key, which carries on.
func TestStoreBackupRestoreIntoPostgres(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	writeKey(t, filepath.Join(dir, "store.key"))
	st, err := openWith(t, dir, "store.key")
	if err != nil {
		t.Fatal(err)
	}
	saveRevisions(t, st, 2)
	defer st.Close() // the daemon keeps running: the backup is online

	backup := filepath.Join(t.TempDir(), "slipway-backup.db")
	stdout, _, err := run(t, "store", "backup", "--config", filepath.Join(dir, "slipway.yaml"), "--to", backup)
	if err != nil || !strings.Contains(stdout, "backed up") {
		t.Fatalf("store backup: %v\n%s", err, stdout)
	}

	dsn, err := url.Parse(testenv.PostgresSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	password, _ := dsn.User.Password()
	dsn.User = url.User(dsn.User.Username())
	newDir := t.TempDir()
	writeFile(t, newDir, "db.password", password+"\n")
	if err := os.Link(filepath.Join(dir, "store.key"), filepath.Join(newDir, "store.key")); err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, newDir, "slipway.yaml", "dataDir: data\nstore: "+dsn.String()+
		"\nstorePasswordFile: db.password\nstoreKeyFiles: [store.key]\n")
	stdout, _, err = run(t, "store", "restore", "--config", cfg, "--from", backup)
	if err != nil || !strings.Contains(stdout, "runs                        2 rows") {
		t.Fatalf("store restore: %v\n%s", err, stdout)
	}
	if _, _, err := run(t, "store", "restore", "--config", cfg, "--from", backup); !errors.Is(err, store.ErrDestinationNotEmpty) {
		t.Fatalf("a second restore into the same store: %v; want it refused", err)
	}

	_, restored, err := daemon.OpenConfigAndStore(ctx, cfg, logrus.NewEntry(logrus.New()))
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	readRevision(t, restored, 2)
	if r, err := restored.CreateRun(ctx, store.NewRun{Pipeline: rotated, Trigger: store.TriggerManual}); err != nil || r.BuildID != 3 {
		t.Fatalf("first run after the restore: BUILD_ID %d, %v; want 3", r.BuildID, err)
	}
}
