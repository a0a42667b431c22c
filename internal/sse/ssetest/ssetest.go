// Package ssetest opens event streams for tests.
package ssetest

import (
	"io"
	"net/http"
	"testing"
)

// Open sends req, resuming after lastEventID when it is set, and fails the test unless an
// event stream answers. The stream closes when the test ends.
func Open(t testing.TB, req *http.Request, lastEventID string) *http.Response {
	t.Helper()
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream %s: %d %s %s", req.URL.Path, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	return resp
}
