package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

func taskName(ref PipelineRef, buildID int64, name string) string {
	return fmt.Sprintf("task %s of %s", name, runName(ref, buildID))
}

const taskColumns = `t.stage, t.name, t.type, t.status, t.reason, t.started_at, t.finished_at, t.outputs`

func scanTask(sc scanner, ref PipelineRef, buildID int64) (Task, error) {
	t := Task{Pipeline: ref, BuildID: buildID}
	var started, finished sql.NullInt64
	var outputs string
	if err := sc.Scan(&t.Stage, &t.Name, &t.Type, &t.Status, &t.Reason, &started, &finished, &outputs); err != nil {
		return Task{}, err
	}
	t.StartedAt = fromMicros(started)
	t.FinishedAt = fromMicros(finished)
	if err := json.Unmarshal([]byte(outputs), &t.Outputs); err != nil {
		return Task{}, fmt.Errorf("outputs of task %s: %w", t.Name, err)
	}
	return t, nil
}

// AddTask implements Store.
func (s *DB) AddTask(ctx context.Context, ref PipelineRef, buildID int64, nt NewTask) (Task, error) {
	what := taskName(ref, buildID, nt.Name)
	if !nt.complete() {
		return Task{}, fmt.Errorf("add %s: stage, name and type must all be set", what)
	}
	var t Task
	err := s.writeChange(ctx, Change{Kind: ChangeTask, Pipeline: ref, BuildID: buildID, Task: nt.Name}, func(tx *sql.Tx) error {
		id, err := runID(ctx, tx, ref, buildID)
		if err != nil {
			return fmt.Errorf("run: %w", err)
		}
		if err := s.insertTask(ctx, tx, id, nt); err != nil {
			return err
		}
		t, err = getTask(ctx, tx, ref, buildID, id, nt.Name)
		return err
	})
	if err != nil {
		return Task{}, fmt.Errorf("add %s: %w", what, err)
	}
	return t, nil
}

func getTask(ctx context.Context, q querier, ref PipelineRef, buildID, runID int64, name string) (Task, error) {
	t, err := scanTask(q.QueryRowContext(ctx,
		`SELECT `+taskColumns+` FROM tasks t WHERE t.run_id = $1 AND t.name = $2`, runID, name), ref, buildID)
	if errors.Is(err, sql.ErrNoRows) {
		return Task{}, ErrNotFound
	}
	return t, err
}

// GetTask implements Store.
func (s *DB) GetTask(ctx context.Context, ref PipelineRef, buildID int64, name string) (Task, error) {
	var t Task
	err := s.read(ctx, func(tx *sql.Tx) error {
		id, err := runID(ctx, tx, ref, buildID)
		if err != nil {
			return err
		}
		t, err = getTask(ctx, tx, ref, buildID, id, name)
		return err
	})
	if err != nil {
		return Task{}, fmt.Errorf("get %s: %w", taskName(ref, buildID, name), err)
	}
	return t, nil
}

