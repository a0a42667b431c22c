package pipeline

import (
	"testing"

	"github.com/slipwayhq/slipway/pipeline/diag"
)

// FuzzLoad feeds arbitrary bytes to the parser and validator. Whatever the input, they must
// not panic or hang, and every error must carry a real position and a message.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(seedPipeline))
	for _, tc := range badInputs {
		f.Add([]byte(tc.yaml))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, errs := Parse("f.yaml", data)
		errs = append(errs, Validate(ps, Options{})...)
		checkPositions(t, errs)
	})
}

func checkPositions(t *testing.T, errs diag.List) {
	t.Helper()
	for _, e := range errs {
		if e.File != "f.yaml" || e.Line < 1 || e.Column < 1 || e.Message == "" {
			t.Fatalf("error without a position or message: %+v", e)
		}
	}
}
