package render

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Substitution in YAML files works on parsed scalars, never on text: a value is always
// exactly one scalar, whatever characters it holds ("#", ": ", a newline, "---"), so it can
// neither end a value early, nor add keys, list items or documents.
//
// Before parsing, every ${...} (and $${) is swapped for a placeholder made of letters and
// digits, which YAML reads as part of a plain scalar in any context (flow collections
// included, where "{" would otherwise end the scalar). After parsing, the placeholders in
// each scalar are replaced by the values, and the scalar is re-emitted as a string, quoted
// or as a block scalar as its content needs. A scalar with an explicit !!int, !!float or
// !!bool tag keeps that type: its value must then be one of that type.

// PositionError is a problem with a reference in a YAML file, at its line and column.
type PositionError struct {
	Line, Column int
	Field        string // field path, e.g. spec.template.spec.containers[0].image; "" when unknown
	Err          error
}

func (e *PositionError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%d:%d: %v", e.Line, e.Column, e.Err)
	}
	return fmt.Sprintf("%d:%d: %s: %v", e.Line, e.Column, e.Field, e.Err)
}

func (e *PositionError) Unwrap() error { return e.Err }

// InFile names the file of an error from SubstituteYAML or YAMLRefs: file:line:column: ...
// for a *PositionError, file: ... otherwise.
func InFile(file string, err error) error {
	var pe *PositionError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s:%w", file, err)
	}
	return fmt.Errorf("%s: %w", file, err)
}

// ErrNotAValue is a ${...} where only values may hold one (a mapping key, a tag, an anchor),
// or in a scalar whose explicit tag cannot hold text.
var ErrNotAValue = errors.New("a ${...} reference may only be in a value")

// site is one reference (or escape) of the template, where the file has it.
type site struct {
	ref          *Ref // nil for an escape "$${"
	line, column int  // 1-based
}

// template is a YAML stream with its references swapped for placeholders.
type template struct {
	text   []byte
	prefix string // random; the file does not contain it
	sites  []site
	match  *regexp.Regexp
}

// protect swaps each reference and escape of raw for a placeholder; a syntax error is
// reported at its line and column.
func protect(raw []byte) (*template, error) {
	// A random prefix: a file cannot hold it by chance, nor be made to (growing a fixed
	// prefix until the file lacks it costs a crafted file quadratic time).
	var prefix string
	for prefix == "" || bytes.Contains(raw, []byte(prefix)) {
		var nonce [8]byte
		if _, err := rand.Read(nonce[:]); err != nil {
			return nil, fmt.Errorf("placeholder: %w", err)
		}
		prefix = "slipwayref" + hex.EncodeToString(nonce[:]) + "r"
	}
	t := &template{prefix: prefix, match: regexp.MustCompile(prefix + `([0-9]+)z`)}
	var out bytes.Buffer
	out.Grow(len(raw))
	for lineNo, line := range bytes.SplitAfter(raw, []byte("\n")) {
		if !bytes.Contains(line, []byte("${")) {
			out.Write(line)
			continue
		}
		s := string(line)
		pieces, err := scanPieces(s, true)
		if err != nil {
			var se *SyntaxError
			col := 1
			if errors.As(err, &se) {
				col = utf8.RuneCountInString(s[:se.Offset]) + 1
			}
			return nil, &PositionError{Line: lineNo + 1, Column: col, Err: err}
		}
		for _, p := range pieces {
			if p.ref == nil && !p.escape {
				out.WriteString(p.text)
				continue
			}
			fmt.Fprintf(&out, "%s%dz", prefix, len(t.sites))
			t.sites = append(t.sites, site{ref: p.ref, line: lineNo + 1, column: utf8.RuneCountInString(s[:p.offset]) + 1})
		}
	}
	t.text = out.Bytes()
	return t, nil
}

// restore puts the original reference text back in place of placeholders, for comments
// and error messages.
func (t *template) restore(s string) string {
	if !strings.Contains(s, t.prefix) {
		return s
	}
	return t.match.ReplaceAllStringFunc(s, func(m string) string {
		i, ok := t.index(m)
		if !ok {
			return m
		}
		if st := t.sites[i]; st.ref != nil {
			r := "${" + st.ref.Name
			if st.ref.HasDefault {
				r += ":-" + st.ref.Default
			}
			return r + "}"
		}
		return "$${"
	})
}

func (t *template) index(m string) (int, bool) {
	i, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(m, t.prefix), "z"))
	return i, err == nil && i >= 0 && i < len(t.sites)
}

// SiteRef is a reference with where it is in its file.
type SiteRef struct {
	Ref
	Line, Column int
}

