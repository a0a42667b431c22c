package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Backup writes a consistent snapshot of the store, online, into a new SQLite file at
// path, whichever engine the store runs on: Copy reads one snapshot (a read transaction)
// while the daemon goes on writing. The file is readable by its owner only; revision
// payloads stay encrypted, so restoring it needs the store's keys. A failed backup leaves
// no file behind.
func Backup(ctx context.Context, s *DB, path string) (res CopyResult, err error) {
	if _, err := os.Stat(path); err == nil {
		return res, fmt.Errorf("backup: %s already exists; name a new file", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("backup: %w", err)
	}
	dst, err := OpenSQLite(ctx, path)
	if err != nil {
		return res, fmt.Errorf("backup: %w", err)
	}
	defer func() {
		err = errors.Join(err, dst.Close())
		if err != nil {
			for _, f := range []string{path, path + "-wal", path + "-shm"} {
				_ = os.Remove(f)
			}
		}
	}()
	res, err = Copy(ctx, s, dst)
	if err != nil {
		return res, fmt.Errorf("backup: %w", err)
	}
	// Everything into the main file, so the backup is that one file.
	if err := dst.dialect.afterRewrite(ctx, dst.writer); err != nil {
		return res, fmt.Errorf("backup: checkpoint: %w", err)
	}
	return res, nil
}

// Restore copies a backup file Backup wrote into s, which must be empty (a new database or
// file). The backup itself is not changed: a copy of it is opened, and brought up to this
// version's schema if an older Slipway wrote it. The processes the backup names as running
// pipelines (holders and their claims) are left out: none of them runs on the restored
// store, and the daemon starting on it must see their unfinished runs as interrupted.
func Restore(ctx context.Context, backup string, s *DB) (CopyResult, error) {
	tmp, err := os.MkdirTemp("", "slipway-restore-")
	if err != nil {
		return CopyResult{}, fmt.Errorf("restore: %w", err)
	}
	defer os.RemoveAll(tmp)
	work := filepath.Join(tmp, "backup.db")
	if err := copyFile(backup, work); err != nil {
		return CopyResult{}, fmt.Errorf("restore: %w", err)
	}
	src, err := OpenSQLite(ctx, work)
	if err != nil {
		return CopyResult{}, fmt.Errorf("restore %s: %w", backup, err)
	}
	defer src.Close()
	res, err := copyStore(ctx, src, s, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM pipeline_claims`)
		if err == nil {
			_, err = tx.ExecContext(ctx, `DELETE FROM holders`)
		}
		return err
	})
	if err != nil {
		return res, fmt.Errorf("restore %s: %w", backup, err)
	}
	return res, nil
}

// copyFile copies a closed SQLite file (Backup closes it, which folds its WAL in).
func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
