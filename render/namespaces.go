package render

import (
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// ScopeResolver tells whether a kind is namespaced; the cluster's REST mapper answers it.
type ScopeResolver interface {
	Namespaced(gvk schema.GroupVersionKind) (bool, error)
}

// NamespaceOptions say how a deploy task places objects.
type NamespaceOptions struct {
	Namespace       string   // the task's namespace, set on namespaced objects that name none
	AllowNamespaces []string // other namespaces objects may name ("*" allows any)
}

// SetNamespaces puts namespaced objects in the task's namespace and refuses objects naming
// another namespace unless allowed. Kinds defined by CRDs in the same set are resolved
// from those CRDs, since the cluster cannot know them before the first apply.
func SetNamespaces(ms []Manifest, scopes ScopeResolver, opts NamespaceOptions) error {
	crdScopes := map[schema.GroupKind]bool{}
	for _, m := range ms {
		o := m.Object
		if o.GetKind() != "CustomResourceDefinition" {
			continue
		}
		group, _, _ := unstructured.NestedString(o.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
		scope, _, _ := unstructured.NestedString(o.Object, "spec", "scope")
		crdScopes[schema.GroupKind{Group: group, Kind: kind}] = scope == "Namespaced"
	}
	var errs []error
	for _, m := range ms {
		o := m.Object
		gvk := o.GroupVersionKind()
		namespaced, ok := crdScopes[gvk.GroupKind()]
		if !ok {
			var err error
			namespaced, err = scopes.Namespaced(gvk)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", m, err))
				continue
			}
		}
		if !namespaced {
			o.SetNamespace("")
			continue
		}
		switch ns := o.GetNamespace(); {
		case ns == "":
			if opts.Namespace == "" {
				errs = append(errs, fmt.Errorf("%s: namespaced object without a namespace, and the task sets none", m))
				continue
			}
			o.SetNamespace(opts.Namespace)
		case ns != opts.Namespace && !allowed(ns, opts.AllowNamespaces):
			errs = append(errs, fmt.Errorf("%s: names namespace %q, but the task deploys to %q (list it in allowNamespaces to permit this)", m, ns, opts.Namespace))
		}
	}
	return errors.Join(errs...)
}

func allowed(ns string, list []string) bool {
	for _, a := range list {
		if a == "*" || a == ns {
			return true
		}
	}
	return false
}
