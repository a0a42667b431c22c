package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

func (nr NewRevision) validate() error {
	if err := nr.Pipeline.validate(); err != nil {
		return err
	}
	switch {
	case nr.Task == "":
		return errors.New("task must be set")
	case nr.Cluster == "":
		return errors.New("cluster must be set")
	case !nr.Kind.Valid():
		return fmt.Errorf("unknown deploy kind %q", nr.Kind)
	case nr.Kind == DeployChart && (nr.Chart == nil || nr.Chart.Chart == "" || nr.Chart.Version == ""):
		return errors.New("a chart deploy needs chart name and version")
	case nr.Kind == DeployYAML && nr.Chart != nil:
		return errors.New("a YAML deploy has no chart")
	case nr.Status != RevisionApplied && nr.Status != RevisionHealthy && nr.Status != RevisionFailed:
		// healthy: a deploy that applied nothing to objects already healthy.
		return fmt.Errorf("a new revision is %s, %s or %s, not %q", RevisionApplied, RevisionHealthy, RevisionFailed, nr.Status)
	}
	for i, e := range nr.Inventory {
		if e.Version == "" || e.Kind == "" || e.Name == "" {
			return fmt.Errorf("inventory entry %d (%s/%s %s/%s) lacks version, kind or name", i, e.Group, e.Version, e.Kind, e.Name)
		}
	}
	return nil
}

// SaveRevision implements Store. The objects are compressed and, with a keyring,
// encrypted (bound to the pipeline, run and task, which the transaction knows).
func (s *DB) SaveRevision(ctx context.Context, nr NewRevision) (Revision, error) {
	what := revisionName(nr.Pipeline, nr.BuildID, nr.Task)
	if nr.Status == "" {
		nr.Status = RevisionApplied
	}
	if err := nr.validate(); err != nil {
		return Revision{}, fmt.Errorf("save %s: %w", what, err)
	}
	policy, err := encodeDriftPolicy(nr.Drift)
	if err != nil {
		return Revision{}, fmt.Errorf("save %s: %w", what, err)
	}
	sum := digest(nr.Objects)
	var chart, chartVersion, valuesDigest sql.NullString
	var release sql.NullInt64
	if c := nr.Chart; c != nil {
		chart = sql.NullString{String: c.Chart, Valid: true}
		chartVersion = sql.NullString{String: c.Version, Valid: true}
		valuesDigest = sql.NullString{String: c.ValuesDigest, Valid: true}
		release = sql.NullInt64{Int64: int64(c.ReleaseRevision), Valid: true}
	}

	logs, err := logRows(nr.Logs)
	if err != nil {
		return Revision{}, fmt.Errorf("save %s: logs: %w", what, err)
	}
	var changes []Change
	if len(logs) > 0 {
		changes = append(changes, Change{Kind: ChangeLogs, Pipeline: nr.Pipeline, BuildID: nr.BuildID, Task: nr.Task})
	}

	var rev Revision
	err = s.writeChanges(ctx, changes, func(tx *sql.Tx) error {
		pid, err := pipelineID(ctx, tx, nr.Pipeline)
		if err != nil {
			return err
		}
		rid, err := runID(ctx, tx, nr.Pipeline, nr.BuildID)
		if err != nil {
			return fmt.Errorf("run: %w", err)
		}
		if len(logs) > 0 {
			if err := s.appendLogs(ctx, tx, rid, nr.Task, logs); err != nil {
				return fmt.Errorf("logs: %w", err)
			}
		}
		blob, encoding, keyID, err := s.codec.pack(s.opts.keyring, nr.Objects, objectsAAD(pid, nr.BuildID, nr.Task))
		if err != nil {
			return fmt.Errorf("objects: %w", err)
		}
		masks, masksSize, err := s.packMasks(nr.Masks, pid, nr.BuildID, nr.Task, keyID)
		if err != nil {
			return fmt.Errorf("masks: %w", err)
		}
		now := s.now()
		var id int64
		err = tx.QueryRowContext(ctx, `
			INSERT INTO revisions (pipeline_id, build_id, task, cluster, namespace, kind, status, reason,
				objects, objects_encoding, objects_size, objects_digest,
				chart, chart_version, values_digest, release_revision, created_at, updated_at, drift_policy, objects_key,
				masks, masks_size, prune, environment)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17, $18, $19, $20, $21, $22, $23)
			RETURNING id`,
			pid, nr.BuildID, nr.Task, nr.Cluster, nr.Namespace, string(nr.Kind), string(nr.Status), nr.Reason,
			blob, encoding, len(nr.Objects), sum,
			chart, chartVersion, valuesDigest, release, now, policy, keyID, masks, masksSize, nr.Prune, nr.Environment).Scan(&id)
		if s.dialect.uniqueViolation(err) {
			return ErrAlreadyExists
		}
		if err != nil {
			return err
		}
		if err := insertInventory(ctx, tx, id, nr.Inventory); err != nil {
			return fmt.Errorf("inventory: %w", err)
		}
		rev, err = s.getRevision(ctx, tx, `r.id = $1`, id)
		return err
	})
	if err != nil {
		return Revision{}, fmt.Errorf("save %s: %w", what, err)
	}
	return rev, nil
}

