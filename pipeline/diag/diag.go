// Package diag holds positioned errors: what the pipeline and configuration parsers report,
// shaped like a compiler's (FILE:LINE:COL: message) and marshalable for editors and CI.
package diag

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Pos is a 1-based line and column in a file. The zero Pos means "no position known".
type Pos struct {
	Line   int
	Column int
}

// Error is one problem at one place.
type Error struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Field   string `json:"field,omitempty"` // dotted path of the offending field, e.g. stages[0].tasks[1].image
	Message string `json:"message"`
}

func (e Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Message)
}

// List is every problem found in one pass. A nil or empty List is no error; use Err to turn it
// into an error value so that callers never hold a non-nil error wrapping nothing.
type List []Error

func (l List) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Err returns the list as an error, or nil when it is empty.
func (l List) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// Add appends an error at pos in file.
func (l *List) Add(file string, pos Pos, field, format string, args ...any) {
	*l = append(*l, Error{File: file, Line: pos.Line, Column: pos.Column, Field: field, Message: fmt.Sprintf(format, args...)})
}

// Sort orders the list by file, line and column, keeping the order of errors at the same
// place, so output reads top to bottom like a compiler's.
func (l List) Sort() {
	slices.SortStableFunc(l, func(a, b Error) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
}

// Reporter adds errors for one file. It is what parsers and validators pass around.
type Reporter struct {
	File string
	List *List
}

// At records an error at pos for field.
func (r Reporter) At(pos Pos, field, format string, args ...any) {
	r.List.Add(r.File, pos, field, format, args...)
}
