package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/slipwayhq/slipway/pipeline/yamlstrict"
)

//go:generate go run ./internal/gendocs -schema ../docs/pipeline.schema.json -doc ../docs/pipeline.md

// SchemaID is where the schema is published, for editors' yaml-language-server comments.
const SchemaID = "https://raw.githubusercontent.com/slipwayhq/slipway/main/docs/pipeline.schema.json"

// durationPattern matches what time.ParseDuration accepts, as written in pipeline files.
const durationPattern = `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$|^0$`

// JSONSchema returns the JSON Schema (draft-07) of one `.pipeline.yaml` document, generated
// from the Go types and their tags so that it cannot drift from what the parser accepts.
func JSONSchema() ([]byte, error) {
	g := &schemaGen{defs: map[string]any{}}
	root := g.object(reflect.TypeFor[Pipeline]())
	root["$schema"] = "http://json-schema.org/draft-07/schema#"
	root["$id"] = SchemaID
	root["title"] = "Slipway pipeline"
	root["description"] = "One pipeline of a .pipeline.yaml file; a file may hold several YAML documents. Reference: docs/pipeline.md."
	root["definitions"] = g.defs
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("encoding the pipeline schema: %w", err)
	}
	return buf.Bytes(), nil
}

type schemaGen struct {
	defs map[string]any
}

var durationType = reflect.TypeFor[Duration]()

func (g *schemaGen) schema(t reflect.Type) map[string]any {
	if t == durationType {
		return map[string]any{"oneOf": []any{
			map[string]any{"type": "string", "pattern": durationPattern},
			map[string]any{"type": "integer", "const": 0},
		}}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.schema(t.Elem())
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Map:
		if t.Elem().Kind() == reflect.Interface {
			return map[string]any{"type": "object"}
		}
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem())}
	case reflect.Struct:
		name := t.Name()
		if _, done := g.defs[name]; !done {
			g.defs[name] = nil // reserve: types may refer to themselves
			g.defs[name] = g.structSchema(t)
		}
		return map[string]any{"$ref": "#/definitions/" + name}
	}
	panic("schema: unsupported type " + t.String())
}

func (g *schemaGen) structSchema(t reflect.Type) map[string]any {
	var variants []reflect.StructField
	for i := range t.NumField() {
		if t.Field(i).Tag.Get("variant") != "" {
			variants = append(variants, t.Field(i))
		}
	}
	if len(variants) == 0 {
		return g.object(t)
	}
	// A tagged union: one closed object per variant, with the discriminator fixed.
	var oneOf []any
	for _, v := range variants {
		obj := g.object(t, v.Type.Elem())
		props := obj["properties"].(map[string]any)
		for i := range t.NumField() {
			if sf := t.Field(i); sf.Tag.Get("discriminator") == "true" {
				key, _ := yamlstrict.YAMLKey(sf)
				p := props[key].(map[string]any)
				delete(p, "enum")
				p["const"] = v.Tag.Get("variant")
			}
		}
		obj["title"] = v.Tag.Get("variant") + " task"
		oneOf = append(oneOf, obj)
	}
	return map[string]any{"type": "object", "required": []string{"name", "type"}, "oneOf": oneOf}
}

// object describes the fields of the given structs as one closed object.
func (g *schemaGen) object(types ...reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	for _, t := range types {
		for _, f := range fieldsOf(t) {
			s := g.schema(f.sf.Type)
			if f.doc != "" {
				s["description"] = f.doc
			}
			if len(f.enum) > 0 {
				s["enum"] = f.enum
			}
			if f.def != "" {
				s["default"] = typedDefault(f.sf.Type, f.def)
			}
			if _, ref := s["$ref"]; ref && len(s) > 1 {
				// draft-07 ignores siblings of $ref; wrap so the description shows.
				s = map[string]any{"allOf": []any{map[string]any{"$ref": s["$ref"]}}, "description": s["description"]}
			}
			props[f.key] = s
			if f.required {
				required = append(required, f.key)
			}
		}
	}
	obj := map[string]any{"type": "object", "additionalProperties": false, "properties": props}
	if len(required) > 0 {
		obj["required"] = required
	}
	return obj
}

