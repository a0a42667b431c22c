package sources

import (
	"context"
	"fmt"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// ShortHashLen is the length of Commit.ShortHash (GIT_SHORT_COMMIT).
const ShortHashLen = 7

// Commit describes one commit.
type Commit struct {
	Hash        string
	ShortHash   string
	Message     string // full message; the first line is the subject
	Author      string
	AuthorEmail string
	Time        time.Time // author time
}

// Commit describes commit sha (a full hash), fetching more history if the mirror lacks it.
func (m *Mirrors) Commit(ctx context.Context, repo Repo, sha string) (Commit, error) {
	h, err := parseCommit(repo, sha)
	if err != nil {
		return Commit{}, err
	}
	if c, ok := m.commits.get(m.dir(repo), h); ok {
		return c, nil
	}
	var out Commit
	err = m.withRepo(ctx, repo, func() error {
		r, err := m.openExisting(repo)
		if err != nil {
			return fmt.Errorf("commit %s: %w", repo.Name, err)
		}
		if err := m.ensureCommit(ctx, r, repo, h); err != nil {
			return err
		}
		c, err := r.CommitObject(h)
		if err != nil {
			return fmt.Errorf("commit %s: %w", repo.Name, err)
		}
		out = Commit{
			Hash:        c.Hash.String(),
			ShortHash:   c.Hash.String()[:ShortHashLen],
			Message:     c.Message,
			Author:      c.Author.Name,
			AuthorEmail: c.Author.Email,
			Time:        c.Author.When,
		}
		m.commits.put(m.dir(repo), h, out)
		return nil
	})
	return out, err
}

// peel follows annotated tag objects to what they finally point at.
func peel(r *git.Repository, h plumbing.Hash) plumbing.Hash {
	for range 10 { // tags of tags are rare; bound the chain anyway
		t, err := r.TagObject(h)
		if err != nil {
			return h // not a tag object: a lightweight tag's target
		}
		h = t.Target
	}
	return h
}
