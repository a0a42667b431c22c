package reconciler

import (
	"slices"
	"strings"
	"testing"
)

func TestReferencedTags(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	objects := []byte(`image: reg:5000/shop/web:alpha-3
- image: "reg:5000/shop/web:alpha-7@` + d + `"
- image: reg:5000/shop/web@` + d + `
- image: reg:5000/shop/web-2:alpha-9
- image: reg:5000/other/web:alpha-5
`)
	got := referencedTags(imageRefPattern("reg:5000/shop/web"), objects)
	want := []string{"alpha-3", "alpha-7", d, d}
	if !slices.Equal(got, want) {
		t.Errorf("referenced %v, want %v", got, want)
	}
	if imageRepository("reg:5000/shop/web:alpha-3") != "reg:5000/shop/web" {
		t.Error("imageRepository must drop only the tag, not the port")
	}
}

func TestImageTagOfAVersionWithBuildMetadata(t *testing.T) {
	for in, want := range map[string]string{"1.4.0": "1.4.0", "0.0.0-3+abc1234": "0.0.0-3_abc1234", "alpha-7": "alpha-7"} {
		if got := imageTag(in, nil); got != want {
			t.Errorf("imageTag(%q) = %q, want %q", in, got, want)
		}
	}
}
