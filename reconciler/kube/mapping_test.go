package kube

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// countingMapper serves the kinds added to it and counts the lookups that reach it.
type countingMapper struct {
	*meta.DefaultRESTMapper
	lookups int
}

func (m *countingMapper) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	m.lookups++
	return m.DefaultRESTMapper.RESTMapping(gk, versions...)
}

func TestMappingCacheAsksOncePerKindAndRetriesMisses(t *testing.T) {
	deploy := schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	widget := schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"}
	under := &countingMapper{DefaultRESTMapper: meta.NewDefaultRESTMapper([]schema.GroupVersion{deploy.GroupVersion()})}
	under.Add(deploy, meta.RESTScopeNamespace)
	c := newMappingCache(under)

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
