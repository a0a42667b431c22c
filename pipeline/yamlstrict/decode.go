package yamlstrict

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/slipwayhq/slipway/pipeline/diag"
)

// maxNodes bounds the work one document may cause through aliases ("billion laughs").
const maxNodes = 100_000

// Loc is where a field's key and value are written.
type Loc struct {
	Key   diag.Pos
	Value diag.Pos
}

// Positions maps a field path (stages[0].tasks[1].image) to where it was written.
type Positions map[string]Loc

// Of returns the position of the value at path or, when the field was not written (a missing
// field, a default), of the nearest enclosing field that was, so every error has a place.
func (p Positions) Of(path string) diag.Pos { return of(p.find, path) }

// KeyOf returns the position of the key of path, or Of(path) when it has no key (list items).
func (p Positions) KeyOf(path string) diag.Pos { return keyOf(p.find, path) }

func (p Positions) find(path string) (Loc, bool) {
	l, ok := p[path]
	return l, ok
}

// Parent strips the last segment of a path: a.b[2] → a.b, a.b → a.
func Parent(path string) (string, bool) {
	if path == "" {
		return "", false
	}
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return "", true
	}
	return path[:i], true
}

// Join appends a key to a path.
func Join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Index appends a list index to a path.
func Index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// FieldHinter lets a struct explain why a key is unknown (for example, that a secret must
// be given as a file) instead of only listing near misses.
type FieldHinter interface {
	FieldHint(key string) string
}

// Decode decodes the document root n into out, a pointer to a struct, and returns where
// every field was written. Problems are reported to r; decoding continues past them.
func Decode(r diag.Reporter, n *yaml.Node, out any) Positions {
	return DecodeShared(r, n, out, nil)
}

// Strings makes the equal strings decoded from one file one string: the YAML parser makes
// a string of every scalar, and the thousand pipelines of a monorepo's file repeat their
// cluster, task type and stage names. It is only needed while decoding.
type Strings map[string]string

// DecodeShared is Decode keeping one copy of equal strings in strs (nil: every string its
// own).
func DecodeShared(r diag.Reporter, n *yaml.Node, out any, strs Strings) Positions {
	d := &decoder{r: r, pos: Positions{}, strs: strs}
	v := reflect.ValueOf(out)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		panic("yamlstrict.Decode: out must be a pointer to a struct")
	}
	d.pos[""] = Loc{Value: pos(n)}
	d.value(n, "", v.Elem())
	return d.pos
}

type decoder struct {
	r     diag.Reporter
	pos   Positions
	strs  Strings
	nodes int
	stop  bool // the alias budget ran out; the rest is skipped
}

var (
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	anyType         = reflect.TypeFor[any]()
)

func (d *decoder) deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	d.nodes++
	if d.nodes > maxNodes && !d.stop {
		d.stop = true
		d.r.At(pos(n), "", "document too large: more than %d values after expanding aliases", maxNodes)
	}
	return n
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.r.At(pos(n), path, format, args...)
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// value decodes n into v, which must be settable. It returns false when n itself has the
// wrong type (problems further down do not count), so callers can forget where a value that
// was never set was written and later checks do not pile onto the same mistake.
func (d *decoder) value(n *yaml.Node, path string, v reflect.Value) bool {
	if d.stop {
		return false
	}
	n = d.deref(n)
	t := v.Type()

	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		return d.text(n, path, v)
	}
	switch t.Kind() {
	case reflect.Pointer:
		if isNull(n) && t.Elem().Kind() != reflect.Struct {
			d.errorf(n, path, "%s: expected %s, got null", name(path), describeType(t.Elem()))
			return false
		}
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		return d.value(n, path, v.Elem())
	case reflect.Struct:
		if isNull(n) {
			// "push:" with nothing under it means "push, with defaults".
			applyDefaults(field{v: v})
			return true
		}
		if n.Kind != yaml.MappingNode {
			if path == "" {
				d.errorf(n, path, "expected a mapping of fields, got %s", describeNode(n))
			} else {
				d.errorf(n, path, "%s: expected a mapping, got %s", name(path), describeNode(n))
			}
			return false
		}
		d.structFields(n, path, v)
		return true
	case reflect.Map:
		return d.mapping(n, path, v)
	case reflect.Slice:
		return d.sequence(n, path, v)
	case reflect.Interface:
		if t != anyType {
			panic("yamlstrict: only interface{} is supported, not " + t.String())
		}
		x, ok := d.anyValue(n, path)
		if ok && x != nil {
			v.Set(reflect.ValueOf(x))
		}
		return ok
	default:
		return d.scalar(n, path, v)
	}
}

