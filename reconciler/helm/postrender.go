package helm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/slipwayhq/slipway/reconciler/apply"
)

// Helm's ownership metadata: Helm puts it on every object it creates or updates, but not
// into the release manifest it stores.
const (
	managedByLabel          = "app.kubernetes.io/managed-by"
	managedByHelm           = "Helm"
	releaseNameAnnotation   = "meta.helm.sh/release-name"
	releaseNamespaceAnnoKey = "meta.helm.sh/release-namespace"
)

// ownerRenderer is a Helm post-renderer that stamps every object of the release (hooks are
// not post-rendered) with Slipway's owner label and annotation and Helm's own ownership
// metadata. The owner label lets the drift watcher select the release's objects with the same label
// selector as YAML deploys'; Helm's metadata in the manifest makes the stored manifest
// exactly what is on the cluster, so a drift correction that recreates an object leaves it
// adoptable by the next `helm upgrade`.
type ownerRenderer struct {
	labels      map[string]string
	annotations map[string]string
}

func newOwnerRenderer(owner apply.Owner, release, namespace string) *ownerRenderer {
	labels := owner.Labels()
	labels[managedByLabel] = managedByHelm
	annotations := owner.Annotations()
	annotations[releaseNameAnnotation] = release
	annotations[releaseNamespaceAnnoKey] = namespace
	return &ownerRenderer{labels: labels, annotations: annotations}
}

// Run implements postrender.PostRenderer. Helm hands over "---\n# Source: FILE\n<one
// document>\n" per object; the "# Source" comments are kept for `helm get manifest`.
func (p *ownerRenderer) Run(in *bytes.Buffer) (*bytes.Buffer, error) {
	out := new(bytes.Buffer)
	for i, doc := range splitDocuments(in.String()) {
		comments, body := leadingComments(doc)
		if strings.TrimSpace(body) == "" {
			if strings.TrimSpace(doc) != "" {
				out.WriteString("---\n" + doc)
			}
			continue
		}
		stamped, err := p.stamp([]byte(body))
		if err != nil {
			return nil, fmt.Errorf("post-render document %d%s: %w", i+1, sourceOf(comments), err)
		}
		out.WriteString("---\n" + comments)
		out.Write(stamped)
	}
	return out, nil
}

// stamp adds the labels and annotations to one object (or to each item of a List).
// Numbers go through json.Number so that no integer is rounded on the way.
func (p *ownerRenderer) stamp(doc []byte) ([]byte, error) {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("not an object: %w", err)
	}
	if obj == nil {
		return doc, nil
	}
	p.stampObject(obj)
	if kind, _ := obj["kind"].(string); strings.HasSuffix(kind, "List") {
		if items, ok := obj["items"].([]any); ok {
			for _, it := range items {
				if m, ok := it.(map[string]any); ok {
					p.stampObject(m)
				}
			}
		}
	}
	j, err = json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(j)
}

func (p *ownerRenderer) stampObject(obj map[string]any) {
	meta, _ := obj["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		obj["metadata"] = meta
	}
	merge := func(field string, add map[string]string) {
		m, _ := meta[field].(map[string]any)
		if m == nil {
			m = map[string]any{}
			meta[field] = m
		}
		for k, v := range add {
			m[k] = v
		}
	}
	merge("labels", p.labels)
	merge("annotations", p.annotations)
}

// splitDocuments splits a YAML stream at its "---" separator lines.
func splitDocuments(s string) []string {
	var docs []string
	var cur strings.Builder
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimRight(line, " \t") == "---" {
			docs = append(docs, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteString(line + "\n")
	}
	docs = append(docs, cur.String())
	return docs
}

// leadingComments separates the comment and blank lines that open a document from the rest.
func leadingComments(doc string) (string, string) {
	i := 0
	for i < len(doc) {
		end := strings.IndexByte(doc[i:], '\n')
		if end < 0 {
			end = len(doc) - i
		} else {
			end++
		}
		line := strings.TrimSpace(doc[i : i+end])
		if line != "" && !strings.HasPrefix(line, "#") {
			break
		}
		i += end
	}
	return doc[:i], doc[i:]
}

func sourceOf(comments string) string {
	for _, l := range strings.Split(comments, "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(l), "# Source: "); ok {
			return " (" + s + ")"
		}
	}
	return ""
}