// YAMLRefs checks a YAML file's references the way substitution will read them and lists
// them: a syntax error, YAML the placeholders leave unparseable, or a reference in a key,
// tag or anchor is an error with its line and column.
func YAMLRefs(raw []byte) ([]SiteRef, error) {
	if !bytes.Contains(raw, []byte("${")) {
		return nil, nil
	}
	t, err := protect(raw)
	if err != nil {
		return nil, err
	}
	used := make([]bool, len(t.sites))
	docs, starts := splitDocumentsAt(t.text)
	for i, d := range docs {
		if _, _, err := t.document(d, nil, used); err != nil {
			var pe *PositionError
			if errors.As(err, &pe) {
				return nil, err
			}
			return nil, inDocument(i+1, starts[i], err)
		}
	}
	var out []SiteRef
	for i, s := range t.sites {
		if s.ref != nil && used[i] {
			out = append(out, SiteRef{Ref: *s.ref, Line: s.line, Column: s.column})
		}
	}
	return out, nil
}

// SubstituteYAML substitutes vars into the scalars of a YAML (or JSON) stream and returns
// the rendered stream; documents without ${ come back as they are. Comments are not
// substituted. Errors carry their line and column (*PositionError) or, for YAML that does not
// parse, the document number.
func SubstituteYAML(raw []byte, vars Vars) ([]byte, error) {
	docs, err := substituteDocuments(raw, vars)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	for _, d := range docs {
		out.WriteString("---\n")
		out.Write(d)
		if len(d) > 0 && d[len(d)-1] != '\n' {
			out.WriteByte('\n')
		}
	}
	return out.Bytes(), nil
}

// substituteDocuments splits raw into documents (as splitDocuments counts them) and
// substitutes each.
func substituteDocuments(raw []byte, vars Vars) ([][]byte, error) {
	if !bytes.Contains(raw, []byte("${")) {
		return splitDocuments(raw), nil
	}
	t, err := protect(raw)
	if err != nil {
		return nil, err
	}
	docs, starts := splitDocumentsAt(t.text)
	for i, d := range docs {
		out, changed, err := t.document(d, vars, nil)
		if err != nil {
			var pe *PositionError
			if errors.As(err, &pe) {
				return nil, err
			}
			return nil, inDocument(i+1, starts[i], err)
		}
		if changed {
			docs[i] = out
		}
	}
	return docs, nil
}

// inDocument places a parse error of document doc, which starts on file line start, at
// the file line the parser's "line N" names (placeholders never change line counts).
func inDocument(doc, start int, err error) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatchIndex(msg); m != nil && start > 0 {
		if n, convErr := strconv.Atoi(msg[m[2]:m[3]]); convErr == nil {
			return &PositionError{Line: start + n - 1, Column: 1, Err: fmt.Errorf("document %d: %s", doc, msg[:m[0]]+msg[m[1]:])}
		}
	}
	return fmt.Errorf("document %d: %w", doc, err)
}

