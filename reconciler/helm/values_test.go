package helm

import (
	"reflect"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/render"
)

func TestMergeValuesDeepMapsReplaceTheRest(t *testing.T) {
	dst := map[string]any{"image": map[string]any{"repository": "a", "tag": "1"}, "hosts": []any{"x", "y"}, "n": 1}
	MergeValues(dst, map[string]any{"image": map[string]any{"tag": "2"}, "hosts": []any{"z"}, "n": map[string]any{"k": true}})
	want := map[string]any{"image": map[string]any{"repository": "a", "tag": "2"}, "hosts": []any{"z"}, "n": map[string]any{"k": true}}
	if !reflect.DeepEqual(dst, want) {
		t.Errorf("merged %v, want %v", dst, want)
	}
}

func TestSubstituteValuesEveryStringNamedOnError(t *testing.T) {
	vars := render.Map{"BUILD_ID": "7"}
	in := map[string]any{"image": map[string]any{"tag": "alpha.${BUILD_ID}"}, "args": []any{"--id=${BUILD_ID}", 3}, "${BUILD_ID}": "key"}
	got, err := SubstituteValues(in, vars, "values")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"image": map[string]any{"tag": "alpha.7"}, "args": []any{"--id=7", 3}, "${BUILD_ID}": "key"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("substituted %v, want %v", got, want)
	}
	if in["image"].(map[string]any)["tag"] != "alpha.${BUILD_ID}" {
		t.Error("the input was modified")
	}
	_, err = SubstituteValues(map[string]any{"a": []any{map[string]any{"b": "${NOPE}"}}}, vars, "values")
	if err == nil || !strings.Contains(err.Error(), "values.a[0].b") || !strings.Contains(err.Error(), "NOPE") {
		t.Errorf("err = %v, want the field and the variable named", err)
	}
}

func TestValuesDigestIgnoresOrderSeesChanges(t *testing.T) {
	a, _ := ValuesDigest(map[string]any{"x": 1, "y": map[string]any{"p": "q", "r": "s"}})
	b, _ := ValuesDigest(map[string]any{"y": map[string]any{"r": "s", "p": "q"}, "x": 1})
	c, _ := ValuesDigest(map[string]any{"x": 2, "y": map[string]any{"p": "q", "r": "s"}})
	if a != b || a == c || !strings.HasPrefix(a, "sha256:") {
		t.Errorf("digests %s %s %s", a, b, c)
	}
}
