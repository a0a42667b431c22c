package celrule

import (
	"errors"
	"strings"
	"testing"
)

func TestCompileAndEval(t *testing.T) {
	c, err := NewCompiler()
	if err != nil {
		t.Fatal(err)
	}
	lb := map[string]any{"kind": "Service", "spec": map[string]any{"type": "LoadBalancer"}}
	clusterIP := map[string]any{"kind": "Service", "spec": map[string]any{}}
	deploy := map[string]any{"kind": "Deployment", "spec": map[string]any{"replicas": int64(5)}}
	tests := []struct {
		expr    string
		obj     map[string]any
		want    bool
		evalErr string
	}{
		{"object.kind != 'Service' || object.spec.type != 'LoadBalancer'", lb, false, ""},
		{"object.kind != 'Service' || object.spec.type != 'LoadBalancer'", deploy, true, ""},
		// Reading a field the object lacks is an error, as in Kubernetes; has() guards it.
		{"object.kind != 'Service' || object.spec.type != 'LoadBalancer'", clusterIP, false, "no such key: type"},
		{"object.kind != 'Service' || !has(object.spec.type) || object.spec.type != 'LoadBalancer'", clusterIP, true, ""},
		{"object.kind != 'Deployment' || object.spec.replicas <= 3", deploy, false, ""},
		{"object.kind.lowerAscii() == 'deployment'", deploy, true, ""},
		{"object.spec", deploy, false, "not true or false"},
	}
	for _, tt := range tests {
		p, err := c.Compile(tt.expr)
		if err != nil {
			t.Fatalf("%s: %v", tt.expr, err)
		}
		got, err := p.Eval(tt.obj)
		switch {
		case tt.evalErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.evalErr) {
				t.Errorf("%s on %v: error %v, want one saying %q", tt.expr, tt.obj, err, tt.evalErr)
			}
		case err != nil:
			t.Errorf("%s on %v: %v", tt.expr, tt.obj, err)
		case got != tt.want:
			t.Errorf("%s on %v = %v, want %v", tt.expr, tt.obj, got, tt.want)
		}
	}
}

func TestCompileRefusesBadRules(t *testing.T) {
	c, err := NewCompiler()
	if err != nil {
		t.Fatal(err)
	}
	for expr, want := range map[string]string{
		"object.kind ==":          "Syntax error",
		"objekt.kind == 'Pod'":    "undeclared reference to 'objekt'",
		"object.kind + 'x'":       "evaluates to string",
		"size(object) == 'three'": "no matching overload",
	} {
		_, err := c.Compile(expr)
		if !errors.Is(err, ErrCompile) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want ErrCompile saying %q", expr, err, want)
		}
	}
}

// The examples docs/policy.md gives compile.
func TestDocumentedRulesCompile(t *testing.T) {
	c, err := NewCompiler()
	if err != nil {
		t.Fatal(err)
	}
	for _, expr := range []string{
		`object.kind != 'Service' || !has(object.spec.type) || object.spec.type != 'LoadBalancer'`,
		`object.kind != 'Deployment' || object.spec.template.spec.containers.all(c, has(c.resources.limits))`,
		`object.kind != 'Pod' || !has(object.spec.hostNetwork) || !object.spec.hostNetwork`,
		`has(object.metadata.labels) && 'team' in object.metadata.labels`,
		`object.kind != 'Deployment' || object.spec.template.spec.containers.all(c, !c.image.endsWith(':latest'))`,
		`object.kind != 'Deployment' || !has(object.spec.replicas) || object.spec.replicas <= 20`,
	} {
		if _, err := c.Compile(expr); err != nil {
			t.Errorf("%s: %v", expr, err)
		}
	}
}
