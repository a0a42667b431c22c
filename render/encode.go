package render

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"sigs.k8s.io/yaml"
)

// EncodeManifests writes a rendered set as the multi-document YAML stream a revision
// stores, one document per object, each after a "---" line; ParseManifests reads it back
// to the same objects. It writes the objects' maps itself, in block style with sorted
// keys (the same set always encodes to the same bytes, so to the same digest), and only
// the few scalar forms every YAML reader agrees on:
//
//   - a string is plain only when it starts with a letter, holds nothing but letters,
//     digits, single spaces and . _ / - : @ + (no ": ", no ':' at its end) and is none of
//     YAML 1.1's booleans and nulls (sigs.k8s.io/yaml, behind ParseManifests, reads "on"
//     and "y" as booleans); anything else is double-quoted, with escapes for what is not
//     printable or breaks a line;
//   - a number is written as encoding/json writes it.
//
// sigs.k8s.io/yaml.Marshal, which it replaces, encoded JSON, parsed that back into YAML
// nodes and emitted them: several hundred KiB of garbage per application and hundreds of
// allocations per object, made by every run of a push or a no-op at once. It also failed
// on some strings (U+0085, DEL, very long lines with a trailing space) and wrote the key
// "<<" plain, which readers take for a merge. An object holding a value of a type JSON
// decoding never produces is encoded that old way.
func EncodeManifests(ms []Manifest) ([]byte, error) {
	if len(ms) == 0 {
		return []byte{}, nil
	}
	b := make([]byte, 0, 1024*len(ms))
	for _, m := range ms {
		b = append(b, "---\n"...)
		mark := len(b)
		var err error
		b, err = appendBlockMap(b, m.Object.Object, 0, false)
		if errors.Is(err, errUnencodable) {
			var y []byte
			y, err = yaml.Marshal(m.Object.Object)
			b = append(b[:mark], y...)
		}
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", m, err)
		}
	}
	if cap(b) > len(b)+len(b)/4 {
		// Kept by the run until its revision is stored: not twice its size.
		b = slices.Clip(append([]byte(nil), b...))
	}
	return b, nil
}

// errUnencodable is a value of a type the encoder does not write itself.
var errUnencodable = errors.New("value of a type the encoder does not write")

// maxKey is the longest key written as "key: value": YAML parsers take a key of more than
// 1024 characters for no key at all.
const maxKey = 1000

// appendExplicit writes the key at b[mark:] and its value as "? key" and ": value" lines,
// the form of a key too long for "key: value"; a sequence value goes one level in.
func appendExplicit(b []byte, mark int, v any, indent int) ([]byte, error) {
	b = slices.Insert(b, mark, '?', ' ')
	b = appendIndent(append(b, '\n'), indent)
	b = append(b, ':')
	if s, ok := v.([]any); ok && len(s) > 0 {
		b = append(b, '\n')
		return appendBlockSeq(b, s, indent+2, false)
	}
	return appendValue(b, v, indent, false)
}

// appendBlockMap writes a non-scalar mapping, one key a line at indent; inline means the
// first key goes on the current line (after a sequence's "- ").
func appendBlockMap(b []byte, m map[string]any, indent int, inline bool) ([]byte, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 || !inline {
			b = appendIndent(b, indent)
		}
		mark := len(b)
		b = appendString(b, k)
		var err error
		if len(b)-mark > maxKey {
			b, err = appendExplicit(b, mark, m[k], indent)
		} else {
			b = append(b, ':')
			b, err = appendValue(b, m[k], indent, false)
		}
		if err != nil {
			return b, err
		}
	}
	return b, nil
}

// appendBlockSeq writes a non-empty sequence, one "- " item a line at indent (the
// mapping key's own, as kubectl writes them); inline as for appendBlockMap.
func appendBlockSeq(b []byte, s []any, indent int, inline bool) ([]byte, error) {
	for i, v := range s {
		if i > 0 || !inline {
			b = appendIndent(b, indent)
		}
		b = append(b, '-')
		var err error
		if b, err = appendValue(b, v, indent+2, true); err != nil {
			return b, err
		}
	}
	return b, nil
}

