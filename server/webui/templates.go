package webui

import (
	"html/template"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/slipwayhq/slipway/store"
)

// parsePages parses each page template with the layout it fills.
func parsePages(files fs.FS) (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"short": func(commit string) string {
			if len(commit) > 12 {
				return commit[:12]
			}
			return commit
		},
		"when": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04:05Z")
		},
		"runPath": runPath,
		"runLink": func(repository, pipeline string, id int64) string {
			return runPath(store.PipelineRef{Repository: repository, Name: pipeline}, id)
		},
		"pipeLink": func(repository, pipeline string) string { return Prefix + "p/" + repository + "/" + pipeline },
		"secs":     seconds,
		"pipePath": func(ref store.PipelineRef) string {
			return Prefix + "p/" + ref.Repository + "/" + ref.Name
		},
		// status is the CSS class of a status: ok, bad, live, wait or off.
		"status": func(s string) string {
			switch s {
			case "succeeded", "healthy", "applied", "corrected", "in-sync":
				return "ok"
			case "failed", "timed_out", "approval_timed_out", "interrupted", "reported", "correction-failed", "unhealthy", "drifted":
				return "bad"
			case "running", "queued":
				return "live"
			case "awaiting_approval", "awaiting_window", "pending":
				return "wait"
			}
			return "off"
		},
		"join": strings.Join,
	}
	layout, err := template.New("layout").Funcs(funcs).ParseFS(files, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, name := range names {
		base := strings.TrimSuffix(path.Base(name), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(files, name)
		if err != nil {
			return nil, err
		}
		pages[base] = t
	}
	return pages, nil
}
