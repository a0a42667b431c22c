// Package render turns what a pipeline declares into what is deployed. This file holds the
// `${...}` language shared by validation (which only scans) and runs (which substitute):
//
//	${NAME}            the value of NAME; undefined is an error, never ""
//	${NAME:-default}   the value of NAME, or default when NAME is undefined
//	$${NAME}           the literal text ${NAME}
//	$ not before {     itself, so shell text such as $HOME or $1 passes through
//
// NAME is a letter or underscore followed by letters, digits, underscores, dots and dashes
// (dots and dashes for task outputs: ${tasks.build-image.digest}). Defaults cannot contain
// "${" or "}"; the first "}" ends the reference.
package render

import (
	"fmt"
	"strings"
)

// Ref is one `${...}` reference found in a string.
type Ref struct {
	Name       string
	Default    string
	HasDefault bool
	Offset     int // byte offset of the "$" in the scanned string
	Len        int // length in bytes of the whole reference, "${" through "}"
}

// SyntaxError is a malformed reference.
type SyntaxError struct {
	Offset int // byte offset of the "$" that starts the bad reference
	Msg    string
}

func (e *SyntaxError) Error() string { return e.Msg }

// UndefinedError is a reference to a name that has no value and no default.
type UndefinedError struct {
	Name   string
	Offset int
}

func (e *UndefinedError) Error() string { return fmt.Sprintf("undefined variable %q", e.Name) }

// Vars looks up the value of a name. Implementations decide what is defined; an empty
// value that is defined is substituted as "".
type Vars interface {
	Lookup(name string) (string, bool)
}

// Map is the simplest Vars.
type Map map[string]string

// Lookup implements Vars.
func (m Map) Lookup(name string) (string, bool) {
	v, ok := m[name]
	return v, ok
}

// piece is either literal text or a reference, in order.
type piece struct {
	text   string
	ref    *Ref
	escape bool // text is the "${" an "$${" stands for (only when scanning keeps escapes)
	offset int  // byte offset of the piece in the scanned string
}

// scan splits s into literal text and references. It stops at the first syntax error.
func scan(s string) ([]piece, error) { return scanPieces(s, false) }

// scanPieces is scan; with keepEscapes every "$${" is a piece of its own.
func scanPieces(s string, keepEscapes bool) ([]piece, error) {
	var pieces []piece
	var lit strings.Builder
	litStart := 0
	flush := func() {
		if lit.Len() > 0 {
			pieces = append(pieces, piece{text: lit.String(), offset: litStart})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		if lit.Len() == 0 {
			litStart = i
		}
		c := s[i]
		if c != '$' {
			j := strings.IndexByte(s[i:], '$')
			if j < 0 {
				j = len(s) - i
			}
			lit.WriteString(s[i : i+j])
			i += j
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "$${") && keepEscapes:
			flush()
			pieces = append(pieces, piece{text: "${", escape: true, offset: i})
			i += 3
		case strings.HasPrefix(s[i:], "$${"):
			lit.WriteString("${")
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			ref, err := parseRef(s, i)
			if err != nil {
				return nil, err
			}
			flush()
			pieces = append(pieces, piece{ref: ref, offset: i})
			i += ref.Len
		default:
			lit.WriteByte('$')
			i++
		}
	}
	flush()
	return pieces, nil
}

// parseRef reads the reference starting at s[at:], which begins with "${".
func parseRef(s string, at int) (*Ref, error) {
	body := s[at+2:]
	end := strings.IndexByte(body, '}')
	if end < 0 {
		return nil, &SyntaxError{Offset: at, Msg: "unterminated ${: missing }"}
	}
	inner := body[:end]
	ref := &Ref{Offset: at, Len: end + 3}
	name := inner
	if k := strings.Index(inner, ":-"); k >= 0 {
		name, ref.Default, ref.HasDefault = inner[:k], inner[k+2:], true
		if strings.Contains(ref.Default, "${") {
			return nil, &SyntaxError{Offset: at, Msg: fmt.Sprintf("${%s}: a default cannot contain ${", inner)}
		}
	}
	if name == "" {
		return nil, &SyntaxError{Offset: at, Msg: fmt.Sprintf("${%s}: empty variable name", inner)}
	}
	if err := checkName(name); err != "" {
		return nil, &SyntaxError{Offset: at, Msg: fmt.Sprintf("${%s}: %s", inner, err)}
	}
	ref.Name = name
	return ref, nil
}

func checkName(name string) string {
	if c := name[0]; !(c == '_' || isLetter(c)) {
		return fmt.Sprintf("variable name %q must start with a letter or _", name)
	}
	for i := 1; i < len(name); i++ {
		c := name[i]
		if isLetter(c) || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-' {
			continue
		}
		if c == ':' {
			return fmt.Sprintf("unsupported operator in %q: only :- (default) is supported", name)
		}
		return fmt.Sprintf("invalid character %q in variable name", c)
	}
	return ""
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// References returns every reference in s, in order, or the first syntax error.
func References(s string) ([]Ref, error) {
	if !strings.Contains(s, "${") {
		return nil, nil
	}
	pieces, err := scan(s)
	if err != nil {
		return nil, err
	}
	var refs []Ref
	for _, p := range pieces {
		if p.ref != nil {
			refs = append(refs, *p.ref)
		}
	}
	return refs, nil
}

// Substitute replaces every reference in s with its value from vars. The first syntax error
// or undefined name (without a default) is returned as *SyntaxError or *UndefinedError, and
// then the returned string is "", so a half-rendered value can never be used by mistake.
func Substitute(s string, vars Vars) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	pieces, err := scan(s)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, p := range pieces {
		if p.ref == nil {
			b.WriteString(p.text)
			continue
		}
		v, ok := vars.Lookup(p.ref.Name)
		switch {
		case ok:
			b.WriteString(v)
		case p.ref.HasDefault:
			b.WriteString(p.ref.Default)
		default:
			return "", &UndefinedError{Name: p.ref.Name, Offset: p.ref.Offset}
		}
	}
	return b.String(), nil
}

// Escape returns text that Substitute turns back into s: every "${" becomes "$${".
func Escape(s string) string { return strings.ReplaceAll(s, "${", "$${") }