func typedDefault(t reflect.Type, def string) any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return def == "true"
	case reflect.Int, reflect.Int32, reflect.Int64:
		n, err := strconv.Atoi(def)
		if err != nil {
			panic("schema: bad int default " + def)
		}
		return n
	}
	return def
}

// docField is one documented field of a struct.
type docField struct {
	sf       reflect.StructField
	key      string
	doc      string
	def      string
	enum     []string
	required bool
	subst    bool
}

func fieldsOf(t reflect.Type) []docField {
	var out []docField
	for i := range t.NumField() {
		sf := t.Field(i)
		key, _ := yamlstrict.YAMLKey(sf)
		if !sf.IsExported() || key == "-" || sf.Tag.Get("variant") != "" {
			continue
		}
		f := docField{sf: sf, key: key, doc: sf.Tag.Get("doc"), def: sf.Tag.Get("default"),
			required: sf.Tag.Get("required") == "true", subst: sf.Tag.Get("subst") == "true"}
		if f.subst {
			f.doc = strings.TrimSpace(f.doc + " Takes ${...} references.")
		}
		if e := sf.Tag.Get("enum"); e != "" {
			f.enum = strings.Split(e, ",")
		}
		out = append(out, f)
	}
	return out
}

// FieldReference returns Markdown tables of every field of a pipeline, one table per kind
// of object, generated from the same tags as the schema.
func FieldReference() string {
	var b strings.Builder
	seen := map[reflect.Type]bool{}
	var walk func(title string, types ...reflect.Type)
	var queue []func()
	walk = func(title string, types ...reflect.Type) {
		fmt.Fprintf(&b, "#### %s\n\n| field | type | required | default | description |\n| --- | --- | --- | --- | --- |\n", title)
		for _, t := range types {
			for _, f := range fieldsOf(t) {
				req := ""
				if f.required {
					req = "yes"
				}
				def := f.def
				if def != "" {
					def = "`" + def + "`"
				}
				typ := typeName(f.sf.Type)
				if len(f.enum) > 0 {
					typ = "`" + strings.Join(f.enum, "` \\| `") + "`"
				}
				fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", f.key, typ, req, def, strings.ReplaceAll(f.doc, "|", "\\|"))
				if et := structElem(f.sf.Type); et != nil && !seen[et] && et != reflect.TypeFor[Task]() {
					seen[et] = true
					queue = append(queue, func() { walk(et.Name()+" (`"+f.key+"`)", et) })
				}
			}
		}
		b.WriteString("\n")
	}
	walk("Pipeline (top level)", reflect.TypeFor[Pipeline]())
	for len(queue) > 0 {
		next := queue[0]
		queue = queue[1:]
		next()
	}
	task := reflect.TypeFor[Task]()
	walk("Task (fields of every type)", task)
	for i := range task.NumField() {
		sf := task.Field(i)
		if v := sf.Tag.Get("variant"); v != "" {
			walk("Task of type `"+v+"` (plus `name`, `type`, `timeout`)", sf.Type.Elem())
		}
	}
	return b.String()
}

// structElem returns the struct type a field holds (directly, by pointer or in a list).
func structElem(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct && t != durationType {
		return t
	}
	return nil
}

func typeName(t reflect.Type) string {
	if t == durationType {
		return "duration"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return typeName(t.Elem())
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int32, reflect.Int64:
		return "int"
	case reflect.Slice:
		return "list of " + typeName(t.Elem())
	case reflect.Map:
		if t.Elem().Kind() == reflect.Interface {
			return "mapping (any YAML)"
		}
		return "mapping of " + typeName(t.Elem())
	case reflect.Struct:
		return t.Name()
	}
	return t.String()
}