// appendValue writes v after a mapping key's ':' or a sequence's '-' and ends the line.
// indent is where a nested mapping's keys go; inSeq says v is a sequence item, whose
// nested collections start on the item's line.
func appendValue(b []byte, v any, indent int, inSeq bool) ([]byte, error) {
	var err error
	switch t := v.(type) {
	case map[string]any:
		if t == nil {
			return append(b, " null\n"...), nil // as encoding/json writes a nil map
		}
		if len(t) == 0 {
			return append(b, " {}\n"...), nil
		}
		if inSeq {
			b = append(b, ' ')
			return appendBlockMap(b, t, indent, true)
		}
		b = append(b, '\n')
		return appendBlockMap(b, t, indent+2, false)
	case []any:
		if t == nil {
			return append(b, " null\n"...), nil
		}
		if len(t) == 0 {
			return append(b, " []\n"...), nil
		}
		if inSeq {
			b = append(b, ' ')
			return appendBlockSeq(b, t, indent, true)
		}
		b = append(b, '\n')
		return appendBlockSeq(b, t, indent, false)
	}
	b = append(b, ' ')
	if b, err = appendScalar(b, v); err != nil {
		return b, err
	}
	return append(b, '\n'), nil
}

func appendIndent(b []byte, n int) []byte {
	for range n {
		b = append(b, ' ')
	}
	return b
}

// appendScalar writes a string, number, boolean or null.
func appendScalar(b []byte, v any) ([]byte, error) {
	switch t := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendString(b, t), nil
	case bool:
		return strconv.AppendBool(b, t), nil
	case float64:
		return appendFloat(b, t)
	case int64:
		return strconv.AppendInt(b, t, 10), nil
	case int:
		return strconv.AppendInt(b, int64(t), 10), nil
	case int32:
		return strconv.AppendInt(b, int64(t), 10), nil
	}
	return b, errUnencodable
}

// appendFloat writes f as encoding/json does (the former encoding went through it).
func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, fmt.Errorf("unsupported number %v", f)
	}
	abs, format := math.Abs(f), byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// 1e-07 as 1e-7, as encoding/json writes it.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// appendString writes s plain when that is safe for every reader, double-quoted otherwise.
func appendString(b []byte, s string) []byte {
	if plainSafe(s) {
		return append(b, s...)
	}
	return appendQuoted(b, s)
}

// plainSafe: see EncodeManifests.
func plainSafe(s string) bool {
	if s == "" || !isLetter(s[0]) || s[len(s)-1] == ' ' || s[len(s)-1] == ':' {
		return false
	}
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case isLetter(c), c >= '0' && c <= '9':
		case c == '.', c == '_', c == '/', c == '-', c == '@', c == '+':
		case c == ':':
			if s[i+1] == ' ' { // s does not end in ':', so i+1 exists
				return false
			}
		case c == ' ':
			if s[i-1] == ' ' {
				return false
			}
		default:
			return false
		}
	}
	return !yaml11Word(s)
}

// yaml11Word reports whether YAML 1.1 reads s, plain, as a boolean or null (in any case,
// which covers the spellings it names and more).
func yaml11Word(s string) bool {
	if len(s) > 5 {
		return false
	}
	var lower [5]byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	switch string(lower[:len(s)]) {
	case "y", "n", "yes", "no", "true", "false", "on", "off", "null":
		return true
	}
	return false
}

// appendQuoted writes s double-quoted on one line: escapes for '"', '\\', every control
// character, DEL, the C1 controls (U+0085 among them), U+2028, U+2029 (YAML 1.1 line
// breaks) and the non-characters U+FEFF, U+FFFE, U+FFFF; invalid UTF-8 as U+FFFD, as
// encoding/json writes it.
func appendQuoted(b []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"', c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'x', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, "\uFFFD"...)
		case r <= 0x9f, r == 0x2028, r == 0x2029, r == 0xFEFF, r == 0xFFFE, r == 0xFFFF:
			b = append(b, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
