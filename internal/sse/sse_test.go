package sse

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReaderReadsEventsAndSkipsComments(t *testing.T) {
	r := NewReader(strings.NewReader(": hello\n\nid: 4\nevent: line\ndata: {\"a\":1}\n\ndata: one\ndata: two\n\nevent: end\ndata: x"))
	e, err := r.Next()
	if err != nil || e.ID != "4" || e.Name != "line" || e.Data != `{"a":1}` {
		t.Fatalf("first: %+v %v", e, err)
	}
	e, err = r.Next()
	if err != nil || e.Name != "message" || e.Data != "one\ntwo" {
		t.Fatalf("second: %+v %v", e, err)
	}
	if _, err = r.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut event: %v", err)
	}
	if _, err := NewReader(strings.NewReader(": only a comment\n\n")).Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("empty stream: %v", err)
	}
}
