package builder

import (
	"strings"
	"testing"
)

func TestTagPattern(t *testing.T) {
	cases := []struct {
		template, glob string
		match          map[string]string // tag → BUILD_ID ("" means no match)
	}{
		{"alpha-${BUILD_ID}", "alpha-*", map[string]string{"alpha-1": "1", "alpha-10": "10", "alpha-x": "", "beta-1": "", "alpha-1-rc": "", "xalpha-1": ""}},
		{"v1.${BUILD_ID}-${GIT_SHORT}", "v1.*-*", map[string]string{"v1.7-abc123": "7", "v1x7-abc": "", "v1.7-": "7"}},
		{"${BUILD_ID}", "*", map[string]string{"42": "42", "latest": ""}},
	}
	for _, c := range cases {
		glob, re, err := tagPattern(c.template)
		if err != nil {
			t.Fatalf("%s: %v", c.template, err)
		}
		if glob != c.glob {
			t.Errorf("%s: glob %q, want %q", c.template, glob, c.glob)
		}
		for tag, id := range c.match {
			m := re.FindStringSubmatch(tag)
			got := ""
			if m != nil {
				got = m[1]
			}
			if got != id {
				t.Errorf("%s: tag %q gives BUILD_ID %q, want %q", c.template, tag, got, id)
			}
		}
	}
	if _, _, err := tagPattern("latest-${GIT_SHORT}"); err == nil || !strings.Contains(err.Error(), "no ${BUILD_ID}") {
		t.Errorf("template without BUILD_ID: %v", err)
	}
}
