package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func lines(prefix string, n int) []LogLine {
	out := make([]LogLine, n)
	for i := range out {
		out[i] = LogLine{Text: fmt.Sprintf("%s %d", prefix, i), Stream: StreamStdout}
	}
	return out
}

func TestLogCap(t *testing.T) {
	s, _ := openTest(t, WithLogLineCap(5))
	ctx := testCtx(t)
	mustRun(t, s, testPipeline)

	// 3 + 4 + 10 lines into "build": 5 kept, 12 dropped, counted in one marker.
	for _, batch := range [][]LogLine{lines("a", 3), lines("b", 4), lines("c", 10)} {
		if err := s.AppendLogs(ctx, testPipeline, 1, "build", batch); err != nil {
			t.Fatal(err)
		}
	}
	// Another task and the run's own log have caps of their own.
	if err := s.AppendLogs(ctx, testPipeline, 1, "deploy", lines("d", 2)); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendLogs(ctx, testPipeline, 1, "", []LogLine{{Text: "run queued", Stream: StreamSystem}}); err != nil {
		t.Fatal(err)
	}

	build, err := s.ReadLogs(ctx, testPipeline, 1, LogQuery{Tasks: []string{"build"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a 0", "a 1", "a 2", "b 0", "b 1", "... 12 lines dropped"}
	if got := texts(build); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("build log %q, want %q", got, want)
	}
	if build[5].Stream != StreamSystem {
		t.Errorf("marker stream %q, want system", build[5].Stream)
	}

	// More lines after the cap: still one marker, its count updated.
	if err := s.AppendLogs(ctx, testPipeline, 1, "build", lines("e", 3)); err != nil {
		t.Fatal(err)
	}
	build, _ = s.ReadLogs(ctx, testPipeline, 1, LogQuery{Tasks: []string{"build"}})
	if len(build) != 6 || build[5].Text != "... 15 lines dropped" {
		t.Fatalf("after more drops: %q", texts(build))
	}

	all, err := s.ReadLogs(ctx, testPipeline, 1, LogQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 6+2+1 {
		t.Fatalf("all logs: %q", texts(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID <= all[i-1].ID {
			t.Fatalf("lines out of order: %d after %d", all[i].ID, all[i-1].ID)
		}
	}
	if got := texts(all[6:]); got[0] != "d 0" || got[1] != "d 1" || got[2] != "run queued" || all[8].Task != "" {
		t.Fatalf("later tasks' lines %q", got)
	}
}

func texts(ls []LogLine) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Text
	}
	return out
}

func TestLogFollowAndFilter(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	mustRun(t, s, testPipeline)
	at := time.Date(2026, 3, 1, 8, 0, 0, 123456000, time.UTC)
	if err := s.AppendLogs(ctx, testPipeline, 1, "build", []LogLine{
		{Time: at, Stream: StreamStderr, Text: "step 1"},
		{Time: at.Add(time.Millisecond), Text: "step 2"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendLogs(ctx, testPipeline, 1, "test", lines("t", 3)); err != nil {
		t.Fatal(err)
	}
	first, err := s.ReadLogs(ctx, testPipeline, 1, LogQuery{Limit: 2})
	if err != nil || len(first) != 2 {
		t.Fatalf("first page: %v, %v", first, err)
	}
	if !first[0].Time.Equal(at) || first[0].Stream != StreamStderr || first[0].Task != "build" {
		t.Fatalf("line round trip: %+v", first[0])
	}
	if first[1].Stream != StreamStdout {
		t.Fatalf("empty stream stored as %q, want stdout", first[1].Stream)
	}
	rest, err := s.ReadLogs(ctx, testPipeline, 1, LogQuery{AfterID: first[1].ID})
	if err != nil || strings.Join(texts(rest), "|") != "t 0|t 1|t 2" {
		t.Fatalf("after %d: %q, %v", first[1].ID, texts(rest), err)
	}
	none, err := s.ReadLogs(ctx, testPipeline, 1, LogQuery{Tasks: []string{"deploy"}})
	if err != nil || len(none) != 0 {
		t.Fatalf("task without logs: %v, %v", none, err)
	}
	two, err := s.ReadLogs(ctx, testPipeline, 1, LogQuery{Tasks: []string{"test", "build"}, Limit: 10})
	if err != nil || len(two) != 5 || two[0].Text != "step 1" {
		t.Fatalf("two tasks: %q, %v", texts(two), err)
	}
	if _, err := s.ReadLogs(ctx, testPipeline, 9, LogQuery{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("logs of missing run: %v, want ErrNotFound", err)
	}
	if err := s.AppendLogs(ctx, testPipeline, 9, "x", lines("x", 1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("append to missing run: %v, want ErrNotFound", err)
	}
	if err := s.AppendLogs(ctx, testPipeline, 1, "x", []LogLine{{Stream: "stdin"}}); err == nil {
		t.Fatal("unknown stream accepted")
	}
}

func TestLogLinesCleaned(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	mustRun(t, s, testPipeline)
	long := strings.Repeat("é", MaxLogLineBytes) // two bytes a rune: cut falls mid-rune
	if err := s.AppendLogs(ctx, testPipeline, 1, "t", []LogLine{
		{Text: long},
		{Text: "bad \xff byte and \x00 nul"},
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadLogs(ctx, testPipeline, 1, LogQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if !utf8.ValidString(got[0].Text) || len(got[0].Text) > MaxLogLineBytes+64 || !strings.HasSuffix(got[0].Text, "bytes)") {
		t.Fatalf("long line kept as %d bytes, valid=%v", len(got[0].Text), utf8.ValidString(got[0].Text))
	}
	if got[1].Text != "bad \uFFFD byte and \uFFFD nul" {
		t.Fatalf("cleaned line %q", got[1].Text)
	}
}

// Concurrent appenders to one task cannot push it past its cap together.
func TestLogCapUnderConcurrency(t *testing.T) {
	s, path := openTest(t, WithLogLineCap(100))
	b := openAt(t, path, WithLogLineCap(100))
	mustRun(t, s, testPipeline)
	done := make(chan error, 16)
	for i := 0; i < 16; i++ {
		st := Store(s)
		if i%2 == 1 {
			st = b
		}
		go func() { done <- st.AppendLogs(testCtx(t), testPipeline, 1, "t", lines(fmt.Sprint(i), 10)) }()
	}
	for i := 0; i < 16; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ReadLogs(testCtx(t), testPipeline, 1, LogQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 101 || got[100].Text != "... 60 lines dropped" {
		t.Fatalf("%d lines, last %q; want 100 and a marker for 60", len(got), got[len(got)-1].Text)
	}
}