// ListTasks implements Store.
func (s *DB) ListTasks(ctx context.Context, ref PipelineRef, buildID int64) ([]Task, error) {
	var tasks []Task
	err := s.read(ctx, func(tx *sql.Tx) error {
		id, err := runID(ctx, tx, ref, buildID)
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+taskColumns+` FROM tasks t WHERE t.run_id = $1 ORDER BY t.id`, id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			t, err := scanTask(rows, ref, buildID)
			if err != nil {
				return err
			}
			tasks = append(tasks, t)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list tasks of %s: %w", runName(ref, buildID), err)
	}
	return tasks, nil
}

// TransitionTask implements Store, with the same compare-and-set as TransitionRun.
func (s *DB) TransitionTask(ctx context.Context, ref PipelineRef, buildID int64, name string, from, to TaskStatus, reason string) (Task, error) {
	return s.EndTask(ctx, ref, buildID, name, TaskEnd{From: from, To: to, Reason: reason})
}

// EndTask implements Store: the task's last log lines, its outputs and its move, in one
// write transaction, so a run's task costs one commit to end rather than three.
func (s *DB) EndTask(ctx context.Context, ref PipelineRef, buildID int64, name string, end TaskEnd) (Task, error) {
	what := taskName(ref, buildID, name)
	from, to := end.From, end.To
	if !from.CanMove(to) {
		return Task{}, &TransitionError{What: what, From: string(from), To: string(to), Illegal: true}
	}
	rows, err := logRows(end.Logs)
	if err != nil {
		return Task{}, fmt.Errorf("move %s to %s: logs: %w", what, to, err)
	}
	var outputs []byte
	if end.Outputs != nil {
		if outputs, err = json.Marshal(end.Outputs); err != nil {
			return Task{}, fmt.Errorf("move %s to %s: outputs: %w", what, to, err)
		}
	}
	changes := []Change{{Kind: ChangeTask, Pipeline: ref, BuildID: buildID, Task: name}}
	if len(rows) > 0 {
		changes = []Change{{Kind: ChangeLogs, Pipeline: ref, BuildID: buildID, Task: name}, changes[0]}
	}
	var t Task
	err = s.writeChanges(ctx, changes, func(tx *sql.Tx) error {
		rid, err := runID(ctx, tx, ref, buildID)
		if err != nil {
			return err
		}
		if len(rows) > 0 {
			if err := s.appendLogs(ctx, tx, rid, name, rows); err != nil {
				return err
			}
		}
		if outputs != nil {
			if err := setTaskOutputs(ctx, tx, rid, name, outputs); err != nil {
				return err
			}
		}
		now := s.now()
		res, err := tx.ExecContext(ctx, `
			UPDATE tasks SET status = $1, reason = $2,
				started_at  = CASE WHEN $3 THEN $4 ELSE started_at END,
				finished_at = CASE WHEN $5 THEN $4 ELSE finished_at END
			WHERE run_id = $6 AND name = $7 AND status = $8`,
			string(to), end.Reason, to == TaskRunning, now, to.Final(), rid, name, string(from))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			cur, err := getTask(ctx, tx, ref, buildID, rid, name)
			if err != nil {
				return err
			}
			return &TransitionError{What: what, From: string(from), To: string(to), Current: string(cur.Status)}
		}
		t, err = getTask(ctx, tx, ref, buildID, rid, name)
		return err
	})
	if err != nil {
		return Task{}, fmt.Errorf("move %s to %s: %w", what, to, err)
	}
	return t, nil
}

// SetTaskOutputs implements Store.
func (s *DB) SetTaskOutputs(ctx context.Context, ref PipelineRef, buildID int64, name string, outputs map[string]string) error {
	what := taskName(ref, buildID, name)
	if outputs == nil {
		outputs = map[string]string{}
	}
	body, err := json.Marshal(outputs)
	if err != nil {
		return fmt.Errorf("set outputs of %s: %w", what, err)
	}
	err = s.writeChange(ctx, Change{Kind: ChangeTask, Pipeline: ref, BuildID: buildID, Task: name}, func(tx *sql.Tx) error {
		rid, err := runID(ctx, tx, ref, buildID)
		if err != nil {
			return err
		}
		return setTaskOutputs(ctx, tx, rid, name, body)
	})
	if err != nil {
		return fmt.Errorf("set outputs of %s: %w", what, err)
	}
	return nil
}

// setTaskOutputs replaces the outputs of the task of the run whose row is rid with body.
func setTaskOutputs(ctx context.Context, tx *sql.Tx, rid int64, name string, body []byte) error {
	res, err := tx.ExecContext(ctx, `UPDATE tasks SET outputs = $1 WHERE run_id = $2 AND name = $3`, string(body), rid, name)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return ErrNotFound
	}
	return nil
}

// insertTask records nt pending on the run whose row is runRow; ErrAlreadyExists when the
// run has a task of that name.
func (s *DB) insertTask(ctx context.Context, tx *sql.Tx, runRow int64, nt NewTask) error {
	_, err := tx.ExecContext(ctx,
		`INSERT INTO tasks (run_id, stage, name, type, status) VALUES ($1, $2, $3, $4, $5)`,
		runRow, nt.Stage, nt.Name, nt.Type, string(TaskPending))
	if s.dialect.uniqueViolation(err) {
		return ErrAlreadyExists
	}
	return err
}

// complete says the task has its stage, name and type, as a record needs.
func (nt NewTask) complete() bool { return nt.Name != "" && nt.Stage != "" && nt.Type != "" }
