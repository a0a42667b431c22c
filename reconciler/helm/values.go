package helm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/slipwayhq/slipway/render"
)

// SubstituteValues returns a copy of values with ${...} substituted in every string, keys
// excepted; path names the field in errors (values.image.tag).
func SubstituteValues(values map[string]any, vars render.Vars, path string) (map[string]any, error) {
	out, err := substituteValue(values, vars, path)
	if err != nil {
		return nil, err
	}
	m, _ := out.(map[string]any)
	return m, nil
}

func substituteValue(v any, vars render.Vars, path string) (any, error) {
	switch x := v.(type) {
	case string:
		s, err := render.Substitute(x, vars)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return s, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			s, err := substituteValue(e, vars, path+"."+k)
			if err != nil {
				return nil, err
			}
			out[k] = s
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			s, err := substituteValue(e, vars, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out[i] = s
		}
		return out, nil
	}
	return v, nil
}

// MergeValues merges src into dst the way helm merges -f files: maps deeply, anything else
// (lists included) replaced.
func MergeValues(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				MergeValues(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// ValuesDigest identifies final values: encoding/json sorts map keys, so equal values give
// equal digests whatever order they were written in.
func ValuesDigest(values map[string]any) (string, error) {
	b, err := json.Marshal(values)
	if err != nil {
		return "", fmt.Errorf("values digest: %w", err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}