func (d *decoder) text(n *yaml.Node, path string, v reflect.Value) bool {
	tag := n.ShortTag()
	if n.Kind != yaml.ScalarNode || (tag != "!!str" && tag != "!!int") {
		d.errorf(n, path, "%s: expected %s, got %s", name(path), describeType(v.Type()), describeNode(n))
		return false
	}
	if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
		d.errorf(n, path, "%s: %v", name(path), err)
		return false
	}
	return true
}

func (d *decoder) scalar(n *yaml.Node, path string, v reflect.Value) bool {
	want := describeType(v.Type())
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "%s: expected %s, got %s", name(path), want, describeNode(n))
		return false
	}
	tag := n.ShortTag()
	switch v.Kind() {
	case reflect.String:
		switch tag {
		case "!!str", "!!int", "!!float", "!!timestamp":
			// Numbers and dates keep their text as written: "tag: 1.10" stays "1.10".
			v.SetString(d.str(n.Value))
		default:
			d.errorf(n, path, "%s: expected %s, got %s", name(path), want, describeNode(n))
			return false
		}
	case reflect.Bool:
		var b bool
		if tag != "!!bool" || n.Decode(&b) != nil {
			d.errorf(n, path, "%s: expected %s, got %s", name(path), want, describeNode(n))
			return false
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int32, reflect.Int64:
		var i int64
		if tag != "!!int" || n.Decode(&i) != nil || v.OverflowInt(i) {
			d.errorf(n, path, "%s: expected %s, got %s", name(path), want, describeNode(n))
			return false
		}
		v.SetInt(i)
	default:
		panic("yamlstrict: unsupported field type " + v.Type().String())
	}
	return true
}

func (d *decoder) sequence(n *yaml.Node, path string, v reflect.Value) bool {
	if isNull(n) {
		return true // every item commented out
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "%s: expected a list, got %s", name(path), describeNode(n))
		return false
	}
	// Non-nil even when empty: validation tells "stages: []" from a stages that failed to decode.
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		p := Index(path, i)
		d.pos[p] = Loc{Value: pos(d.peek(item))}
		if !d.value(item, p, s.Index(i)) {
			delete(d.pos, p)
		}
	}
	v.Set(s)
	return true
}

func (d *decoder) mapping(n *yaml.Node, path string, v reflect.Value) bool {
	if isNull(n) {
		return true
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "%s: expected a mapping, got %s", name(path), describeNode(n))
		return false
	}
	if v.Type().Key().Kind() != reflect.String {
		panic("yamlstrict: map keys must be strings")
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key, ok := d.key(k, path)
		if !ok {
			continue
		}
		p := Join(path, key)
		d.pos[p] = Loc{Key: pos(k), Value: pos(d.peek(val))}
		elem := reflect.New(v.Type().Elem()).Elem()
		if !d.value(val, p, elem) {
			delete(d.pos, p)
		}
		m.SetMapIndex(reflect.ValueOf(d.str(key)).Convert(v.Type().Key()), elem)
	}
	v.Set(m)
	return true
}

// str is s, or the equal string decoded before.
func (d *decoder) str(s string) string {
	if d.strs == nil {
		return s
	}
	if c, ok := d.strs[s]; ok {
		return c
	}
	d.strs[s] = s
	return s
}

