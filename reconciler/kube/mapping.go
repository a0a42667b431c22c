package kube

import (
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// mappingCache answers RESTMapping from the mappings it already found. controller-runtime's
// dynamic mapper walks one mapper per API version on every lookup and builds a "no match"
// error for each one that does not hold the kind; at 1000 applications a no-op spent 17 % of
// its allocations there, for a handful of kinds asked thousands of times.
//
// Only found mappings are kept, so a kind served later (a CRD installed after the first
// lookup) is looked up again until it is found. A kept mapping goes stale exactly when the
// dynamic mapper's own does: it too keeps an API group once discovered.
type mappingCache struct {
	meta.RESTMapper
	mu    sync.RWMutex
	found map[mappingKey]*meta.RESTMapping
}

type mappingKey struct {
	gk       schema.GroupKind
	versions string
}

func newMappingCache(m meta.RESTMapper) *mappingCache {
	return &mappingCache{RESTMapper: m, found: map[mappingKey]*meta.RESTMapping{}}
}

// RESTMapping implements meta.RESTMapper. Callers get a copy: a RESTMapping is a struct of
// values that some callers may change.
func (c *mappingCache) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	key := mappingKey{gk: gk, versions: strings.Join(versions, ",")}
	c.mu.RLock()
	m, ok := c.found[key]
	c.mu.RUnlock()
	if !ok {
		var err error
		if m, err = c.RESTMapper.RESTMapping(gk, versions...); err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.found[key] = m
		c.mu.Unlock()
	}
	cp := *m
	return &cp, nil
}
