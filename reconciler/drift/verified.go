package drift

import (
	"bytes"
	"slices"
)

// fullSweepEvery makes every sixth sweep (hourly by default) check every object, whatever
// the watch caches say: the other sweeps trust them for objects found unchanged.
const fullSweepEvery = 6

// verified is what an object was last found matching: the desired object and ignored paths
// it was compared with, and the resourceVersion the watch cache held for it just before.
// An object whose cache entry still has that resourceVersion has not been written since
// (every write moves it), so comparing it again with the same desired object can only
// agree: a sweep spares it the GET and the dry-run.
type verified struct {
	desired         []byte
	ignore          []string
	resourceVersion string
}

func (v verified) holds(o *Object, resourceVersion string) bool {
	return resourceVersion != "" && v.resourceVersion == resourceVersion &&
		bytes.Equal(v.desired, o.desired) && slices.Equal(v.ignore, o.Ignore)
}

// sweepKeys is the keys a sweep checks: all of them when full; otherwise those not
// verified against the resourceVersion the watch cache holds now (cached answers "" when
// its cache cannot tell: not synced, failing, or the object is not in it).
func sweepKeys(objects map[string]*Object, marks map[string]verified, full bool, cached func(key string, o *Object) string) (check []string, spared int) {
	for k, o := range objects {
		if !full {
			if v, ok := marks[k]; ok && v.holds(o, cached(k, o)) {
				spared++
				continue
			}
		}
		check = append(check, k)
	}
	return check, spared
}

// pruneMarks forgets the marks of objects no longer current.
func pruneMarks(marks map[string]verified, objects map[string]*Object) {
	for k := range marks {
		if objects[k] == nil {
			delete(marks, k)
		}
	}
}
