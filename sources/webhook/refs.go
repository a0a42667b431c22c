package webhook

import (
	"slices"
	"strings"
)

// Ref prefixes; anything else (notes, pull request refs) is not an event Slipway uses.
const (
	branchPrefix = "refs/heads/"
	tagPrefix    = "refs/tags/"
)

// isZero reports an all-zeros object id, which forges send for "no commit" (SHA-1 or
// SHA-256 repositories).
func isZero(sha string) bool {
	return sha != "" && strings.Trim(sha, "0") == ""
}

// isSHA reports a full hex object id, SHA-1 (40) or SHA-256 (64).
func isSHA(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// refUpdate is the part of a push every forge sends, before it is normalised.
type refUpdate struct {
	provider, event string
	ref             string
	before, after   string
	// headID and message describe the head commit when the payload carries it.
	headID, message string
	// paths is the union of changed paths, or nil when unknown.
	paths []string
}

// toEvent turns a ref update into a branch push or a tag event.
func (u refUpdate) toEvent() (*Event, error) {
	if u.before != "" && !isSHA(u.before) {
		return nil, badPayload(u.provider, u.event, nil, "before is not a commit id")
	}
	if !isSHA(u.after) {
		return nil, badPayload(u.provider, u.event, nil, "after is not a commit id")
	}
	deleted := isZero(u.after)
	if name, ok := strings.CutPrefix(u.ref, tagPrefix); ok && name != "" {
		commit := ""
		if !deleted {
			// after is the annotated tag object for annotated tags; the head commit is
			// the commit it points at.
			commit = u.after
			if isSHA(u.headID) && !isZero(u.headID) {
				commit = u.headID
			}
		}
		return &Event{Kind: KindTag, Tag: &Tag{Name: name, Commit: commit, Deleted: deleted}}, nil
	}
	name, ok := strings.CutPrefix(u.ref, branchPrefix)
	if !ok || name == "" {
		return nil, unsupported(u.provider, u.event+" "+u.ref)
	}
	p := &Push{
		Branch:       name,
		Before:       u.before,
		After:        u.after,
		Created:      isZero(u.before),
		Deleted:      deleted,
		Message:      u.message,
		ChangedPaths: u.paths,
	}
	if p.Created || p.Deleted {
		// A new branch's commit list is its recent history on some forges (Gitea: the
		// last 10 commits), not what changed; a deleted one changes nothing to deploy.
		p.ChangedPaths = nil
	}
	if p.Deleted {
		p.Message = ""
	}
	return &Event{Kind: KindPush, Push: p}, nil
}

// commitFiles is one commit's file lists, as GitHub, GitLab and Gitea all send them.
type commitFiles struct {
	ID       string   `json:"id"`
	Message  string   `json:"message"`
	Added    []string `json:"added"`
	Modified []string `json:"modified"`
	Removed  []string `json:"removed"`
}

// unionPaths returns the sorted union of all paths in commits, or nil for no commits.
func unionPaths(commits []commitFiles) []string {
	if len(commits) == 0 {
		return nil
	}
	seen := make(map[string]struct{})
	for _, c := range commits {
		for _, list := range [][]string{c.Added, c.Modified, c.Removed} {
			for _, p := range list {
				if p != "" {
					seen[p] = struct{}{}
				}
			}
		}
	}
	paths := make([]string, 0, len(seen))
	for p := range seen {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	return paths
}

// messageOf returns the message of the commit with id, or "".
func messageOf(commits []commitFiles, id string) string {
	for _, c := range commits {
		if c.ID == id {
			return c.Message
		}
	}
	return ""
}
