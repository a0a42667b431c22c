package preview

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// partHeader is how long the "part i of n" line and the forge client's hidden marker may
// be, at most; Split keeps that much of every part's limit free for them.
const partHeader = 96

// Split cuts a comment into parts of at most limit bytes each (a forge's comment size
// limit; bytes, so multi-byte text never overshoots a limit counted in characters). It
// cuts between lines; a code block open at a cut is closed there and reopened, with its
// language, in the next part; a single line longer than a part is cut inside. Every part
// but a lone one starts with "(part i of n)".
func Split(body string, limit int) []string {
	if len(body) <= limit {
		return []string{body}
	}
	room := limit - partHeader
	if room < 64 {
		room = 64
	}
	var parts []string
	var cur strings.Builder
	fence := "" // the opening line of the code block the cut is inside, "" if none
	flush := func() {
		if fence != "" {
			cur.WriteString("```\n")
		}
		parts = append(parts, cur.String())
		cur.Reset()
		if fence != "" {
			cur.WriteString(fence)
		}
	}
	closing := len("```\n")
	for _, l := range strings.SplitAfter(body, "\n") {
		if l == "" {
			continue
		}
		for len(l) > 0 {
			free := room - cur.Len() - closing
			if len(l) <= free {
				cur.WriteString(l)
				break
			}
			if cur.Len() > len(fence) {
				flush()
				continue
			}
			// A line longer than a whole part: cut it at a rune boundary.
			n := free
			for n > 0 && !utf8.RuneStart(l[n]) {
				n--
			}
			cur.WriteString(l[:n] + "\n")
			if l = l[n:]; l == "\n" {
				break
			}
			flush()
		}
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "```") {
			if fence == "" {
				fence = t + "\n"
			} else if t == "```" {
				fence = ""
			}
		}
	}
	if cur.Len() > len(fence) || len(parts) == 0 {
		fence = ""
		parts = append(parts, cur.String())
	}
	if len(parts) == 1 {
		return parts
	}
	for i := range parts {
		parts[i] = fmt.Sprintf("_(part %d of %d)_\n\n", i+1, len(parts)) + parts[i]
	}
	return parts
}
