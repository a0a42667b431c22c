package yamlstrict

import (
	"encoding/binary"
	"slices"
	"sort"

	"github.com/slipwayhq/slipway/pipeline/diag"
)

// Table is Positions packed for keeping: the same paths and places, sorted and
// front-coded in one immutable string. A parsed pipeline keeps its positions as long as
// anything may run it, so that a policy check can name the line it denies; as a map they
// were most of what a parsed pipeline file held (about 2 kB of 3 per pipeline of the
// scale benchmark's monorepo, eight times the packed size). Lookups cost a binary search
// and a short scan, which only error messages pay after validation. The zero Table holds
// nothing.
//
// Layout: entries sorted by path, each uvarint(shared prefix with the previous path),
// uvarint(len(rest)), rest, then the four uvarints key line, key column, value line, value
// column; every tableRestart-th entry shares nothing (a restart). After the entries, the
// byte offset of each restart as a little-endian uint32, then their count as one.
type Table struct{ s string }

// tableRestart is how many entries a lookup may scan past the binary search.
const tableRestart = 16

// Pack packs p.
func Pack(p Positions) Table {
	if len(p) == 0 {
		return Table{}
	}
	paths := make([]string, 0, len(p))
	for k := range p {
		paths = append(paths, k)
	}
	slices.Sort(paths)
	var b []byte
	var restarts []uint32
	prev := ""
	for i, path := range paths {
		shared := 0
		if i%tableRestart == 0 {
			restarts = append(restarts, uint32(len(b)))
		} else {
			shared = commonPrefix(prev, path)
		}
		l := p[path]
		b = binary.AppendUvarint(b, uint64(shared))
		b = binary.AppendUvarint(b, uint64(len(path)-shared))
		b = append(b, path[shared:]...)
		for _, n := range [...]int{l.Key.Line, l.Key.Column, l.Value.Line, l.Value.Column} {
			b = binary.AppendUvarint(b, uint64(max(n, 0)))
		}
		prev = path
	}
	for _, r := range restarts {
		b = binary.LittleEndian.AppendUint32(b, r)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(restarts)))
	return Table{s: string(b)} // a copy of exactly its size: b's spare capacity is not kept
}

// Unpack is the Positions t was packed from, for changing and packing again.
func (t Table) Unpack() Positions {
	p := Positions{}
	var key []byte
	for off, end := 0, t.entriesEnd(); off < end; {
		var e entry
		e, off = t.entry(off)
		key = append(key[:e.shared], e.rest...)
		p[string(key)] = e.loc
	}
	return p
}

// Has says whether path was written.
func (t Table) Has(path string) bool {
	_, ok := t.find(path)
	return ok
}

// Of is Positions.Of.
func (t Table) Of(path string) diag.Pos { return of(t.find, path) }

// KeyOf is Positions.KeyOf.
func (t Table) KeyOf(path string) diag.Pos { return keyOf(t.find, path) }

type entry struct {
	shared int
	rest   string
	loc    Loc
}

func (t Table) restarts() int {
	if len(t.s) < 4 {
		return 0
	}
	return le32(t.s[len(t.s)-4:])
}

func (t Table) restart(i int) int {
	at := len(t.s) - 4 - 4*(t.restarts()-i)
	return le32(t.s[at : at+4])
}

func (t Table) entriesEnd() int {
	if len(t.s) < 4 {
		return 0
	}
	return len(t.s) - 4 - 4*t.restarts()
}

// entry decodes the entry at off and returns it with the offset of the next. Tables are
// only made by Pack, so their bytes are well formed.
func (t Table) entry(off int) (entry, int) {
	var e entry
	next := func() int {
		v, n := uvarint(t.s[off:])
		off += n
		return int(v)
	}
	e.shared = next()
	l := next()
	e.rest = t.s[off : off+l]
	off += l
	e.loc.Key.Line, e.loc.Key.Column = next(), next()
	e.loc.Value.Line, e.loc.Value.Column = next(), next()
	return e, off
}

// le32 is binary.LittleEndian.Uint32 on a string.
func le32(s string) int {
	return int(uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24)
}

// uvarint is binary.Uvarint on a string, without copying it to bytes.
func uvarint(s string) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x80 {
			return x | uint64(c)<<shift, i + 1
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
	return x, len(s)
}

// find is the Loc of exactly path.
func (t Table) find(path string) (Loc, bool) {
	n := t.restarts()
	// The last restart whose path is at most path; restarts share nothing, so rest is their path.
	i := sort.Search(n, func(i int) bool {
		e, _ := t.entry(t.restart(i))
		return e.rest > path
	}) - 1
	if i < 0 {
		return Loc{}, false
	}
	end := t.entriesEnd()
	if i+1 < n {
		end = t.restart(i + 1)
	}
	// m is how much of path the current entry's path matches. An entry sharing less with
	// its predecessor than that differs from path where its predecessor matched, so it sorts
	// after path; one sharing more matches no more of path than its predecessor did.
	m := 0
	for off := t.restart(i); off < end; {
		var e entry
		e, off = t.entry(off)
		switch {
		case e.shared < m:
			return Loc{}, false
		case e.shared > m:
			continue
		}
		c := commonPrefix(e.rest, path[m:])
		m += c
		if c == len(e.rest) && m == len(path) {
			return e.loc, true
		}
		if c < len(e.rest) && (m == len(path) || e.rest[c] > path[m]) {
			return Loc{}, false // this entry, and every later one, sorts after path
		}
	}
	return Loc{}, false
}

func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// of is Positions.Of over any lookup.
func of(find func(string) (Loc, bool), path string) diag.Pos {
	for {
		if l, ok := find(path); ok {
			return l.Value
		}
		parent, ok := Parent(path)
		if !ok {
			if l, ok := find(""); ok {
				return l.Value
			}
			return diag.Pos{Line: 1, Column: 1}
		}
		path = parent
	}
}

func keyOf(find func(string) (Loc, bool), path string) diag.Pos {
	if l, ok := find(path); ok && l.Key.Line > 0 {
		return l.Key
	}
	return of(find, path)
}
