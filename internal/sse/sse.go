// Package sse reads a Server-Sent Events stream (the API's live logs), event by event.
package sse

import (
	"bufio"
	"io"
	"strings"
)

// Event is one event of the stream. Name is "message" when the event named none.
type Event struct {
	ID   string
	Name string
	Data string
}

// Reader reads events from a stream.
type Reader struct {
	sc *bufio.Scanner
}

// NewReader reads events from r. Lines may be as long as a log line's JSON.
func NewReader(r io.Reader) *Reader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	return &Reader{sc: sc}
}

// Next returns the next event; io.EOF when the stream ended cleanly between events.
// Comments (lines starting with ':') are skipped.
func (r *Reader) Next() (Event, error) {
	var e Event
	var data []string
	seen := false
	for r.sc.Scan() {
		line := r.sc.Text()
		if line == "" {
			if !seen {
				continue
			}
			e.Data = strings.Join(data, "\n")
			if e.Name == "" {
				e.Name = "message"
			}
			return e, nil
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		seen = true
		switch field {
		case "id":
			e.ID = value
		case "event":
			e.Name = value
		case "data":
			data = append(data, value)
		}
	}
	if err := r.sc.Err(); err != nil {
		return e, err
	}
	if seen {
		return e, io.ErrUnexpectedEOF
	}
	return e, io.EOF
}
