package yamlstrict

import (
	"slices"
	"strings"
)

// Suggest returns the candidate closest to s when it is close enough to be a likely typo
// (same letters in another case, or at most a third of the letters different), else "".
func Suggest(s string, candidates []string) string {
	limit := max(1, min(3, len(s)/3))
	best, bestDist := "", limit+1
	sorted := slices.Clone(candidates)
	slices.Sort(sorted) // ties resolve the same way every time
	for _, c := range sorted {
		if strings.EqualFold(s, c) {
			return c
		}
		if d := distance(s, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// distance is the edit distance between a and b in bytes, counting a swap of two adjacent
// letters as one edit (the commonest typo: nmae for name).
func distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

func sortStrings(s []string) { slices.Sort(s) }