// objectsAAD binds an encrypted payload to its row: a payload copied into another
// revision (say, to make a rollback deploy something else) fails to decrypt. The numeric
// pipeline id, not its names, so renaming never breaks decryption.
func objectsAAD(pipelineID, buildID int64, task string) []byte {
	return fmt.Appendf(nil, "slipway revision objects\x00%d\x00%d\x00%s", pipelineID, buildID, task)
}

// masksAAD binds a revision's masks to its row, as objectsAAD does its objects.
func masksAAD(pipelineID, buildID int64, task string) []byte {
	return fmt.Appendf(nil, "slipway revision masks\x00%d\x00%d\x00%s", pipelineID, buildID, task)
}

// packMasks packs a revision's masks like its objects, with the key that sealed them
// (keyID; "" for plaintext); nil when there are none.
func (s *DB) packMasks(masks []string, pid, buildID int64, task, keyID string) ([]byte, int, error) {
	if len(masks) == 0 {
		return nil, 0, nil
	}
	raw, err := json.Marshal(masks)
	if err != nil {
		return nil, 0, err
	}
	blob, _, gotKey, err := s.codec.pack(s.opts.keyring, raw, masksAAD(pid, buildID, task))
	if err != nil {
		return nil, 0, err
	}
	if gotKey != keyID {
		return nil, 0, fmt.Errorf("sealed with key %q, the objects with %q", gotKey, keyID)
	}
	return blob, len(raw), nil
}

// unpackMasks reverses packMasks; encoding and keyID are the row's objects'.
func (s *DB) unpackMasks(blob []byte, size int64, encoding, keyID string, pid, buildID int64, task string) ([]string, error) {
	if len(blob) == 0 {
		return nil, nil
	}
	raw, err := s.codec.unpack(s.opts.keyring, encoding, keyID, blob, masksAAD(pid, buildID, task), size)
	if err != nil {
		return nil, err
	}
	var masks []string
	if err := json.Unmarshal(raw, &masks); err != nil {
		return nil, err
	}
	return masks, nil
}

// inventoryChunk rows per INSERT; 9 parameters each, under SQLite's limit of 32766.
const inventoryChunk = 128

