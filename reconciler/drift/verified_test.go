package drift

import (
	"slices"
	"testing"
)

func TestSweepSparesOnlyObjectsVerifiedAtTheCachedVersion(t *testing.T) {
	same := &Object{desired: []byte(`{"a":1}`)}
	written := &Object{desired: []byte(`{"a":1}`)}
	redeployed := &Object{desired: []byte(`{"a":2}`)}
	reignored := &Object{desired: []byte(`{"a":1}`), Ignore: []string{"/spec/replicas"}}
	uncached := &Object{desired: []byte(`{"a":1}`)}
	never := &Object{desired: []byte(`{"a":1}`)}
	objects := map[string]*Object{"same": same, "written": written, "redeployed": redeployed,
		"reignored": reignored, "uncached": uncached, "never": never}
	mark := verified{desired: []byte(`{"a":1}`), resourceVersion: "7"}
	marks := map[string]verified{"same": mark, "written": mark, "redeployed": mark, "reignored": mark, "uncached": mark}
	cached := map[string]string{"same": "7", "written": "8", "redeployed": "7", "reignored": "7", "never": "7"}
	lookup := func(k string, _ *Object) string { return cached[k] }

	check, spared := sweepKeys(objects, marks, false, lookup)
	slices.Sort(check)
	// written: the cache saw a write since; redeployed and reignored: compared with another
	// desired object or paths; uncached: the cache cannot tell; never: never found matching.
	if want := []string{"never", "redeployed", "reignored", "uncached", "written"}; !slices.Equal(check, want) || spared != 1 {
		t.Fatalf("partial sweep checks %v and spares %d, want %v and 1", check, spared, want)
	}
	if check, spared := sweepKeys(objects, marks, true, lookup); len(check) != len(objects) || spared != 0 {
		t.Fatalf("full sweep checks %v and spares %d, want all %d", check, spared, len(objects))
	}

	pruneMarks(marks, map[string]*Object{"same": same})
	if len(marks) != 1 {
		t.Fatalf("marks of objects no longer current kept: %v", marks)
	}
}
