package server

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/slipwayhq/slipway/server/records"
)

// openAPI is the part of docs/openapi.yaml the test checks.
type openAPI struct {
	Paths      map[string]map[string]operation `yaml:"paths"`
	Components struct {
		Parameters map[string]parameter `yaml:"parameters"`
		Schemas    map[string]struct {
			Properties map[string]any `yaml:"properties"`
		} `yaml:"schemas"`
	} `yaml:"components"`
}

type operation struct {
	Parameters []parameter    `yaml:"parameters"`
	Responses  map[string]any `yaml:"responses"`
}

type parameter struct {
	Ref  string `yaml:"$ref"`
	Name string `yaml:"name"`
	In   string `yaml:"in"`
}

func loadOpenAPI(t *testing.T) openAPI {
	t.Helper()
	raw, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc openAPI
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	return doc
}

// docs/openapi.yaml describes exactly the routes the server serves, each with its path
// parameters and its 401 and 403 answers.
func TestOpenAPIMatchesTheRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	documented := map[string]operation{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			documented[strings.ToUpper(method)+" /api/v1"+path] = op
		}
	}
	served := map[string]bool{}
	for _, rt := range (&Server{}).routes() {
		served[rt.Pattern] = true
		op, ok := documented[rt.Pattern]
		if !ok {
			t.Errorf("route %s is not in docs/openapi.yaml", rt.Pattern)
			continue
		}
		for _, code := range []string{"401", "403"} {
			if op.Responses[code] == nil {
				t.Errorf("docs/openapi.yaml: %s does not document its %s", rt.Pattern, code)
			}
		}
		var inPath []string
		for _, p := range op.Parameters {
			if p.Ref != "" {
				p = doc.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
			}
			if p.In == "path" {
				inPath = append(inPath, p.Name)
			}
		}
		var want []string
		for _, seg := range strings.Split(rt.Pattern, "/") {
			if strings.HasPrefix(seg, "{") {
				want = append(want, strings.Trim(seg, "{}"))
			}
		}
		slices.Sort(inPath)
		slices.Sort(want)
		if !slices.Equal(inPath, want) {
			t.Errorf("docs/openapi.yaml: %s declares path parameters %v, want %v", rt.Pattern, inPath, want)
		}
	}
	for pattern := range documented {
		if !served[pattern] {
			t.Errorf("docs/openapi.yaml documents %s, which the server does not serve", pattern)
		}
	}
}

// The schemas name exactly the JSON fields the answers have.
func TestOpenAPISchemasMatchTheTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	for name, v := range map[string]any{
		"Run": records.Run{}, "RunList": records.RunList{}, "Task": records.Task{}, "Stage": records.Stage{},
		"Object": records.Object{}, "Chart": records.Chart{}, "Revision": records.Revision{},
		"CurrentRevision": records.CurrentRevision{}, "Pipeline": records.Pipeline{}, "Deployment": records.Deployment{},
		"Line": records.Line{}, "DriftEvent": records.DriftEvent{}, "AuditEntry": records.AuditEntry{},
		"Repository": Repository{}, "PipelineState": PipelineState{}, "LogPage": LogPage{}, "DriftState": DriftState{},
		"RunRequest": RunRequest{}, "SuspendRequest": SuspendRequest{}, "AnswerRequest": AnswerRequest{}, "Error": errorBody{},
	} {
		schema, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("docs/openapi.yaml has no schema %s", name)
			continue
		}
		var fields, documented []string
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			tag, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			if tag != "" && tag != "-" {
				fields = append(fields, tag)
			}
		}
		for p := range schema.Properties {
			documented = append(documented, p)
		}
		slices.Sort(fields)
		slices.Sort(documented)
		if !slices.Equal(fields, documented) {
			t.Errorf("schema %s has %v, the type %v", name, documented, fields)
		}
	}
}
