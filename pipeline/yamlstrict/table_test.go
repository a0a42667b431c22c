package yamlstrict

import (
	"maps"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/pipeline/diag"
)

// TestTableAnswersAsPositions packs random position maps, with paths that are prefixes of
// each other, keys holding dots and brackets, and more entries than one restart, and asks
// the table every path, every parent and near miss of one, as the map would answer them.
func TestTableAnswersAsPositions(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	segs := []string{"name", "stages", "tasks", "a", "a.b", "b", "", "app.kubernetes.io/name", "x[1]", "é"}
	for round := range 200 {
		p := Positions{}
		for range rng.IntN(3 * tableRestart) {
			path := ""
			for range 1 + rng.IntN(4) {
				if rng.IntN(3) == 0 {
					path = Index(path, rng.IntN(12))
				} else {
					path = Join(path, segs[rng.IntN(len(segs))])
				}
			}
			p[path] = Loc{Key: pos2(rng.IntN(3), rng.IntN(200)), Value: pos2(1+rng.IntN(70000), 1+rng.IntN(300))}
		}
		if rng.IntN(2) == 0 {
			p[""] = Loc{Value: pos2(1, 1)}
		}
		tb := Pack(p)
		if got := tb.Unpack(); !maps.Equal(got, p) && len(p) > 0 {
			t.Fatalf("round %d: Unpack = %v, want %v", round, got, p)
		}
		var probes []string
		for path := range p {
			probes = append(probes, path, path+"a", path+".", path+"[0]", path+"\xff")
			if path != "" {
				probes = append(probes, path[:len(path)-1], strings.ToUpper(path))
			}
			for q, ok := Parent(path); ok; q, ok = Parent(q) {
				probes = append(probes, q)
			}
		}
		probes = append(probes, "", "zzz", "\x00", "stages[3].tasks[2].image")
		for _, path := range probes {
			wl, wok := p[path]
			gl, gok := tb.find(path)
			if wok != gok || wl != gl {
				t.Fatalf("round %d: find(%q) = %v %v, want %v %v (paths %v)", round, path, gl, gok, wl, wok, keys(p))
			}
			if tb.Of(path) != p.Of(path) || tb.KeyOf(path) != p.KeyOf(path) || tb.Has(path) != wok {
				t.Fatalf("round %d: Of/KeyOf/Has(%q) differ from the map's", round, path)
			}
		}
	}
}

func TestTableZero(t *testing.T) {
	var tb Table
	if tb.Has("") || tb.Of("a.b").Line != 1 || len(tb.Unpack()) != 0 {
		t.Fatal("the zero Table is not empty")
	}
	if Pack(Positions{}) != (Table{}) {
		t.Fatal("packing nothing is not the zero Table")
	}
}

func pos2(line, col int) diag.Pos { return diag.Pos{Line: line, Column: col} }

func keys(p Positions) []string {
	var out []string
	for k := range p {
		out = append(out, k)
	}
	return out
}