func insertInventory(ctx context.Context, tx *sql.Tx, revisionID int64, inv []InventoryEntry) error {
	for start := 0; start < len(inv); start += inventoryChunk {
		end := min(start+inventoryChunk, len(inv))
		q := `INSERT INTO revision_objects (revision_id, position, api_group, api_version, kind, namespace, name,
			desired_digest, applied_fingerprint, adopted) VALUES `
		args := []any{revisionID}
		for i := start; i < end; i++ {
			if i > start {
				q += ", "
			}
			n := len(args)
			q += fmt.Sprintf("($1, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4, n+5, n+6, n+7, n+8, n+9)
			e := inv[i]
			args = append(args, i, e.Group, e.Version, e.Kind, e.Namespace, e.Name, e.Digest, e.Fingerprint, e.Adopted)
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return err
		}
	}
	return nil
}

// getRevision reads the one revision matching where (over revisions r joined with
// pipelines p), with its objects and inventory, inside one snapshot.
func (s *DB) getRevision(ctx context.Context, q querier, where string, args ...any) (Revision, error) {
	revs, err := s.queryRevisions(ctx, q, where+` LIMIT 1`, args...)
	if err != nil {
		return Revision{}, err
	}
	if len(revs) == 0 {
		return Revision{}, ErrNotFound
	}
	return revs[0], nil
}

// queryRevisions reads revisions; where may end in ORDER BY and LIMIT.
func (s *DB) queryRevisions(ctx context.Context, q querier, where string, args ...any) ([]Revision, error) {
	var revs []Revision
	err := s.eachRevision(ctx, q, revisionParts{}, func(r *Revision) error {
		revs = append(revs, *r)
		return nil
	}, where, args...)
	return revs, err
}

// revisionParts says which of a revision's bulky parts eachRevision reads.
type revisionParts struct {
	// known reports the revisions whose objects and inventory are left out (nil: none):
	// they are the bulk of a revision to read, decompress and check.
	known func(*Revision) bool
	// noObjects leaves every revision's objects out and reads its inventory.
	noObjects bool
}

// eachRevision reads revisions and hands them to fn one at a time, each its own copy that
// fn may keep, with the parts asked for. Objects are read one revision at a time after
// the heads, so no more than one revision's objects are held here at a time, and a reader
// that keeps a few revisions does not keep every one read with them.
func (s *DB) eachRevision(ctx context.Context, q querier, parts revisionParts, fn func(*Revision) error, where string, args ...any) error {
	known := parts.known
	objects := "r.objects"
	if known != nil || parts.noObjects {
		objects = "NULL"
	}
	rows, err := q.QueryContext(ctx, `
		SELECT r.id, p.repository, p.name, r.build_id, r.task, r.cluster, r.namespace, r.kind, r.status, r.reason,
			`+objects+`, r.objects_encoding, r.objects_size, r.objects_digest,
			r.chart, r.chart_version, r.values_digest, r.release_revision, r.created_at, r.updated_at, r.drift_policy,
			r.pipeline_id, r.objects_key, r.masks, r.masks_size, r.prune, r.environment
		FROM revisions r JOIN pipelines p ON p.id = r.pipeline_id
		WHERE `+where, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	// head is a revision as the first query reads it, with how its objects are stored, to
	// unpack them once read. The rows are all read before any objects: a connection runs
	// one query at a time.
	type head struct {
		rev             Revision
		id, pid, size   int64
		blob            []byte
		encoding, keyID string
	}
	var heads []head
	for rows.Next() {
		var h head
		r := &h.rev
		var created, updated int64
		var chart, chartVersion, valuesDigest sql.NullString
		var release sql.NullInt64
		var policy string
		var masks []byte
		var masksSize int64
		if err := rows.Scan(&h.id, &r.Pipeline.Repository, &r.Pipeline.Name, &r.BuildID, &r.Task, &r.Cluster,
			&r.Namespace, &r.Kind, &r.Status, &r.Reason, &h.blob, &h.encoding, &h.size, &r.ObjectsDigest,
			&chart, &chartVersion, &valuesDigest, &release, &created, &updated, &policy, &h.pid, &h.keyID, &masks, &masksSize, &r.Prune, &r.Environment); err != nil {
			return err
		}
		if r.Drift, err = decodeDriftPolicy(policy); err != nil {
			return fmt.Errorf("%s: %w", revisionName(r.Pipeline, r.BuildID, r.Task), err)
		}
		if r.Masks, err = s.unpackMasks(masks, masksSize, h.encoding, h.keyID, h.pid, r.BuildID, r.Task); err != nil {
			return fmt.Errorf("%s: masks: %w", revisionName(r.Pipeline, r.BuildID, r.Task), err)
		}
		if chart.Valid {
			r.Chart = &ChartRelease{Chart: chart.String, Version: chartVersion.String,
				ValuesDigest: valuesDigest.String, ReleaseRevision: int(release.Int64)}
		}
		r.CreatedAt = fromMicros(sql.NullInt64{Int64: created, Valid: true})
		r.UpdatedAt = fromMicros(sql.NullInt64{Int64: updated, Valid: true})
		heads = append(heads, h)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows.Close()
	for i := range heads {
		h := heads[i]
		heads[i] = head{} // the copy is fn's; this one's blob goes as soon as it is unpacked
		r := h.rev
		switch {
		case known != nil && known(&r):
		case parts.noObjects:
			var err error
			if r.Inventory, err = readInventory(ctx, q, h.id); err != nil {
				return fmt.Errorf("%s: inventory: %w", revisionName(r.Pipeline, r.BuildID, r.Task), err)
			}
		default:
			if err := s.unpackRevision(ctx, q, &r, h.id, h.pid, h.size, h.blob, known != nil, h.encoding, h.keyID); err != nil {
				return err
			}
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	return nil
}

// unpackRevision fills r's objects (read from the row id first when read) and inventory.
func (s *DB) unpackRevision(ctx context.Context, q querier, r *Revision, id, pid, size int64, blob []byte, read bool, encoding, keyID string) error {
	if read {
		if err := q.QueryRowContext(ctx, `SELECT objects FROM revisions WHERE id = $1`, id).Scan(&blob); err != nil {
			return fmt.Errorf("%s: objects: %w", revisionName(r.Pipeline, r.BuildID, r.Task), err)
		}
	}
	var err error
	aad := objectsAAD(pid, r.BuildID, r.Task)
	if r.Objects, err = s.codec.unpack(s.opts.keyring, encoding, keyID, blob, aad, size); err != nil {
		return fmt.Errorf("%s: %w", revisionName(r.Pipeline, r.BuildID, r.Task), err)
	}
	if got := digest(r.Objects); got != r.ObjectsDigest {
		return fmt.Errorf("%s: objects digest %s, stored %s: the row is corrupt",
			revisionName(r.Pipeline, r.BuildID, r.Task), got, r.ObjectsDigest)
	}
	if r.Inventory, err = readInventory(ctx, q, id); err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	return nil
}

func readInventory(ctx context.Context, q querier, revisionID int64) ([]InventoryEntry, error) {
	rows, err := q.QueryContext(ctx, `
		SELECT api_group, api_version, kind, namespace, name, desired_digest, applied_fingerprint, adopted FROM revision_objects
		WHERE revision_id = $1 ORDER BY position`, revisionID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var inv []InventoryEntry
	for rows.Next() {
		var e InventoryEntry
		if err := rows.Scan(&e.Group, &e.Version, &e.Kind, &e.Namespace, &e.Name, &e.Digest, &e.Fingerprint, &e.Adopted); err != nil {
			return nil, err
		}
		inv = append(inv, e)
	}
	return inv, rows.Err()
}

const byRunTask = `p.repository = $1 AND p.name = $2 AND r.build_id = $3 AND r.task = $4`

// GetRevision implements Store.
func (s *DB) GetRevision(ctx context.Context, ref PipelineRef, buildID int64, task string) (Revision, error) {
	var rev Revision
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		rev, err = s.getRevision(ctx, tx, byRunTask, ref.Repository, ref.Name, buildID, task)
		return err
	})
	if err != nil {
		return Revision{}, fmt.Errorf("get %s: %w", revisionName(ref, buildID, task), err)
	}
	return rev, nil
}

// LatestRevision implements Store.
func (s *DB) LatestRevision(ctx context.Context, ref PipelineRef, task string, status RevisionStatus) (Revision, error) {
	var rev Revision
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		rev, err = s.getRevision(ctx, tx,
			`p.repository = $1 AND p.name = $2 AND r.task = $3 AND r.status = $4 ORDER BY r.build_id DESC`,
			ref.Repository, ref.Name, task, string(status))
		return err
	})
	if err != nil {
		return Revision{}, fmt.Errorf("latest %s revision of task %s of %s: %w", status, task, ref, err)
	}
	return rev, nil
}

// currentOnWhere selects a task's revisions on one cluster that count as current there,
// newest first: $1-$4 the pipeline's repository and name, the task, the cluster; $5-$7 the
// healthy, applied and failed statuses.
const currentOnWhere = `p.repository = $1 AND p.name = $2 AND r.task = $3 AND r.cluster = $4 AND r.status IN ($5, $6, $7)
	AND (r.status <> $7 OR r.objects_size > 0) ORDER BY r.build_id DESC`

// CurrentRevisionOn implements Store. A failed revision counts only when it applied
// something (CurrentRevisions' rule): a chart that Helm refused left nothing behind.
func (s *DB) CurrentRevisionOn(ctx context.Context, ref PipelineRef, task, cluster string) (Revision, error) {
	var rev Revision
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		rev, err = s.getRevision(ctx, tx, currentOnWhere, ref.Repository, ref.Name, task, cluster,
			string(RevisionHealthy), string(RevisionApplied), string(RevisionFailed))
		return err
	})
	if err != nil {
		return Revision{}, fmt.Errorf("current revision of task %s of %s on cluster %s: %w", task, ref, cluster, err)
	}
	return rev, nil
}

