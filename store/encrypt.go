package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// reencryptBatch is how many revisions one write transaction re-encrypts: small enough
// that the daemon's own writes wait only briefly for the lock.
const reencryptBatch = 64

// ReencryptResult says what Reencrypt did.
type ReencryptResult struct {
	Rewritten int    // payloads encrypted with the first key now
	KeyID     string // the first key's id
}

// Reencrypt encrypts every revision payload not yet encrypted with the keyring's first
// key (plaintext ones included) with it. Afterwards the other keys are no longer used and
// may be removed from the configuration. Freed pages are zeroed (secure_delete) and the
// WAL is truncated, so the old ciphertext does not stay behind in the files either.
func (s *DB) Reencrypt(ctx context.Context) (ReencryptResult, error) {
	kr := s.opts.keyring
	if kr == nil {
		return ReencryptResult{}, errors.New("re-encrypt revisions: the store was opened without keys")
	}
	n, err := s.rewriteObjects(ctx, `objects_key <> $1`, kr.Primary())
	if err != nil {
		return ReencryptResult{Rewritten: n, KeyID: kr.Primary()}, fmt.Errorf("re-encrypt revisions: %w", err)
	}
	return ReencryptResult{Rewritten: n, KeyID: kr.Primary()}, nil
}

// sealOnOpen runs when a store is opened with a keyring, after the migrations: it refuses
// a store holding payloads of a key the keyring lacks (better at start than at the next
// rollback), and encrypts payloads still in plaintext (stores written before schema
// version 7, or by a process without keys).
func (s *DB) sealOnOpen(ctx context.Context) error {
	kr := s.opts.keyring
	rows, err := s.writer.QueryContext(ctx, `SELECT DISTINCT objects_key FROM revisions WHERE objects_key <> ''`)
	if err != nil {
		return err
	}
	var missing []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		if !kr.has(id) {
			missing = append(missing, id)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	if len(missing) > 0 {
		return &MissingKeyError{KeyID: missing[0]}
	}
	// A read first: most opens find nothing to seal and need not take the write lock.
	var plain bool
	if err := s.writer.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM revisions WHERE objects_key = '')`).Scan(&plain); err != nil || !plain {
		return err
	}
	if _, err := s.rewriteObjects(ctx, `objects_key = ''`); err != nil {
		return fmt.Errorf("encrypt plaintext revisions: %w", err)
	}
	return nil
}

// rewriteObjects re-packs, with the keyring's first key, the payload of every revision
// matching where (a condition on objects_key, which is also re-checked per row so a
// concurrent rewrite is not undone). It returns how many it rewrote.
func (s *DB) rewriteObjects(ctx context.Context, where string, args ...any) (int, error) {
	done := 0
	after := int64(0)
	for {
		var batch int
		var last int64
		err := s.write(ctx, func(tx *sql.Tx) error {
			rows, err := tx.QueryContext(ctx, `
				SELECT id, pipeline_id, build_id, task, objects, objects_encoding, objects_key, objects_size, objects_digest,
					masks, masks_size
				FROM revisions WHERE id > $`+fmt.Sprint(len(args)+1)+` AND `+where+` ORDER BY id LIMIT `+fmt.Sprint(reencryptBatch),
				append(args, after)...)
			if err != nil {
				return err
			}
			type row struct {
				id, pid, buildID, size int64
				task, encoding, keyID  string
				digest                 string
				blob                   []byte
				masks                  []byte
				masksSize              int64
			}
			var todo []row
			for rows.Next() {
				var r row
				if err := rows.Scan(&r.id, &r.pid, &r.buildID, &r.task, &r.blob, &r.encoding, &r.keyID, &r.size, &r.digest, &r.masks, &r.masksSize); err != nil {
					rows.Close()
					return err
				}
				todo = append(todo, r)
			}
			if err := errors.Join(rows.Err(), rows.Close()); err != nil {
				return err
			}
			for _, r := range todo {
				aad := objectsAAD(r.pid, r.buildID, r.task)
				raw, err := s.codec.unpack(s.opts.keyring, r.encoding, r.keyID, r.blob, aad, r.size)
				if err != nil {
					return fmt.Errorf("revision %d: %w", r.id, err)
				}
				if got := digest(raw); got != r.digest {
					return fmt.Errorf("revision %d: objects digest %s, stored %s: the row is corrupt", r.id, got, r.digest)
				}
				masks, err := s.unpackMasks(r.masks, r.masksSize, r.encoding, r.keyID, r.pid, r.buildID, r.task)
				if err != nil {
					return fmt.Errorf("revision %d masks: %w", r.id, err)
				}
				blob, encoding, keyID, err := s.codec.pack(s.opts.keyring, raw, aad)
				if err != nil {
					return fmt.Errorf("revision %d: %w", r.id, err)
				}
				masksBlob, _, err := s.packMasks(masks, r.pid, r.buildID, r.task, keyID)
				if err != nil {
					return fmt.Errorf("revision %d masks: %w", r.id, err)
				}
				if _, err := tx.ExecContext(ctx, `
					UPDATE revisions SET objects = $1, objects_encoding = $2, objects_key = $3, masks = $6
					WHERE id = $4 AND objects_key = $5`, blob, encoding, keyID, r.id, r.keyID, masksBlob); err != nil {
					return fmt.Errorf("revision %d: %w", r.id, err)
				}
				last = r.id
			}
			batch = len(todo)
			return nil
		})
		if err != nil {
			return done, err
		}
		done += batch
		after = last
		if batch < reencryptBatch {
			break
		}
	}
	if done > 0 {
		if err := s.dialect.afterRewrite(ctx, s.writer); err != nil {
			return done, fmt.Errorf("drop the replaced payloads: %w", err)
		}
	}
	return done, nil
}
