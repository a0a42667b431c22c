package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ChangeRequest says a run request was recorded or finished. Pipeline and BuildID name
// the run.
const ChangeRequest ChangeKind = "request"

// RequestKind is what a RunRequest asks of the run's holder.
type RequestKind string

// The kinds of RunRequest.
const (
	RequestCancel  RequestKind = "cancel"
	RequestApprove RequestKind = "approve"
	RequestReject  RequestKind = "reject"
)

// RequestOutcome is what became of a RunRequest; "" while it is pending.
type RequestOutcome string

// The outcomes of a RunRequest. The refusals mirror the errors the holder's run engine
// gives a local call, so the process that recorded the request can answer with the same.
const (
	RequestPending          RequestOutcome = ""
	RequestDone             RequestOutcome = "done"              // cancelled, or the answer handed to the gate
	RequestNotActive        RequestOutcome = "not_active"        // the holder no longer queues or runs it
	RequestNotAwaiting      RequestOutcome = "not_awaiting"      // no gate waits for an answer
	RequestNotApprover      RequestOutcome = "not_approver"      // the actor may not answer the stage
	RequestApproversUnknown RequestOutcome = "approvers_unknown" // the forge did not say who may
	RequestFailed           RequestOutcome = "failed"            // anything else; Detail says what
	RequestRunEnded         RequestOutcome = "run_ended"         // the run ended before the holder took it
)

// ErrRunEnded is returned (wrapped) by RequestRun for a run that has already ended.
var ErrRunEnded = errors.New("the run has ended")

// NewRunRequest is a request for the holder of a run.
type NewRunRequest struct {
	Pipeline PipelineRef
	BuildID  int64
	Kind     RequestKind
	Actor    string // who asked: the audit entry the holder records names them
	Comment  string // an approval's comment
}

// RunRequest is a recorded request and, once it has one, its outcome.
type RunRequest struct {
	ID       int64
	Pipeline PipelineRef
	BuildID  int64
	Holder   string // the process holding the run when it was asked
	Kind     RequestKind
	Actor    string
	Comment  string
	Created  time.Time
	Taken    time.Time // zero until the holder takes it
	Finished time.Time // zero while pending
	Outcome  RequestOutcome
	Detail   string // why, for a refusal
}

// requestColumns is what scanRequest reads, in order; q is run_requests, r runs and p
// pipelines.
const requestColumns = `q.id, p.repository, p.name, r.build_id, q.holder, q.kind, q.actor, q.comment,
	q.created_at, q.taken_at, q.finished_at, q.outcome, q.detail`

const requestJoin = `run_requests q JOIN runs r ON r.id = q.run_id JOIN pipelines p ON p.id = r.pipeline_id`

func scanRequest(sc scanner) (RunRequest, error) {
	var q RunRequest
	var created, taken, finished int64
	err := sc.Scan(&q.ID, &q.Pipeline.Repository, &q.Pipeline.Name, &q.BuildID, &q.Holder, &q.Kind, &q.Actor, &q.Comment,
		&created, &taken, &finished, &q.Outcome, &q.Detail)
	if err != nil {
		return RunRequest{}, err
	}
	q.Created = fromMicros(sql.NullInt64{Int64: created, Valid: true})
	q.Taken = fromMicros(sql.NullInt64{Int64: taken, Valid: taken != 0})
	q.Finished = fromMicros(sql.NullInt64{Int64: finished, Valid: finished != 0})
	return q, nil
}

