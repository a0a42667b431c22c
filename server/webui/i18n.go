package webui

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// languages are the UI's languages, the first the default.
func languages() []string { return []string{"en", "zh"} }

// catalog holds the labels of every language, read once from the embedded i18n files.
type catalog map[string]map[string]string

func loadCatalog(files fs.FS) (catalog, error) {
	c := catalog{}
	for _, lang := range languages() {
		b, err := fs.ReadFile(files, "i18n/"+lang+".json")
		if err != nil {
			return nil, err
		}
		m := map[string]string{}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("i18n/%s.json: %w", lang, err)
		}
		c[lang] = m
	}
	// Every label in every language: a missing one would show its key.
	for key := range c["en"] {
		for _, lang := range languages()[1:] {
			if _, ok := c[lang][key]; !ok {
				return nil, fmt.Errorf("i18n/%s.json lacks %q", lang, key)
			}
		}
	}
	return c, nil
}

// label returns the label of key in lang; an unknown key shows as itself so a typo is seen.
func (c catalog) label(lang, key string) string {
	if s, ok := c[lang][key]; ok {
		return s
	}
	return key
}

// language picks the page's language: the lang cookie the switch sets, else the best of
// Accept-Language, else English.
func language(r *http.Request) string {
	if ck, err := r.Cookie(langCookie); err == nil && known(ck.Value) {
		return ck.Value
	}
	best, bestQ := languages()[0], -1.0
	for _, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		base, _, _ := strings.Cut(strings.ToLower(tag), "-")
		if known(base) && q > bestQ {
			best, bestQ = base, q
		}
	}
	return best
}

func known(lang string) bool {
	return slices.Contains(languages(), lang)
}
