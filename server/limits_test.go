package server

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// slowHook opens a connection to srv and sends the headers of a 3 MiB webhook delivery to
// /hooks/app with the given extra header lines, then nothing of its body: a slow sender.
func slowHook(t *testing.T, srv *httptest.Server, extra string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST /hooks/app HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n", 3<<20, extra)
	return c
}

func readStatus(t *testing.T, c net.Conn, within time.Duration) (*http.Response, time.Duration) {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(within))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer within %s: %v", within, err)
	}
	resp.Body.Close()
	return resp, time.Since(start)
}

// tryStatus reads an answer from c if one comes within the time given.
func tryStatus(c net.Conn, within time.Duration) (*http.Response, time.Duration, error) {
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(within))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, 0, err
	}
	resp.Body.Close()
	return resp, time.Since(start), nil
}

const signedJSON = "Content-Type: application/json\r\nX-Slipway-Event: push\r\nX-Slipway-Signature-256: sha256=" +
	"0000000000000000000000000000000000000000000000000000000000000000\r\n"

func TestHookCheapChecksComeBeforeTheBody(t *testing.T) {
	rec := newRecorder()
	srv := newTestServer(rec)
	defer srv.Close()
	// None of these sends a byte of its body; each is answered at once.
	for _, tc := range []struct {
		name, headers string
		want          int
		reason        string
	}{
		{"unsigned", "Content-Type: application/json\r\nX-Slipway-Event: push\r\n", http.StatusUnauthorized, "missing_signature"},
		{"malformed signature", "Content-Type: application/json\r\nX-Slipway-Signature-256: sha256=zz\r\n", http.StatusUnauthorized, "bad_signature"},
		{"form-encoded", strings.Replace(signedJSON, "application/json", "application/x-www-form-urlencoded", 1), http.StatusUnsupportedMediaType, "bad_media_type"},
		{"no content type", strings.Replace(signedJSON, "Content-Type: application/json\r\n", "", 1), http.StatusUnsupportedMediaType, "bad_media_type"},
	} {
		c := slowHook(t, srv, tc.headers)
		resp, took := readStatus(t, c, 2*time.Second)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
		if rec.counts["rejected/"+tc.reason] == 0 {
			t.Errorf("%s: no rejected/%s count (%v)", tc.name, tc.reason, rec.counts)
		}
		t.Logf("%s: %d in %s", tc.name, resp.StatusCode, took)
	}
	// A Content-Length over the limit is refused before reading.
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /hooks/app HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n", 3<<20+1, signedJSON)
	if resp, _ := readStatus(t, c, 2*time.Second); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("announced 3 MiB + 1: %d, want 413", resp.StatusCode)
	}
}

func TestHookBodyReadsAreCappedAndTimed(t *testing.T) {
	rec := newRecorder()
	const readTimeout = 3 * time.Second
	s := &Server{
		Hooks:    map[string]Hook{"app": {Provider: "generic", Secret: secret, Branches: []string{"main"}}},
		Triggers: rec, Records: rec, Metrics: rec, Limits: HookLimits{MaxConcurrentReads: 2, ReadTimeout: readTimeout},
		Log: logrus.NewEntry(logrus.New()),
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	// Slow senders take the two read slots; the next one is refused at once. A sender that
	// gets no answer soon holds a slot (the server may take it before an earlier one), so
	// keep opening senders until one is refused: with both slots held, that must happen
	// long before the slow ones' read timeout frees a slot.
	var slow []net.Conn
	var refused *http.Response
	start := time.Now()
	for refused == nil {
		if time.Since(start) > readTimeout {
			t.Fatalf("the read cap never refused a delivery (%d senders hold slots)", len(slow))
		}
		c := slowHook(t, srv, signedJSON)
		resp, took, err := tryStatus(c, 300*time.Millisecond)
		switch {
		case err != nil:
			slow = append(slow, c) // no answer yet: it is being read
		case resp.StatusCode == http.StatusServiceUnavailable:
			refused = resp
			if took > 2*time.Second {
				t.Errorf("a delivery beyond the cap waited %s for its answer", took)
			}
		default:
			t.Fatalf("a sender beyond the cap: %d", resp.StatusCode)
		}
	}
	if len(slow) < 2 {
		t.Errorf("refused with %d senders being read; the cap is 2", len(slow))
	}
	if refused.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if rec.counts["rejected/busy"] == 0 {
		t.Errorf("refusals not counted: %v", rec.counts)
	}
	// The slow ones are cut off at the read timeout, freeing their slots.
	// (A sender whose 503 came late was counted as slow above; it reads its 503 now.)
	timedOut := 0
	for _, c := range slow {
		resp, took := readStatus(t, c, readTimeout+3*time.Second)
		switch resp.StatusCode {
		case http.StatusRequestTimeout:
			timedOut++
		case http.StatusServiceUnavailable:
		default:
			t.Errorf("slow sender: %d, want 408", resp.StatusCode)
		}
		if took > readTimeout+2*time.Second {
			t.Errorf("slow sender held its slot for %s", took)
		}
	}
	if timedOut != 2 {
		t.Errorf("%d slow senders were cut off at the read timeout, want the 2 that held the slots", timedOut)
	}
	if rec.counts["rejected/read_timeout"] < 2 {
		t.Errorf("read timeouts not counted: %v", rec.counts)
	}
	// /healthz answered throughout, and a good delivery gets a slot again.
	if code, _ := get(t, srv.URL+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	body := []byte(`{"ref":"refs/heads/main","before":"` + strings.Repeat("a", 40) + `","after":"` + strings.Repeat("b", 40) + `"}`)
	if code, out := post(t, srv.URL+"/hooks/app", body, signedHeaders(body, "d-9")); code != http.StatusAccepted {
		t.Errorf("a good delivery after the flood: %d %s", code, out)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, resp.Status
}