// peek follows aliases without counting: the position of an aliased value is its anchor's.
func (d *decoder) peek(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func (d *decoder) key(k *yaml.Node, path string) (string, bool) {
	k = d.peek(k)
	if k.Kind != yaml.ScalarNode {
		d.errorf(k, path, "mapping keys must be strings, got %s", describeNode(k))
		return "", false
	}
	if k.ShortTag() == "!!merge" {
		d.errorf(k, path, "merge keys (<<) are not supported; write the fields out")
		return "", false
	}
	return k.Value, true
}

// anyValue decodes free-form YAML (chart values) into map[string]any, []any and scalars.
func (d *decoder) anyValue(n *yaml.Node, path string) (any, bool) {
	if d.stop {
		return nil, false
	}
	n = d.deref(n)
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, ok := d.key(n.Content[i], path)
			if !ok {
				continue
			}
			p := Join(path, key)
			d.pos[p] = Loc{Key: pos(n.Content[i]), Value: pos(d.peek(n.Content[i+1]))}
			if x, ok := d.anyValue(n.Content[i+1], p); ok {
				m[d.str(key)] = x
			}
		}
		return m, true
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for i, item := range n.Content {
			p := Index(path, i)
			d.pos[p] = Loc{Value: pos(item)}
			if x, ok := d.anyValue(item, p); ok {
				s = append(s, x)
			}
		}
		return s, true
	case yaml.ScalarNode:
		var x any
		if err := n.Decode(&x); err != nil {
			d.errorf(n, path, "%s: %v", name(path), strings.TrimPrefix(err.Error(), "yaml: "))
			return nil, false
		}
		return x, true
	default:
		d.errorf(n, path, "%s: unsupported YAML node", name(path))
		return nil, false
	}
}

// field is one settable struct field with its tags.
type field struct {
	key      string
	v        reflect.Value
	required bool
	enum     []string
	def      string // the default:"..." tag, applied when the key is absent
}

// structFields decodes a mapping into the struct v, including the variant selected by its
// discriminator field if it has one.
func (d *decoder) structFields(n *yaml.Node, path string, v reflect.Value) {
	fields, variant := d.collect(n, v)
	present := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key, ok := d.key(k, path)
		if !ok {
			continue
		}
		p := Join(path, key)
		f, known := fields[key]
		if !known {
			if variant == unknownVariant {
				continue // the type itself is wrong and already reported; its fields are moot
			}
			d.unknown(k, path, key, v, fields, variant)
			continue
		}
		present[key] = true
		d.pos[p] = Loc{Key: pos(k), Value: pos(d.peek(val))}
		if !d.value(val, p, f.v) {
			delete(d.pos, p)
			continue
		}
		if len(f.enum) > 0 && f.v.Kind() == reflect.String {
			d.checkEnum(d.peek(val), p, f)
		}
	}
	keys := make([]string, 0, len(fields))
	for _, f := range fields {
		if f.required && !present[f.key] {
			keys = append(keys, f.key)
		}
		if !present[f.key] {
			applyDefaults(f)
		}
	}
	sortStrings(keys)
	for _, k := range keys {
		if variant != "" && variant != unknownVariant {
			d.errorf(n, Join(path, k), "missing required field %q for type %s", k, variant)
		} else {
			d.errorf(n, Join(path, k), "missing required field %q", k)
		}
	}
}

func (d *decoder) checkEnum(n *yaml.Node, path string, f field) {
	s := f.v.String()
	if s == "" && n.Kind != yaml.ScalarNode {
		return // already reported as a type error
	}
	for _, e := range f.enum {
		if s == e {
			return
		}
	}
	msg := fmt.Sprintf("%s: %q is not one of %s", name(path), s, strings.Join(f.enum, ", "))
	delete(d.pos, path)
	if near := Suggest(s, f.enum); near != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", near)
	}
	d.r.At(pos(n), path, "%s", msg)
	f.v.SetString("")
}

// unknownVariant marks a struct whose discriminator named no known variant.
const unknownVariant = "\x00unknown"

// collect lists the fields of v that this mapping may set. For a tagged union it reads the
// discriminator first and allocates the chosen variant.
func (d *decoder) collect(n *yaml.Node, v reflect.Value) (map[string]field, string) {
	fields := map[string]field{}
	var discKey string
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		key, inline := yamlKey(sf)
		if key == "-" {
			continue
		}
		if sf.Tag.Get("discriminator") == "true" {
			discKey = key
		}
		if sf.Tag.Get("variant") != "" {
			continue
		}
		if inline {
			panic("yamlstrict: inline fields must carry a variant tag")
		}
		fields[key] = newField(key, sf, v.Field(i))
	}
	if discKey == "" {
		return fields, ""
	}
	// The discriminator value decides which inline struct's fields are allowed.
	var kind string
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := d.peek(n.Content[i]); k.Kind == yaml.ScalarNode && k.Value == discKey {
			if val := d.peek(n.Content[i+1]); val.Kind == yaml.ScalarNode {
				kind = val.Value
			}
		}
	}
	if kind == "" {
		// The missing or mistyped discriminator is reported on its own; listing every other
		// field as unknown would bury it.
		return fields, unknownVariant
	}
	for i := range t.NumField() {
		sf := t.Field(i)
		if sf.Tag.Get("variant") != kind {
			continue
		}
		fv := v.Field(i)
		if fv.Kind() != reflect.Pointer || fv.Type().Elem().Kind() != reflect.Struct {
			panic("yamlstrict: variant fields must be pointers to structs")
		}
		fv.Set(reflect.New(fv.Type().Elem()))
		vt := fv.Type().Elem()
		for j := range vt.NumField() {
			vf := vt.Field(j)
			if !vf.IsExported() {
				continue
			}
			key, _ := yamlKey(vf)
			if key == "-" {
				continue
			}
			fields[key] = newField(key, vf, fv.Elem().Field(j))
		}
		return fields, kind
	}
	return fields, unknownVariant
}

