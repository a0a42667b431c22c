// Package leakscan looks for secret values where they must not be: files at rest, logs,
// API answers. A value is found raw, hex-encoded, or base64-encoded (standard or URL
// alphabet, at any alignment inside a longer base64 text, as in a Secret's data), also
// inside zstd frames (how the store compresses revisions) and, for SQLite databases, in
// every cell of every table as well as in the raw pages.
package leakscan

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	_ "modernc.org/sqlite" // the store's own driver, to read a database's cells
)

// Finding is one occurrence of a secret.
type Finding struct {
	Where  string // file (and table/column) or the name of the text scanned
	Secret string // the label the secret was given, never its value
	Form   string // raw, hex, base64, base64url
}

func (f Finding) String() string { return fmt.Sprintf("%s: secret %s (%s)", f.Where, f.Secret, f.Form) }

type needle struct {
	label, form string
	b           []byte
}

// Scanner looks for a fixed set of secrets.
type Scanner struct{ needles []needle }

// New scans for the values of secrets, keyed by a label used in findings. Values shorter
// than 8 bytes are refused: they would match by chance.
func New(secrets map[string]string) (*Scanner, error) {
	s := &Scanner{}
	labels := make([]string, 0, len(secrets))
	for l := range secrets {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	for _, label := range labels {
		v := []byte(secrets[label])
		if len(v) < 8 {
			return nil, fmt.Errorf("secret %s: %d bytes is too short to look for", label, len(v))
		}
		s.needles = append(s.needles, needle{label, "raw", v}, needle{label, "hex", []byte(hex.EncodeToString(v))})
		for _, enc := range []struct {
			form string
			e    *base64.Encoding
		}{{"base64", base64.StdEncoding}, {"base64url", base64.URLEncoding}} {
			for _, b := range alignedBase64(enc.e, v) {
				s.needles = append(s.needles, needle{label, enc.form, b})
			}
		}
	}
	return s, nil
}

// alignedBase64 is the part of v's encoding that is the same wherever v sits in a longer
// text, for each of the three byte alignments: the characters made of v's bits only.
func alignedBase64(e *base64.Encoding, v []byte) [][]byte {
	var out [][]byte
	for o := 0; o < 3; o++ {
		enc := e.EncodeToString(append(make([]byte, o), v...))
		from := (8*o + 5) / 6
		to := (8 * (o + len(v))) / 6
		out = append(out, []byte(enc[from:to]))
	}
	return out
}

// Text scans a string (an API answer, a log).
func (s *Scanner) Text(where, text string) []Finding { return s.Bytes(where, []byte(text)) }

// Bytes scans data and the content of every zstd frame in it.
func (s *Scanner) Bytes(where string, data []byte) []Finding {
	found := s.plain(where, data)
	magic := []byte{0x28, 0xb5, 0x2f, 0xfd}
	for i := 0; ; {
		j := bytes.Index(data[i:], magic)
		if j < 0 {
			break
		}
		i += j
		if raw := unzstd(data[i:]); len(raw) > 0 {
			found = append(found, s.plain(fmt.Sprintf("%s (zstd frame at byte %d)", where, i), raw)...)
		}
		i += len(magic)
	}
	return found
}

func (s *Scanner) plain(where string, data []byte) []Finding {
	var found []Finding
	seen := map[[2]string]bool{}
	for _, n := range s.needles {
		k := [2]string{n.label, n.form}
		if !seen[k] && bytes.Contains(data, n.b) {
			seen[k] = true
			found = append(found, Finding{Where: where, Secret: n.label, Form: n.form})
		}
	}
	return found
}

// unzstd decodes what it can of the frames starting at data; junk after them is fine.
func unzstd(data []byte) []byte {
	dec, err := zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(256<<20))
	if err != nil {
		return nil
	}
	defer dec.Close()
	out, _ := io.ReadAll(io.LimitReader(dec, 256<<20))
	return out
}

// Dir scans every regular file under root. SQLite databases are also read cell by cell,
// after all raw reads (so opening one cannot change the files first).
func (s *Scanner) Dir(ctx context.Context, root string) ([]Finding, error) {
	var found []Finding
	var dbs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		found = append(found, s.Bytes(path, data)...)
		if bytes.HasPrefix(data, []byte("SQLite format 3\x00")) {
			dbs = append(dbs, path)
		}
		return nil
	})
	if err != nil {
		return found, err
	}
	for _, db := range dbs {
		f, err := s.Database(ctx, db)
		found = append(found, f...)
		if err != nil {
			return found, err
		}
	}
	return found, nil
}

// Database reads every cell of every table of a SQLite file, read-only.
func (s *Scanner) Database(ctx context.Context, path string) ([]Finding, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=query_only(1)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var tables []string
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return nil, err
		}
		tables = append(tables, t)
	}
	rows.Close()
	var found []Finding
	for _, t := range tables {
		rows, err := db.QueryContext(ctx, `SELECT * FROM "`+strings.ReplaceAll(t, `"`, `""`)+`"`)
		if err != nil {
			return found, fmt.Errorf("%s table %s: %w", path, t, err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return found, err
			}
			for i, v := range vals {
				var b []byte
				switch v := v.(type) {
				case []byte:
					b = v
				case string:
					b = []byte(v)
				default:
					continue
				}
				found = append(found, s.Bytes(fmt.Sprintf("%s table %s column %s", path, t, cols[i]), b)...)
			}
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return found, err
		}
		rows.Close()
	}
	return found, nil
}
