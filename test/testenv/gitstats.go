package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// GitRepoStats are the Git server's monotonic request counters of one repository (see
// hack/gitserver): Listings are ref advertisements served to fetching clients (a
// `git ls-remote` or a go-git remote List is one), Fetches are upload-pack negotiations
// (a fetch or clone that wants objects), Pushes are receive-pack POSTs, and Requests counts
// every request to the repository.
type GitRepoStats struct {
	Listings int64 `json:"listings"`
	Fetches  int64 `json:"fetches"`
	Pushes   int64 `json:"pushes"`
	Requests int64 `json:"requests"`
}

// GitStats returns the Git server's counters for repo (a name from Repo, with or without
// ".git"); all zero for a repository it has not served. Counters only grow: compare two
// readings.
func (e *Env) GitStats(t testing.TB, repo string) GitRepoStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	all, err := e.gitStats(ctx)
	if err != nil {
		t.Fatalf("testenv: %v; %s", err, howToGet)
	}
	return all[strings.TrimSuffix(repo, ".git")]
}

func (e *Env) gitStats(ctx context.Context) (map[string]GitRepoStats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.GitURL+"/_stats", nil)
	if err != nil {
		return nil, fmt.Errorf("git server stats: %w", err)
	}
	req.SetBasicAuth(e.GitUser, e.GitPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("git server stats: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("git server stats: read: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("git server stats: %s: %s (a Git server older than the stats "+
			"endpoint answers 404 here: restart the environment)", resp.Status, strings.TrimSpace(string(body)))
	}
	var stats struct {
		Repos map[string]GitRepoStats `json:"repos"`
	}
	if err := json.Unmarshal(body, &stats); err != nil {
		return nil, fmt.Errorf("git server stats: decode %q: %w", body, err)
	}
	return stats.Repos, nil
}