// DeployBasis implements Store.
func (s *DB) DeployBasis(ctx context.Context, ref PipelineRef, task, cluster string) (DeployBasis, error) {
	var b DeployBasis
	heads := revisionParts{noObjects: true}
	err := s.read(ctx, func(tx *sql.Tx) error {
		b = DeployBasis{}
		if err := s.eachRevision(ctx, tx, heads, func(r *Revision) error { b.Current = r; return nil },
			currentOnWhere+` LIMIT 1`, ref.Repository, ref.Name, task, cluster,
			string(RevisionHealthy), string(RevisionApplied), string(RevisionFailed)); err != nil {
			return err
		}
		// Most often the newest is the current one (the task did not move): its inventory
		// is not read twice.
		isCurrent := func(r *Revision) bool { return b.Current != nil && r.BuildID == b.Current.BuildID }
		return s.eachRevision(ctx, tx, revisionParts{known: isCurrent, noObjects: true}, func(r *Revision) error {
			if b.Newest = r; isCurrent(r) {
				b.Newest = b.Current
			}
			return nil
		}, `p.repository = $1 AND p.name = $2 AND r.task = $3 AND r.status IN ($4, $5, $6) ORDER BY r.build_id DESC LIMIT 1`,
			ref.Repository, ref.Name, task, string(RevisionApplied), string(RevisionHealthy), string(RevisionFailed))
	})
	if err != nil {
		return DeployBasis{}, fmt.Errorf("revisions of task %s of %s before a deploy to cluster %s: %w", task, ref, cluster, err)
	}
	return b, nil
}

