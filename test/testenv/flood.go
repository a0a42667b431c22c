package testenv

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// FloodAnswer is how the daemon answered one slow sender.
type FloodAnswer struct {
	Status int
	After  time.Duration // from the headers sent to the answer
	Err    error
}

// slowSender sends the headers of a 3 MiB webhook delivery to url's host, then its body
// at 8 KiB every 100ms (it would take over 6 minutes), and returns the daemon's answer.
func slowSender(addr, path, headers string) FloodAnswer {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return FloodAnswer{Err: err}
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n%s\r\n", path, addr, 3<<20, headers); err != nil {
		return FloodAnswer{Err: err}
	}
	sent := time.Now()
	answered := make(chan FloodAnswer, 1)
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			answered <- FloodAnswer{Err: err, After: time.Since(sent)}
			return
		}
		resp.Body.Close()
		answered <- FloodAnswer{Status: resp.StatusCode, After: time.Since(sent)}
	}()
	chunk := make([]byte, 8<<10)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case r := <-answered:
			return r
		case <-tick.C:
			// A write error means the daemon closed the connection; its answer is read above.
			_, _ = c.Write(chunk)
		}
	}
}

// WebhookFlood sends n slow senders to server's path ("http://HOST:PORT") at once while /healthz is polled; it returns their answers
// and the health check latencies.
func WebhookFlood(t testing.TB, server, path, headers string, n int) ([]FloodAnswer, []time.Duration) {
	t.Helper()
	addr := strings.TrimPrefix(server, "http://")
	results := make([]FloodAnswer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = slowSender(addr, path, headers)
		}()
	}
	done := make(chan struct{})
	var health []time.Duration
	var healthErr error
	go func() {
		defer close(done)
		client := &http.Client{Timeout: 5 * time.Second}
		for {
			start := time.Now()
			resp, err := client.Get(server + "/healthz")
			if err != nil {
				healthErr = err
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				healthErr = fmt.Errorf("/healthz answered %d", resp.StatusCode)
				return
			}
			health = append(health, time.Since(start))
			select {
			case <-stopFlood(&wg):
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	wg.Wait()
	<-done
	if healthErr != nil {
		t.Fatalf("/healthz during the flood: %v", healthErr)
	}
	return results, health
}

// stopFlood is closed once wg's senders have all been answered.
func stopFlood(wg *sync.WaitGroup) <-chan struct{} {
	c := make(chan struct{})
	go func() { wg.Wait(); close(c) }()
	return c
}

// Percentile is the p-th (0..1) percentile of d, 0 for none; d is not changed.
func Percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}