// RequestRun records a request for the process holding the run, and wakes it through the
// change relay. A run that has ended is refused with ErrRunEnded, one that does not exist
// with ErrNotFound.
func (s *DB) RequestRun(ctx context.Context, nr NewRunRequest) (RunRequest, error) {
	what := runName(nr.Pipeline, nr.BuildID)
	switch {
	case nr.Actor == "":
		return RunRequest{}, fmt.Errorf("request %s: no actor", what)
	case nr.Kind != RequestCancel && nr.Kind != RequestApprove && nr.Kind != RequestReject:
		return RunRequest{}, fmt.Errorf("request %s: unknown kind %q", what, nr.Kind)
	}
	var out RunRequest
	c := Change{Kind: ChangeRequest, Pipeline: nr.Pipeline, BuildID: nr.BuildID}
	err := s.writeChange(ctx, c, func(tx *sql.Tx) error {
		var id int64
		var holder string
		var status RunStatus
		err := tx.QueryRowContext(ctx, `
			SELECT r.id, r.holder, r.status FROM runs r JOIN pipelines p ON p.id = r.pipeline_id
			WHERE p.repository = $1 AND p.name = $2 AND r.build_id = $3`,
			nr.Pipeline.Repository, nr.Pipeline.Name, nr.BuildID).Scan(&id, &holder, &status)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if status.Final() {
			return fmt.Errorf("%w %s", ErrRunEnded, status)
		}
		var rid int64
		if err := tx.QueryRowContext(ctx, `
			INSERT INTO run_requests (run_id, holder, kind, actor, comment, created_at)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			id, holder, string(nr.Kind), nr.Actor, nr.Comment, s.now()).Scan(&rid); err != nil {
			return err
		}
		out, err = scanRequest(tx.QueryRowContext(ctx, `SELECT `+requestColumns+` FROM `+requestJoin+` WHERE q.id = $1`, rid))
		return err
	})
	if err != nil {
		return RunRequest{}, fmt.Errorf("request %s of %s: %w", nr.Kind, what, err)
	}
	return out, nil
}

// GetRunRequest reads a request and its outcome.
func (s *DB) GetRunRequest(ctx context.Context, id int64) (RunRequest, error) {
	q, err := scanRequest(s.reader.QueryRowContext(ctx, `SELECT `+requestColumns+` FROM `+requestJoin+` WHERE q.id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return RunRequest{}, fmt.Errorf("run request %d: %w", id, err)
	}
	return q, nil
}

// TakeRunRequests returns the untaken requests addressed to holder, oldest first, and
// marks them taken: each request is taken once, by the one process holding its run.
func (s *DB) TakeRunRequests(ctx context.Context, holder string) ([]RunRequest, error) {
	// Holders ask every few seconds and there is mostly nothing: a read answers that
	// without a write transaction.
	var waiting int
	if err := s.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM run_requests WHERE holder = $1 AND taken_at = 0 AND finished_at = 0 LIMIT 1) AS waiting`,
		holder).Scan(&waiting); err != nil {
		return nil, fmt.Errorf("take run requests: %w", err)
	}
	if waiting == 0 {
		return nil, nil
	}
	var out []RunRequest
	err := s.write(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		ids, err := queryInts(ctx, tx, `
			UPDATE run_requests SET taken_at = $1 WHERE holder = $2 AND taken_at = 0 AND finished_at = 0 RETURNING id`, s.now(), holder)
		if err != nil {
			return err
		}
		for _, id := range ids {
			q, err := scanRequest(tx.QueryRowContext(ctx, `SELECT `+requestColumns+` FROM `+requestJoin+` WHERE q.id = $1`, id))
			if err != nil {
				return err
			}
			out = append(out, q)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("take run requests: %w", err)
	}
	return out, nil
}

// FinishRunRequest records the outcome of a taken request, once; detail says why for a
// refusal. It wakes the process that recorded the request.
func (s *DB) FinishRunRequest(ctx context.Context, q RunRequest, outcome RequestOutcome, detail string) error {
	if outcome == RequestPending {
		return fmt.Errorf("finish run request %d: no outcome", q.ID)
	}
	c := Change{Kind: ChangeRequest, Pipeline: q.Pipeline, BuildID: q.BuildID}
	err := s.writeChange(ctx, c, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
			UPDATE run_requests SET outcome = $1, detail = $2, finished_at = $3 WHERE id = $4 AND finished_at = 0`,
			string(outcome), detail, s.now(), q.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("finish run request %d: %w", q.ID, err)
	}
	return nil
}

// endRunRequests gives the run's requests that have no outcome yet one, in the
// transaction that ends the run: no request outlives its run waiting for a holder.
// untakenOnly leaves those the holder took to the holder (it is alive and ending the run
// itself, perhaps because of them).
func endRunRequests(ctx context.Context, tx *sql.Tx, runRowID int64, now int64, detail string, untakenOnly bool) error {
	query := `UPDATE run_requests SET outcome = $1, detail = $2, finished_at = $3 WHERE run_id = $4 AND finished_at = 0`
	if untakenOnly {
		query += ` AND taken_at = 0`
	}
	if _, err := tx.ExecContext(ctx, query, string(RequestRunEnded), detail, now, runRowID); err != nil {
		return fmt.Errorf("end the run's requests: %w", err)
	}
	return nil
}

// queryInts returns the one integer column of query's rows.
func queryInts(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
