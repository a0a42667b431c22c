package webhook

import (
	"testing"
)

// BenchmarkParseGitHubPush100 parses a signed 100-commit GitHub push, verification
// included.
func BenchmarkParseGitHubPush100(b *testing.B) {
	body := githubPushBody(b, 100)
	h := signed(GitHub, testSecret, "push", "72d3162e-cc78-11e3-81ab-4c9367dc0958", body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(GitHub, testSecret, h, body); err != nil {
			b.Fatal(err)
		}
	}
}
