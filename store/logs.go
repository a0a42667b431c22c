package store

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// logInsertChunk is how many lines one INSERT carries. Several rows per statement beat
// one statement per line by far, but SQLite finds a $N parameter by scanning the list of
// names, so the cost per row grows with the chunk: 32 measured best.
const logInsertChunk = 32

// AppendLogs implements Store. The cap is checked against log_counts inside the write
// transaction, so concurrent appenders to one task cannot overshoot it together.
func (s *DB) AppendLogs(ctx context.Context, ref PipelineRef, buildID int64, task string, lines []LogLine) error {
	what := fmt.Sprintf("append logs of task %q of %s", task, runName(ref, buildID))
	if len(lines) == 0 {
		return nil
	}
	rows, err := logRows(lines)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	err = s.writeChange(ctx, Change{Kind: ChangeLogs, Pipeline: ref, BuildID: buildID, Task: task}, func(tx *sql.Tx) error {
		rid, err := runID(ctx, tx, ref, buildID)
		if err != nil {
			return err
		}
		return s.appendLogs(ctx, tx, rid, task, rows)
	})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// logRows checks the lines' streams and cleans their text for the store.
func logRows(lines []LogLine) ([]LogLine, error) {
	rows := make([]LogLine, len(lines))
	for i, l := range lines {
		if l.Stream == "" {
			l.Stream = StreamStdout
		}
		if !l.Stream.Valid() {
			return nil, fmt.Errorf("unknown stream %q", l.Stream)
		}
		l.Text = cleanLogText(l.Text)
		rows[i] = l
	}
	return rows, nil
}

// appendLogs adds rows (from logRows) to the log of the task of the run whose row is rid,
// within the per-task cap.
func (s *DB) appendLogs(ctx context.Context, tx *sql.Tx, rid int64, task string, rows []LogLine) error {
	now := s.now()
	at := func(l LogLine) int64 {
		if l.Time.IsZero() {
			return now
		}
		return toMicros(l.Time)
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO log_counts (run_id, task) VALUES ($1, $2) ON CONFLICT (run_id, task) DO NOTHING`,
		rid, task); err != nil {
		return err
	}
	var kept, dropped int64
	var marker sql.NullInt64
	if err := tx.QueryRowContext(ctx,
		`SELECT kept, dropped, marker_id FROM log_counts WHERE run_id = $1 AND task = $2`,
		rid, task).Scan(&kept, &dropped, &marker); err != nil {
		return err
	}

	keep := int64(len(rows))
	if limit := int64(s.opts.logLineCap); limit > 0 {
		keep = max(0, min(keep, limit-kept))
	}
	for start := int64(0); start < keep; start += logInsertChunk {
		end := min(start+logInsertChunk, keep)
		var q strings.Builder
		q.WriteString(`INSERT INTO log_lines (run_id, task, at, stream, text) VALUES `)
		args := make([]any, 0, 3*(end-start)+2)
		args = append(args, rid, task)
		for i := start; i < end; i++ {
			if i > start {
				q.WriteString(", ")
			}
			n := len(args)
			q.WriteString("($1, $2, $" + strconv.Itoa(n+1) + ", $" + strconv.Itoa(n+2) + ", $" + strconv.Itoa(n+3) + ")")
			args = append(args, at(rows[i]), string(rows[i].Stream), rows[i].Text)
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return err
		}
	}

	var err error
	if over := int64(len(rows)) - keep; over > 0 {
		dropped += over
		text := "... " + strconv.FormatInt(dropped, 10) + " lines dropped"
		last := at(rows[len(rows)-1])
		// One marker per task, kept last: created at the first drop (nothing is
		// inserted after it), then only its count and time change.
		if marker.Valid {
			_, err = tx.ExecContext(ctx, `UPDATE log_lines SET text = $1, at = $2 WHERE id = $3`, text, last, marker.Int64)
		} else {
			err = tx.QueryRowContext(ctx, `
				INSERT INTO log_lines (run_id, task, at, stream, text) VALUES ($1, $2, $3, $4, $5)
				RETURNING id`, rid, task, last, string(StreamSystem), text).Scan(&marker)
		}
		if err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx,
		`UPDATE log_counts SET kept = $1, dropped = $2, marker_id = $3 WHERE run_id = $4 AND task = $5`,
		kept+keep, dropped, marker, rid, task)
	return err
}

// cleanLogText makes a line storable anywhere: valid UTF-8 without NUL (PostgreSQL text
// refuses both) and at most MaxLogLineBytes long.
func cleanLogText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	if len(s) <= MaxLogLineBytes {
		return s
	}
	cut := MaxLogLineBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + " ... (line cut at " + strconv.Itoa(MaxLogLineBytes) + " bytes)"
}

// ReadLogs implements Store.
func (s *DB) ReadLogs(ctx context.Context, ref PipelineRef, buildID int64, lq LogQuery) ([]LogLine, error) {
	var lines []LogLine
	err := s.read(ctx, func(tx *sql.Tx) error {
		rid, err := runID(ctx, tx, ref, buildID)
		if err != nil {
			return err
		}
		q := `SELECT id, task, at, stream, text FROM log_lines WHERE run_id = $1 AND id > $2`
		args := []any{rid, lq.AfterID}
		if len(lq.Tasks) > 0 {
			marks := make([]string, len(lq.Tasks))
			for i, t := range lq.Tasks {
				args = append(args, t)
				marks[i] = "$" + strconv.Itoa(len(args))
			}
			q += ` AND task IN (` + strings.Join(marks, ", ") + `)`
		}
		q += ` ORDER BY id`
		if lq.Limit > 0 {
			args = append(args, lq.Limit)
			q += ` LIMIT $` + strconv.Itoa(len(args))
		}
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var l LogLine
			var at int64
			if err := rows.Scan(&l.ID, &l.Task, &at, &l.Stream, &l.Text); err != nil {
				return err
			}
			l.Time = fromMicros(sql.NullInt64{Int64: at, Valid: true})
			lines = append(lines, l)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("read logs of %s: %w", runName(ref, buildID), err)
	}
	return lines, nil
}
