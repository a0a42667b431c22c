package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// RunFilter selects runs across pipelines for lists (the API, the UI, `slipway get runs`).
// Zero fields select everything.
type RunFilter struct {
	Repository string // with Pipeline empty: every pipeline of this repository
	Pipeline   string // needs Repository
	Statuses   []RunStatus
	Triggers   []Trigger
	Since      time.Time // created at or after
	Until      time.Time // created before
	// After is the Next of the previous page: the page continues after it.
	After string
	// Limit caps the page (0 or more than MaxRunPage: MaxRunPage).
	Limit int
}

// MaxRunPage is the largest page FindRuns returns.
const MaxRunPage = 500

// RunPage is one page of runs, newest first.
type RunPage struct {
	Runs []Run
	// Next continues the list after this page (RunFilter.After); "" when it is the last.
	Next string
}

// FindRuns implements Store. Pages are keyed on the run's row order (creation order), not
// offsets, so a page costs the same at run 10 000 as at run 10 and runs created while a
// reader pages are not shown twice.
func (s *DB) FindRuns(ctx context.Context, f RunFilter) (RunPage, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Pipeline != "" && f.Repository == "" {
		return RunPage{}, fmt.Errorf("find runs: pipeline %q needs its repository", f.Pipeline)
	}
	if f.Repository != "" {
		where = append(where, "p.repository = "+arg(f.Repository))
	}
	if f.Pipeline != "" {
		where = append(where, "p.name = "+arg(f.Pipeline))
	}
	if len(f.Statuses) > 0 {
		var in []string
		for _, st := range f.Statuses {
			if !st.Valid() {
				return RunPage{}, fmt.Errorf("find runs: unknown status %q", st)
			}
			in = append(in, arg(string(st)))
		}
		where = append(where, "r.status IN ("+strings.Join(in, ", ")+")")
	}
	if len(f.Triggers) > 0 {
		var in []string
		for _, t := range f.Triggers {
			if !t.Valid() {
				return RunPage{}, fmt.Errorf("find runs: unknown trigger %q", t)
			}
			in = append(in, arg(string(t)))
		}
		where = append(where, "r.trigger_kind IN ("+strings.Join(in, ", ")+")")
	}
	if !f.Since.IsZero() {
		where = append(where, "r.created_at >= "+arg(toMicros(f.Since)))
	}
	if !f.Until.IsZero() {
		where = append(where, "r.created_at < "+arg(toMicros(f.Until)))
	}
	if f.After != "" {
		after, err := strconv.ParseInt(f.After, 10, 64)
		if err != nil || after <= 0 {
			return RunPage{}, fmt.Errorf("find runs: %q is not a page cursor this store returned", f.After)
		}
		where = append(where, "r.id < "+arg(after))
	}
	limit := f.Limit
	if limit <= 0 || limit > MaxRunPage {
		limit = MaxRunPage
	}
	query := `SELECT r.id, ` + runColumns + ` FROM runs r JOIN pipelines p ON p.id = r.pipeline_id`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	// One more than the page, to know whether a next page exists.
	query += " ORDER BY r.id DESC LIMIT " + arg(limit+1)
	rows, err := s.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return RunPage{}, fmt.Errorf("find runs: %w", err)
	}
	defer rows.Close()
	var page RunPage
	var ids []int64
	for rows.Next() {
		var id int64
		r, err := scanRun(prefixed{rows, &id})
		if err != nil {
			return RunPage{}, fmt.Errorf("find runs: %w", err)
		}
		page.Runs = append(page.Runs, r)
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return RunPage{}, fmt.Errorf("find runs: %w", err)
	}
	if len(page.Runs) > limit {
		page.Runs = page.Runs[:limit]
		page.Next = strconv.FormatInt(ids[limit-1], 10)
	}
	return page, nil
}

// prefixed scans a leading column into id, then the rest as sc would.
type prefixed struct {
	sc scanner
	id *int64
}

func (p prefixed) Scan(dest ...any) error {
	return p.sc.Scan(append([]any{p.id}, dest...)...)
}
