package daemon

import (
	"fmt"
	"os"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/pipeline/yamlstrict"
	"github.com/slipwayhq/slipway/store"
)

// StoreKeyring loads the keys that encrypt stored revisions: the files storeKeyFiles
// lists, first one encrypting; or, when it is not set, DATADIR/store.key, made on the
// first start. Errors name the field and the file, never a key.
func StoreKeyring(cfg *config.Config, log *logrus.Entry) (*store.Keyring, error) {
	files := cfg.StoreKeyFiles
	fields := make([]string, len(files))
	for i := range files {
		fields[i] = yamlstrict.Index("storeKeyFiles", i)
	}
	if len(files) == 0 {
		path := cfg.DefaultStoreKeyFile()
		created, err := store.EnsureKeyFile(path)
		if err != nil {
			return nil, fmt.Errorf("create the store key %s (storeKeyFiles is not set): %w", path, err)
		}
		if created {
			log.WithField("file", path).Warn("created the key that encrypts stored revisions, beside the database: " +
				"back it up with the database, and in production keep it elsewhere (storeKeyFiles in slipway.yaml)")
		}
		files, fields = []string{path}, []string{"store key (storeKeyFiles is not set)"}
	}
	keys := make([][]byte, len(files))
	for i, f := range files {
		where := fields[i]
		if len(cfg.StoreKeyFiles) > 0 {
			if pos := cfg.Positions.Of(fields[i]); pos.Line > 0 {
				where = fmt.Sprintf("%s:%d:%d: %s", cfg.File, pos.Line, pos.Column, fields[i])
			}
		}
		key, err := store.ReadKeyFile(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", where, f, err)
		}
		if info, err := os.Stat(f); err == nil && info.Mode().Perm()&0o077 != 0 {
			log.WithFields(logrus.Fields{"file": f, "mode": info.Mode().Perm().String()}).
				Warn("a store key file is readable by other users than its owner: chmod 600 it")
		}
		keys[i] = key
	}
	kr, err := store.NewKeyring(keys...)
	if err != nil {
		return nil, fmt.Errorf("storeKeyFiles: %w", err)
	}
	return kr, nil
}
