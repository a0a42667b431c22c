package builder

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// logger sends progress lines to the task's log with every secret value masked.
type logger struct {
	sink    func(string)
	secrets []string // longest first, so a secret containing another is masked whole
	mu      sync.Mutex
	partial bytes.Buffer // Write's unfinished line
}

const mask = "***"

func newLogger(req Request) *logger {
	var s []string
	for _, v := range req.Secrets {
		if v != "" {
			s = append(s, v)
		}
	}
	sort.Slice(s, func(i, j int) bool { return len(s[i]) > len(s[j]) })
	return &logger{sink: req.Log, secrets: s}
}

func (l *logger) mask(s string) string {
	for _, v := range l.secrets {
		s = strings.ReplaceAll(s, v, mask)
	}
	return s
}

func (l *logger) printf(format string, args ...any) {
	if l.sink == nil {
		return
	}
	for _, line := range strings.Split(strings.TrimRight(fmt.Sprintf(format, args...), "\n"), "\n") {
		l.sink(l.mask(line))
	}
}

// Write lets BuildKit's progress printer feed the log; lines are passed on whole.
func (l *logger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial.Write(p)
	for {
		i := bytes.IndexByte(l.partial.Bytes(), '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(l.partial.Next(i + 1))
		if l.sink != nil {
			l.sink(l.mask(strings.TrimRight(line, "\r\n")))
		}
	}
}

// flush passes on a last line without a newline.
func (l *logger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.partial.Len() > 0 && l.sink != nil {
		l.sink(l.mask(l.partial.String()))
	}
	l.partial.Reset()
}

// maskErr keeps secrets out of error messages, which end up in run records.
func (l *logger) maskErr(err error) error {
	if err == nil || len(l.secrets) == 0 {
		return err
	}
	masked := l.mask(err.Error())
	if masked == err.Error() {
		return err
	}
	return maskedError{msg: masked, err: err}
}

type maskedError struct {
	msg string
	err error
}

func (e maskedError) Error() string { return e.msg }

// Unwrap keeps errors.Is/As working (for context cancellation) without exposing the text.
func (e maskedError) Unwrap() error { return errors.Unwrap(e.err) }