func newField(key string, sf reflect.StructField, v reflect.Value) field {
	f := field{key: key, v: v, required: sf.Tag.Get("required") == "true", def: sf.Tag.Get("default")}
	if e := sf.Tag.Get("enum"); e != "" {
		f.enum = strings.Split(e, ",")
	}
	return f
}

func (d *decoder) unknown(k *yaml.Node, path, key string, v reflect.Value, fields map[string]field, variant string) {
	p := Join(path, key)
	if h, ok := v.Addr().Interface().(FieldHinter); ok {
		if hint := h.FieldHint(key); hint != "" {
			d.errorf(k, p, "unknown field %q: %s", key, hint)
			return
		}
	}
	known := make([]string, 0, len(fields))
	for k := range fields {
		known = append(known, k)
	}
	msg := fmt.Sprintf("unknown field %q", key)
	if variant != "" {
		msg += " for type " + variant
	}
	if near := Suggest(key, known); near != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", near)
	}
	d.errorf(k, p, "%s", msg)
}

// yamlKey returns the key a struct field is written as and whether it is inline.
func yamlKey(sf reflect.StructField) (string, bool) {
	tag := sf.Tag.Get("yaml")
	key, opts, _ := strings.Cut(tag, ",")
	inline := strings.Contains(","+opts+",", ",inline,")
	if key == "" && !inline {
		key = strings.ToLower(sf.Name[:1]) + sf.Name[1:]
	}
	return key, inline
}

// YAMLKey is yamlKey for schema generators.
func YAMLKey(sf reflect.StructField) (key string, inline bool) { return yamlKey(sf) }

func name(path string) string {
	i := strings.LastIndexAny(path, ".")
	if i < 0 {
		return path
	}
	return path[i+1:]
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean (" + n.Value + ")"
		case "!!int":
			return "an integer (" + n.Value + ")"
		case "!!float":
			return "a number (" + n.Value + ")"
		default:
			return fmt.Sprintf("%q", n.Value)
		}
	default:
		return "an unsupported YAML node"
	}
}

func describeType(t reflect.Type) string {
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		if d, ok := reflect.New(t).Interface().(interface{ Describe() string }); ok {
			return d.Describe()
		}
		return "a string"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean (true or false)"
	case reflect.Int, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	default:
		return t.String()
	}
}

// applyDefaults fills an absent field from its default tag or, for a nested struct written
// without a pointer (always there), fills that struct's own defaults.
func applyDefaults(f field) {
	if f.def != "" {
		setDefault(f)
		return
	}
	if f.v.Kind() != reflect.Struct || reflect.PointerTo(f.v.Type()).Implements(textUnmarshaler) {
		return
	}
	t := f.v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if key, _ := yamlKey(sf); sf.IsExported() && key != "-" && sf.Tag.Get("variant") == "" {
			applyDefaults(newField(key, sf, f.v.Field(i)))
		}
	}
}

// setDefault decodes a default:"..." tag into an absent field, so the documented default and
// the applied one cannot differ. A default that does not decode is a bug in the types.
// Defaults are plain scalars, decoded as a plain scalar node: parsing each one as a YAML
// document took half of what loading a small pipeline file allocates.
func setDefault(f field) {
	n := &yaml.Node{Kind: yaml.ScalarNode, Value: f.def}
	var errs diag.List
	d := &decoder{r: diag.Reporter{List: &errs}, pos: Positions{}}
	d.value(n, f.key, f.v)
	if len(errs) > 0 {
		panic(fmt.Sprintf("yamlstrict: bad default %q for %s: %v", f.def, f.key, errs))
	}
}
