package kube

import (
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// mappingTTL is how long a found mapping is answered from memory before the dynamic mapper
// is asked again.
const mappingTTL = time.Minute

// mappingCache answers RESTMapping from the mappings it found in the last minute.
// controller-runtime's dynamic mapper walks one mapper per API version on every lookup and
// builds a "no match" error for each one that does not hold the kind; at 1000 applications
// a no-op spent 17 % of its allocations there, for a handful of kinds asked thousands of
// times. Asked once a minute per kind, that cost is gone.
//
// Only found mappings are kept, so a kind served later (a CRD installed after the first
// lookup) is looked up again until it is found. A kept mapping is at most a minute older
// than the dynamic mapper's own answer: a version the cluster stopped serving, or a new
// preferred version, is seen within a minute.
type mappingCache struct {
	meta.RESTMapper
	now   func() time.Time
	mu    sync.RWMutex
	found map[mappingKey]foundMapping
}

type mappingKey struct {
	gk       schema.GroupKind
	versions string
}

type foundMapping struct {
	m  *meta.RESTMapping
	at time.Time
}

func newMappingCache(m meta.RESTMapper) *mappingCache {
	return &mappingCache{RESTMapper: m, now: time.Now, found: map[mappingKey]foundMapping{}}
}

// RESTMapping implements meta.RESTMapper. Callers get a copy: a RESTMapping is a struct of
// values (its Scope a shared constant) that some callers may change.
func (c *mappingCache) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	key := mappingKey{gk: gk, versions: strings.Join(versions, ",")}
	now := c.now()
	c.mu.RLock()
	f, ok := c.found[key]
	c.mu.RUnlock()
	if !ok || now.Sub(f.at) >= mappingTTL {
		m, err := c.RESTMapper.RESTMapping(gk, versions...)
		if err != nil {
			c.mu.Lock()
			delete(c.found, key)
			c.mu.Unlock()
			return nil, err
		}
		f = foundMapping{m: m, at: now}
		c.mu.Lock()
		c.found[key] = f
		c.mu.Unlock()
	}
	cp := *f.m
	return &cp, nil
}