// document substitutes one document of the template; with vars nil it only checks where the
// references are, marking in used (when not nil) the sites that are in values. changed is
// false when the document holds no placeholder.
func (t *template) document(d []byte, vars Vars, used []bool) (out []byte, changed bool, err error) {
	if !bytes.Contains(d, []byte(t.prefix)) {
		return d, false, nil
	}
	var root yaml.Node
	if err := yaml.Unmarshal(d, &root); err != nil {
		return nil, false, errors.New(t.restore(err.Error()))
	}
	w := walker{t: t, vars: vars, used: used}
	if err := w.node(&root, ""); err != nil {
		return nil, false, err
	}
	if vars == nil {
		return nil, true, nil
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return nil, false, fmt.Errorf("render: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, false, fmt.Errorf("render: %w", err)
	}
	return buf.Bytes(), true, nil
}

type walker struct {
	t    *template
	vars Vars   // nil: check only
	used []bool // sites seen in values, when not nil
}

// at is the position of the first placeholder in s, for errors about it.
func (w *walker) at(s, field string, err error) error {
	loc := w.t.match.FindString(s)
	if i, ok := w.t.index(loc); ok {
		st := w.t.sites[i]
		return &PositionError{Line: st.line, Column: st.column, Field: field, Err: err}
	}
	return fmt.Errorf("%s: %w", field, err)
}

func (w *walker) node(n *yaml.Node, field string) error {
	n.HeadComment, n.LineComment, n.FootComment = w.t.restore(n.HeadComment), w.t.restore(n.LineComment), w.t.restore(n.FootComment)
	for _, s := range []string{n.Anchor, n.Tag} {
		if strings.Contains(s, w.t.prefix) {
			return w.at(s, field, fmt.Errorf("%w, not in a tag or anchor", ErrNotAValue))
		}
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := w.node(c, field); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if err := w.node(c, fmt.Sprintf("%s[%d]", field, i)); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if err := w.key(k, field); err != nil {
				return err
			}
			sub := k.Value
			if field != "" {
				sub = field + "." + k.Value
			}
			if err := w.node(v, sub); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		return w.scalar(n, field)
	}
	return nil
}

// key refuses a reference in a mapping key: a value must never choose which field it sets.
// An escape "$${" is allowed and becomes "${".
func (w *walker) key(k *yaml.Node, field string) error {
	k.HeadComment, k.LineComment, k.FootComment = w.t.restore(k.HeadComment), w.t.restore(k.LineComment), w.t.restore(k.FootComment)
	if !strings.Contains(k.Value, w.t.prefix) && !strings.Contains(k.Tag+k.Anchor, w.t.prefix) {
		return nil
	}
	for _, m := range w.t.match.FindAllString(k.Value+" "+k.Tag+" "+k.Anchor, -1) {
		if i, ok := w.t.index(m); ok && w.t.sites[i].ref != nil {
			return w.at(m, field, fmt.Errorf("%w, not in a mapping key", ErrNotAValue))
		}
	}
	if strings.Contains(k.Tag+k.Anchor, w.t.prefix) {
		return w.at(k.Tag+k.Anchor, field, fmt.Errorf("%w, not in a tag or anchor", ErrNotAValue))
	}
	k.Value = w.t.match.ReplaceAllLiteralString(k.Value, "${")
	return nil
}

// typedTags are the explicit tags a substituted scalar may keep.
var typedTags = map[string]bool{"!!str": true, "!!int": true, "!!float": true, "!!bool": true}

func (w *walker) scalar(n *yaml.Node, field string) error {
	if !strings.Contains(n.Value, w.t.prefix) {
		return nil
	}
	explicit := n.Style&yaml.TaggedStyle != 0
	refs := false
	for _, m := range w.t.match.FindAllString(n.Value, -1) {
		if i, ok := w.t.index(m); ok && w.t.sites[i].ref != nil {
			refs = true
		}
	}
	if refs && explicit && !typedTags[n.Tag] {
		return w.at(n.Value, field, fmt.Errorf("%w: a scalar tagged %s cannot hold one (use !!str, !!int, !!float or !!bool)", ErrNotAValue, n.Tag))
	}
	var firstErr error
	value := w.t.match.ReplaceAllStringFunc(n.Value, func(m string) string {
		i, ok := w.t.index(m)
		if !ok {
			return m
		}
		st := w.t.sites[i]
		if w.used != nil {
			w.used[i] = true
		}
		if st.ref == nil {
			return "${"
		}
		if w.vars == nil {
			return ""
		}
		v, ok := w.vars.Lookup(st.ref.Name)
		switch {
		case ok:
			return v
		case st.ref.HasDefault:
			return st.ref.Default
		}
		if firstErr == nil {
			firstErr = &PositionError{Line: st.line, Column: st.column, Field: field, Err: &UndefinedError{Name: st.ref.Name, Offset: st.ref.Offset}}
		}
		return ""
	})
	if firstErr != nil {
		return firstErr
	}
	if w.vars == nil {
		return nil
	}
	n.Value = value
	if !refs {
		return nil // only escapes: the scalar keeps its style and type
	}
	if explicit && n.Tag != "!!str" {
		if err := checkTyped(n.Tag, value); err != nil {
			return w.atValue(n, field, err)
		}
		// Plain, so every YAML reader types it by its form; the tag stays when the form
		// alone would read as another type (an integral !!float).
		n.Style = 0
		return nil
	}
	if !utf8.ValidString(value) {
		return w.atValue(n, field, errors.New("the substituted value is not valid UTF-8 text"))
	}
	n.Tag, n.Style = "!!str", yaml.DoubleQuotedStyle
	if strings.Contains(value, "\n") && blockSafe(value) {
		// A block scalar keeps multi-line text readable; the encoder falls back to a
		// quoted scalar when the text cannot be one (trailing spaces, control characters).
		n.Style = yaml.LiteralStyle
	}
	return nil
}

// blockSafe tells whether every YAML reader reads value back from a literal block: some
// (YAML 1.1 ones, as Kubernetes' decoder) stumble on tabs and on a line that starts with
// a space, so such text stays double-quoted. YAML 1.1 also breaks lines at U+0085, U+2028
// and U+2029, which a block scalar cannot then keep as text.
func blockSafe(value string) bool {
	if strings.ContainsAny(value, "\t\r\u0085\u2028\u2029") {
		return false
	}
	for _, line := range strings.Split(value, "\n") {
		if strings.HasPrefix(line, " ") {
			return false
		}
	}
	return true
}

// atValue reports an error about a scalar's substituted value at the scalar's position.
func (w *walker) atValue(n *yaml.Node, field string, err error) error {
	return &PositionError{Line: n.Line, Column: n.Column, Field: field, Err: err}
}

var (
	decimalInt   = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)
	decimalFloat = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$`)
)

// checkTyped tells whether value is a plain form of tag that every YAML reader agrees on.
func checkTyped(tag, value string) error {
	switch tag {
	case "!!int":
		// No leading zeros: YAML 1.1 readers take 010 for octal.
		if _, err := strconv.ParseInt(value, 10, 64); err != nil || !decimalInt.MatchString(value) {
			return fmt.Errorf("!!int: the substituted value %q is not a decimal integer", value)
		}
	case "!!float":
		if f, err := strconv.ParseFloat(value, 64); err != nil || math.IsInf(f, 0) || !decimalFloat.MatchString(value) {
			return fmt.Errorf("!!float: the substituted value %q is not a decimal number", value)
		}
	case "!!bool":
		if value != "true" && value != "false" {
			return fmt.Errorf("!!bool: the substituted value %q is not true or false", value)
		}
	}
	return nil
}
