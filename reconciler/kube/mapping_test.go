package kube

import (
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// countingMapper serves the kinds added to it and counts the lookups that reach it.
type countingMapper struct {
	*meta.DefaultRESTMapper
	mu      sync.Mutex
	lookups int
}

func (m *countingMapper) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	m.mu.Lock()
	m.lookups++
	m.mu.Unlock()
	return m.DefaultRESTMapper.RESTMapping(gk, versions...)
}

func TestMappingCacheAsksOncePerKindAndRetriesMisses(t *testing.T) {
	deploy := schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	widget := schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"}
	under := &countingMapper{DefaultRESTMapper: meta.NewDefaultRESTMapper([]schema.GroupVersion{deploy.GroupVersion()})}
	under.Add(deploy, meta.RESTScopeNamespace)
	c := newMappingCache(under)
	now := time.Now()
	c.now = func() time.Time { return now }

	for range 3 {
		m, err := c.RESTMapping(deploy.GroupKind(), deploy.Version)
		if err != nil {
			t.Fatal(err)
		}
		if m.Resource.Resource != "deployments" || m.Scope.Name() != meta.RESTScopeNameNamespace {
			t.Fatalf("mapping %+v", m)
		}
		m.Resource.Resource = "changed by a caller"
	}
	if under.lookups != 1 {
		t.Fatalf("%d lookups reached the mapper for one kind asked 3 times, want 1", under.lookups)
	}
	// Another version list is another question.
	if _, err := c.RESTMapping(deploy.GroupKind()); err != nil {
		t.Fatal(err)
	}
	if under.lookups != 2 {
		t.Fatalf("%d lookups, want 2 after asking without a version", under.lookups)
	}

	// A kind not served yet is asked again, and found once it is served (a CRD installed).
	if _, err := c.RESTMapping(widget.GroupKind(), widget.Version); !meta.IsNoMatchError(err) {
		t.Fatalf("an unknown kind: %v, want a no-match error", err)
	}
	under.Add(widget, meta.RESTScopeRoot)
	m, err := c.RESTMapping(widget.GroupKind(), widget.Version)
	if err != nil {
		t.Fatalf("after the kind is served: %v", err)
	}
	if m.Scope.Name() != meta.RESTScopeNameRoot {
		t.Fatalf("scope %s, want root", m.Scope.Name())
	}
}

// A kept mapping is asked for again after mappingTTL, and a kind the cluster stopped serving
// is then a miss, not the old answer.
func TestMappingCacheForgetsAfterItsTTL(t *testing.T) {
	widget := schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"}
	served := meta.NewDefaultRESTMapper(nil)
	served.Add(widget, meta.RESTScopeNamespace)
	under := &countingMapper{DefaultRESTMapper: served}
	c := newMappingCache(under)
	now := time.Now()
	c.now = func() time.Time { return now }
	if _, err := c.RESTMapping(widget.GroupKind(), widget.Version); err != nil {
		t.Fatal(err)
	}
	under.DefaultRESTMapper = meta.NewDefaultRESTMapper(nil) // the CRD's version is gone
	now = now.Add(mappingTTL - time.Second)
	if _, err := c.RESTMapping(widget.GroupKind(), widget.Version); err != nil || under.lookups != 1 {
		t.Fatalf("within the TTL: %v after %d lookups, want the kept mapping and 1 lookup", err, under.lookups)
	}
	now = now.Add(time.Second)
	if _, err := c.RESTMapping(widget.GroupKind(), widget.Version); !meta.IsNoMatchError(err) || under.lookups != 2 {
		t.Fatalf("after the TTL: %v after %d lookups, want a no-match error from a second lookup", err, under.lookups)
	}
}

// Many goroutines asking at once get the same answers (run with -race).
func TestMappingCacheConcurrentLookups(t *testing.T) {
	kinds := []schema.GroupVersionKind{
		{Group: "apps", Version: "v1", Kind: "Deployment"},
		{Version: "v1", Kind: "ConfigMap"},
		{Version: "v1", Kind: "Service"},
	}
	served := meta.NewDefaultRESTMapper(nil)
	for _, k := range kinds {
		served.Add(k, meta.RESTScopeNamespace)
	}
	c := newMappingCache(&countingMapper{DefaultRESTMapper: served})
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				k := kinds[(i+j)%len(kinds)]
				m, err := c.RESTMapping(k.GroupKind(), k.Version)
				if err != nil || m.GroupVersionKind != k {
					t.Errorf("%s: %v, %v", k, m, err)
					return
				}
				m.GroupVersionKind.Kind = "changed by a caller"
			}
		}()
	}
	wg.Wait()
}