// ListRevisions implements Store.
func (s *DB) ListRevisions(ctx context.Context, ref PipelineRef, buildID int64) ([]Revision, error) {
	var revs []Revision
	err := s.read(ctx, func(tx *sql.Tx) error {
		if _, err := runID(ctx, tx, ref, buildID); err != nil {
			return err
		}
		var err error
		revs, err = s.queryRevisions(ctx, tx, `p.repository = $1 AND p.name = $2 AND r.build_id = $3 ORDER BY r.id`,
			ref.Repository, ref.Name, buildID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list revisions of %s: %w", runName(ref, buildID), err)
	}
	return revs, nil
}

// TransitionRevision implements Store, with the same compare-and-set as TransitionRun.
func (s *DB) TransitionRevision(ctx context.Context, ref PipelineRef, buildID int64, task string, from, to RevisionStatus, reason string) (Revision, error) {
	what := revisionName(ref, buildID, task)
	if !from.CanMove(to) {
		return Revision{}, &TransitionError{What: what, From: string(from), To: string(to), Illegal: true}
	}
	var rev Revision
	err := s.write(ctx, func(tx *sql.Tx) error {
		pid, err := pipelineID(ctx, tx, ref)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `
			UPDATE revisions SET status = $1, reason = $2, updated_at = $3
			WHERE pipeline_id = $4 AND build_id = $5 AND task = $6 AND status = $7`,
			string(to), reason, s.now(), pid, buildID, task, string(from))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		cur, err := s.getRevision(ctx, tx, byRunTask, ref.Repository, ref.Name, buildID, task)
		if err != nil {
			return err
		}
		if n == 0 {
			return &TransitionError{What: what, From: string(from), To: string(to), Current: string(cur.Status)}
		}
		rev = cur
		return nil
	})
	if err != nil {
		return Revision{}, fmt.Errorf("move %s to %s: %w", what, to, err)
	}
	return rev, nil
}

// EnvironmentRevisions implements Store: for each environment of the pipeline and each task
// that deployed there, the newest healthy revision (what is deployed where), oldest first.
func (s *DB) EnvironmentRevisions(ctx context.Context, ref PipelineRef) ([]Revision, error) {
	var revs []Revision
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		revs, err = s.queryRevisions(ctx, tx,
			`p.repository = $1 AND p.name = $2 AND r.environment <> '' AND r.status = $3
				AND r.build_id = (SELECT MAX(r2.build_id) FROM revisions r2
					WHERE r2.pipeline_id = r.pipeline_id AND r2.environment = r.environment
						AND r2.task = r.task AND r2.status = $3)
			ORDER BY r.build_id, r.id`,
			ref.Repository, ref.Name, string(RevisionHealthy))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("deployments of %s: %w", ref, err)
	}
	return revs, nil
}
