package forge

import (
	"errors"
	"net/http"
	"reflect"
	"testing"
)

// glProject is grp/sub/app as GitLab's API addresses it: one escaped path segment.
const glProject = "/api/v4/projects/grp%2Fsub%2Fapp"

func newTestGitLab(t *testing.T, routes map[string]answer) (*GitLab, *fakeForge) {
	t.Helper()
	f := newFakeForge(t, routes)
	g, err := NewGitLab(f.srv.URL, Project{Owner: "grp/sub", Name: "app"}, "gl-token", fastRetries())
	if err != nil {
		t.Fatal(err)
	}
	return g, f
}

func TestGitLabMergeRequestsApprovalsAndGroups(t *testing.T) {
	byCommit := "GET " + glProject + "/repository/commits/" + headA1 + "/merge_requests"
	g, f := newTestGitLab(t, map[string]answer{
		byCommit: failFirst(1, http.StatusTooManyRequests, map[string]string{"Retry-After": "0", "RateLimit-Remaining": "0"},
			fixture(t, "gitlab/mrs.json", 200)),
		"GET " + glProject + "/merge_requests/5":           failFirst(2, http.StatusInternalServerError, nil, fixture(t, "gitlab/mr.json", 200)),
		"GET " + glProject + "/merge_requests/5/approvals": fixture(t, "gitlab/approvals.json", 200),
		"GET /api/v4/groups/grp%2Fsub%2Fsre/members/all":   fixture(t, "gitlab/members.json", 200),
		"GET /api/v4/groups/other%2Fops/members/all":       fixture(t, "gitlab/members.json", 200),
	})
	ctx := t.Context()
	got, err := g.PullRequestsForCommit(ctx, headA1)
	if err != nil {
		t.Fatal(err)
	}
	want := []PullRequest{{Number: 5, Author: "alice", HeadSHA: headA1, BaseBranch: "main",
		MergeCommitSHA: "s1s1s1s1s1s1s1s1s1s1s1s1s1s1s1s1s1s1s1s1", Merged: true, State: PRClosed,
		URL: "https://gitlab.example.com/grp/sub/app/-/merge_requests/5"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("merge requests of a squash-merged commit:\n got %+v\nwant %+v", got, want)
	}
	if n := f.hitCount(byCommit); n != 2 {
		t.Errorf("the 429 was tried %d times in all, want 2", n)
	}

	reviews, err := g.Reviews(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Review{{Reviewer: "bob", State: ReviewApproved, CommitSHA: headA1}}; !reflect.DeepEqual(reviews, want) {
		t.Fatalf("approvals %+v, want %+v", reviews, want)
	}
	if n := f.hitCount("GET " + glProject + "/merge_requests/5"); n != 3 {
		t.Errorf("two 500s and a success took %d requests, want 3", n)
	}

	for _, team := range []string{"sre", "team:sre", "other/ops"} {
		members, err := g.TeamMembers(ctx, team)
		if err != nil || !reflect.DeepEqual(members, []string{"bob", "dave"}) {
			t.Fatalf("team %s: %v, %v", team, members, err)
		}
	}
	for _, a := range f.auth {
		if a != "" {
			t.Fatalf("GitLab's token travels in PRIVATE-TOKEN, but Authorization was %q", a)
		}
	}
}

func TestGitLabNotesAndStatuses(t *testing.T) {
	notes := "GET " + glProject + "/merge_requests/5/notes"
	update := "PUT " + glProject + "/merge_requests/5/notes/22"
	create := "POST " + glProject + "/merge_requests/5/notes"
	set := "POST " + glProject + "/statuses/" + headA1
	g, f := newTestGitLab(t, map[string]answer{
		"GET /api/v4/user": fixture(t, "gitlab/user.json", 200),
		notes:              fixture(t, "gitlab/notes.json", 200),
		update:             fixture(t, "gitlab/note.json", 200),
		create:             fixture(t, "gitlab/note.json", 201),
		set:                failFirst(1, http.StatusBadGateway, nil, fixture(t, "gitlab/status.json", 201)),
		"GET " + glProject + "/repository/commits/" + headA1 + "/statuses": fixture(t, "gitlab/statuses.json", 200),
	})
	ctx := t.Context()
	if id, err := g.UpsertComment(ctx, 5, "preview", "fresh"); err != nil || id != 22 {
		t.Fatalf("upsert: %d, %v; want the bot's note 22 edited", id, err)
	}
	if b := f.received(update); len(b) != 1 || b[0]["body"] != "<!-- slipway:preview -->\nfresh" {
		t.Fatalf("update bodies %v", b)
	}
	if id, err := g.UpsertComment(ctx, 5, "other", "new"); err != nil || id != 23 || f.hitCount(create) != 1 {
		t.Fatalf("upsert of a new key: %d, %v", id, err)
	}

	if err := g.SetStatus(ctx, headA1, Status{Context: "slipway/web", State: StatusError, Description: "BUILD_ID 4 cancelled"}); err != nil {
		t.Fatal(err)
	}
	sent := f.received(set)
	if len(sent) != 2 || sent[1]["state"] != "canceled" || sent[1]["name"] != "slipway/web" {
		t.Fatalf("status bodies %v, want a 502 then canceled for slipway/web", sent)
	}
	ss, err := g.Statuses(ctx, headA1)
	if err != nil {
		t.Fatal(err)
	}
	want := []Status{{Context: "slipway/web", State: StatusFailure, Description: "BUILD_ID 3 failed"}, {Context: "ci/build", State: StatusPending}}
	if !reflect.DeepEqual(ss, want) {
		t.Fatalf("statuses %+v", ss)
	}
}

func TestGitLabSameStateTwiceIsDone(t *testing.T) {
	set := "POST " + glProject + "/statuses/" + headA1
	g, _ := newTestGitLab(t, map[string]answer{
		set: func(w http.ResponseWriter, _ *http.Request, _ int) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"message":"Cannot transition status via :enqueue from :pending (Reasons: )"}`))
		},
	})
	if err := g.SetStatus(t.Context(), headA1, Status{Context: "slipway/web", State: StatusPending}); err != nil {
		t.Fatalf("pending twice: %v", err)
	}
}

func TestGitLabErrorsAreTyped(t *testing.T) {
	key := "GET " + glProject + "/merge_requests/5"
	g, f := newTestGitLab(t, map[string]answer{key: always(http.StatusServiceUnavailable, nil)})
	_, err := g.PullRequest(t.Context(), 5)
	var fe *Error
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &fe) || fe.Attempts != 3 || f.hitCount(key) != 3 {
		t.Fatalf("error %v after %d requests, want ErrUnavailable after 3", err, f.hitCount(key))
	}
	g, _ = newTestGitLab(t, map[string]answer{key: always(http.StatusForbidden, nil)})
	if _, err := g.PullRequest(t.Context(), 5); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("403 without rate-limit headers: %v, want ErrUnauthorized", err)
	}
}
