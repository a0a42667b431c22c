// Package mask hides secret values in text bound for logs, records, events and answers:
// the value itself and the forms it takes when a manifest, a template or a URL carries it
// (base64 in both alphabets, with and without padding, and inside longer base64 text; URL
// query and path escaping; hex).
package mask

import (
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"sort"
	"strings"
)

// Replacement is what a masked value becomes.
const Replacement = "***"

// minEncoded is the shortest value whose hex and in-text base64 forms are masked: shorter
// ones would match unrelated text by chance.
const minEncoded = 8

// Masker replaces a fixed set of secret values; the zero value and nil mask nothing.
type Masker struct {
	r *strings.Replacer
}

// New masks values (empty ones are ignored).
func New(values ...string) *Masker {
	seen := map[string]bool{}
	var needles []string
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			needles = append(needles, s)
		}
	}
	for _, v := range values {
		if v == "" {
			continue
		}
		add(v)
		b := []byte(v)
		for _, e := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
			add(e.EncodeToString(b))
		}
		add(url.QueryEscape(v))
		add(url.PathEscape(v))
		if len(b) >= minEncoded {
			add(hex.EncodeToString(b))
			for _, e := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
				for _, f := range alignedBase64(e, b) {
					add(f)
				}
			}
		}
	}
	if len(needles) == 0 {
		return &Masker{}
	}
	// Longest first: at one position the longer form (padded base64) wins.
	sort.SliceStable(needles, func(i, j int) bool { return len(needles[i]) > len(needles[j]) })
	pairs := make([]string, 0, 2*len(needles))
	for _, n := range needles {
		pairs = append(pairs, n, Replacement)
	}
	return &Masker{r: strings.NewReplacer(pairs...)}
}

// alignedBase64 is the part of v's base64 that is the same wherever v sits in a longer
// text (as "user:password" in a basic-auth header), for each of the three alignments.
func alignedBase64(e *base64.Encoding, v []byte) []string {
	var out []string
	for o := 0; o < 3; o++ {
		enc := e.EncodeToString(append(make([]byte, o), v...))
		from := (8*o + 5) / 6
		to := (8 * (o + len(v))) / 6
		out = append(out, enc[from:to])
	}
	return out
}

// String masks s.
func (m *Masker) String(s string) string {
	if m == nil || m.r == nil {
		return s
	}
	return m.r.Replace(s)
}

// Empty tells whether m masks nothing.
func (m *Masker) Empty() bool { return m == nil || m.r == nil }
