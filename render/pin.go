package render

import (
	"bytes"
	"errors"
	"io"
	"sort"

	"go.yaml.in/yaml/v3"
)

// PinImages rewrites every `image:` field whose value is a key of pins (repo:tag) to the
// pinned reference (repo:tag@digest), wherever it sits in an object (Pods, workload
// templates, CronJobs, custom resources). It returns how many fields it rewrote.
func PinImages(ms []Manifest, pins map[string]string) int {
	if len(pins) == 0 {
		return 0
	}
	n := 0
	for _, m := range ms {
		n += pinIn(m.Object.Object, pins)
	}
	return n
}

func pinIn(v any, pins map[string]string) int {
	n := 0
	switch t := v.(type) {
	case map[string]any:
		for k, child := range t {
			if s, ok := child.(string); ok && k == "image" {
				if pinned, ok := pins[s]; ok {
					t[k] = pinned
					n++
				}
				continue
			}
			n += pinIn(child, pins)
		}
	case []any:
		for _, child := range t {
			n += pinIn(child, pins)
		}
	}
	return n
}

// Images lists every `image:` value in objects (a stream of YAML or JSON documents, as a
// revision stores them), sorted and without repeats: what a deploy runs.
func Images(objects []byte) ([]string, error) {
	seen := map[string]bool{}
	dec := yaml.NewDecoder(bytes.NewReader(objects))
	for {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		collectImages(doc, seen)
	}
	out := make([]string, 0, len(seen))
	for img := range seen {
		out = append(out, img)
	}
	sort.Strings(out)
	return out, nil
}

func collectImages(v any, seen map[string]bool) {
	switch t := v.(type) {
	case map[string]any:
		for k, child := range t {
			if s, ok := child.(string); ok && k == "image" && s != "" {
				seen[s] = true
				continue
			}
			collectImages(child, seen)
		}
	case []any:
		for _, child := range t {
			collectImages(child, seen)
		}
	}
}
