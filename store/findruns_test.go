package store

import (
	"context"
	"testing"
	"time"
)

func TestFindRunsFiltersAndPages(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	st, _ := openTest(t, WithClock(clock))
	web := PipelineRef{Repository: "shop", Name: "web"}
	api := PipelineRef{Repository: "shop", Name: "api"}
	blog := PipelineRef{Repository: "blog", Name: "site"}
	// 7 runs: web push ×3, api cron ×2, blog manual ×2, one minute apart.
	for i, p := range []struct {
		ref PipelineRef
		tr  Trigger
	}{{web, TriggerPush}, {api, TriggerCron}, {blog, TriggerManual}, {web, TriggerPush}, {api, TriggerCron}, {web, TriggerPush}, {blog, TriggerManual}} {
		now = now.Add(time.Minute)
		r, err := st.CreateRun(ctx, NewRun{Pipeline: p.ref, Commit: "c", Trigger: p.tr, Holder: "h"})
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if _, err := st.TransitionRun(ctx, p.ref, r.BuildID, RunQueued, RunFailed, "boom"); err != nil {
				t.Fatal(err)
			}
		}
	}
	names := func(p RunPage) []string {
		var out []string
		for _, r := range p.Runs {
			out = append(out, r.Pipeline.Name+"#"+string(rune('0'+r.BuildID)))
		}
		return out
	}
	check := func(name string, f RunFilter, want ...string) RunPage {
		t.Helper()
		p, err := st.FindRuns(ctx, f)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := names(p); !equal(got, want) {
			t.Fatalf("%s: got %v, want %v", name, got, want)
		}
		return p
	}
	check("all", RunFilter{}, "site#2", "web#3", "api#2", "web#2", "site#1", "api#1", "web#1")
	check("pipeline", RunFilter{Repository: "shop", Pipeline: "web"}, "web#3", "web#2", "web#1")
	check("repository", RunFilter{Repository: "shop", Triggers: []Trigger{TriggerCron}}, "api#2", "api#1")
	check("status", RunFilter{Statuses: []RunStatus{RunFailed}}, "site#2", "api#2", "site#1", "web#1")
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	check("time", RunFilter{Since: start.Add(3 * time.Minute), Until: start.Add(5 * time.Minute)}, "web#2", "site#1")

	p := check("page 1", RunFilter{Limit: 3}, "site#2", "web#3", "api#2")
	if p.Next == "" {
		t.Fatal("a first page of 3 of 7 has no next")
	}
	p = check("page 2", RunFilter{Limit: 3, After: p.Next}, "web#2", "site#1", "api#1")
	p = check("page 3", RunFilter{Limit: 3, After: p.Next}, "web#1")
	if p.Next != "" {
		t.Fatalf("the last page has a next: %q", p.Next)
	}
	for _, bad := range []RunFilter{{Pipeline: "web"}, {Statuses: []RunStatus{"done"}}, {Triggers: []Trigger{"pr"}}, {After: "x"}} {
		if _, err := st.FindRuns(ctx, bad); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
