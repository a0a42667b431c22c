package pipeline

import (
	"strings"
	"testing"
)

func TestBadInputs(t *testing.T) {
	if len(badInputs) < 30 {
		t.Fatalf("only %d bad inputs; the language's error messages need at least 30", len(badInputs))
	}
	for _, tc := range badInputs {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("p.yaml", []byte(tc.yaml), Options{})
			got := errorLines(err)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func errorLines(err error) []string {
	if err == nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(err.Error(), "\n") {
		out = append(out, strings.TrimPrefix(l, "p.yaml:"))
	}
	return out
}
