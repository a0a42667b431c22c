package forge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// retryTransport retries one request when the forge rate-limits it (429, or 403 with
// rate-limit headers), answers 5xx, or an attempt times out: at most Attempts tries, waiting
// Backoff, doubling, with jitter, or until the reset the forge names when that is within
// MaxWait. It sits under each forge's client library so that all three behave alike; the
// GitLab library's own retries are turned off.
type retryTransport struct {
	next http.RoundTripper
	o    Options
}

// attemptsKey carries a call's attempt counter, so its error can say how often it tried.
type attemptsKey struct{}

func withAttempts(ctx context.Context) (context.Context, *atomic.Int32) {
	n := new(atomic.Int32)
	return context.WithValue(ctx, attemptsKey{}, n), n
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	parent := req.Context()
	counter, _ := parent.Value(attemptsKey{}).(*atomic.Int32)
	for attempt := 1; ; attempt++ {
		if counter != nil {
			counter.Store(int32(attempt))
		}
		ctx, cancel := context.WithTimeout(parent, t.o.Timeout)
		r := req.Clone(ctx)
		if attempt > 1 && req.Body != nil && req.Body != http.NoBody {
			body, err := req.GetBody()
			if err != nil {
				cancel()
				return nil, err
			}
			r.Body = body
		}
		resp, err := t.next.RoundTrip(r)
		if err != nil && parent.Err() == nil && ctx.Err() != nil {
			err = fmt.Errorf("attempt timed out after %s: %w", t.o.Timeout, err)
		}
		wait, retry := t.retryAfter(resp, err, attempt)
		canReplay := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
		if !retry || attempt >= t.o.Attempts || parent.Err() != nil || !canReplay {
			if resp != nil {
				resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
			} else {
				cancel()
			}
			return resp, err
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		cancel()
		timer := time.NewTimer(wait)
		select {
		case <-parent.Done():
			timer.Stop()
			return nil, parent.Err()
		case <-timer.C:
		}
	}
}

// retryAfter says whether an answer is worth another attempt and how long to wait first.
func (t *retryTransport) retryAfter(resp *http.Response, err error, attempt int) (time.Duration, bool) {
	backoff := t.o.Backoff << (attempt - 1)
	backoff += rand.N(backoff/2 + 1) // jitter, so many clients do not come back at once
	backoff = min(backoff, t.o.MaxWait)
	if err != nil {
		return backoff, true
	}
	switch {
	case rateLimited(resp):
		if reset, ok := resetWait(resp.Header, time.Now()); ok {
			if reset > t.o.MaxWait {
				return 0, false // too far away: the caller hears ErrRateLimited now
			}
			return reset, true
		}
		return backoff, true
	case resp.StatusCode >= 500:
		if reset, ok := resetWait(resp.Header, time.Now()); ok && reset <= t.o.MaxWait {
			return reset, true
		}
		return backoff, true
	}
	return 0, false
}

// rateLimited reports a rate-limit answer: 429, or GitHub's 403 with no requests left or a
// Retry-After (its secondary limits).
func rateLimited(resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusTooManyRequests:
		return true
	case http.StatusForbidden:
		return resp.Header.Get("X-RateLimit-Remaining") == "0" || resp.Header.Get("Retry-After") != ""
	}
	return false
}

// resetWait reads how long the forge asks to wait: Retry-After (seconds or an HTTP date),
// else the epoch-seconds reset of GitHub (X-RateLimit-Reset) or GitLab (RateLimit-Reset)
// when no requests are left.
func resetWait(h http.Header, now time.Time) (time.Duration, bool) {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if s, err := strconv.Atoi(v); err == nil && s >= 0 {
			return time.Duration(s) * time.Second, true
		}
		if at, err := http.ParseTime(v); err == nil {
			return max(at.Sub(now), 0), true
		}
	}
	for _, k := range []string{"X-RateLimit", "RateLimit"} {
		if h.Get(k+"-Remaining") != "0" {
			continue
		}
		if s, err := strconv.ParseInt(h.Get(k+"-Reset"), 10, 64); err == nil {
			return max(time.Unix(s, 0).Sub(now), 0), true
		}
	}
	return 0, false
}

// cancelOnClose ends an attempt's timeout context once its body is read and closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// Error is a failed forge call. errors.Is matches its kind (ErrNotFound, ErrRateLimited...)
// and the library's or the transport's error.
type Error struct {
	Forge    string // gitea, github, gitlab
	Op       string // what was asked, e.g. "set status slipway/web on abc1234"
	Status   int    // HTTP status; 0 when no answer came
	Attempts int
	Kind     error // one of the package's Err values, or nil
	Wait     time.Duration
	Err      error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", e.Forge, e.Op)
	if e.Kind != nil {
		b.WriteString(": " + e.Kind.Error())
	}
	var notes []string
	if e.Status != 0 {
		notes = append(notes, "HTTP "+strconv.Itoa(e.Status))
	}
	if e.Attempts > 1 {
		notes = append(notes, strconv.Itoa(e.Attempts)+" attempts")
	}
	if e.Wait > 0 {
		notes = append(notes, "the forge asks to wait "+e.Wait.Round(time.Second).String())
	}
	if len(notes) > 0 {
		b.WriteString(" (" + strings.Join(notes, ", ") + ")")
	}
	if e.Err != nil {
		b.WriteString(": " + strings.TrimSpace(e.Err.Error()))
	}
	return b.String()
}

func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// classify turns a library call's outcome into an *Error of the right kind; resp is the
// last HTTP answer, nil when none came.
func classify(ctx context.Context, forge, op string, attempts *atomic.Int32, resp *http.Response, err error) error {
	if err == nil {
		return nil
	}
	e := &Error{Forge: forge, Op: op, Attempts: int(attempts.Load()), Err: err}
	if resp == nil {
		if ctx.Err() == nil {
			e.Kind = ErrUnavailable // refused, unreachable, timed out
		}
		return e
	}
	e.Status = resp.StatusCode
	switch {
	case rateLimited(resp):
		e.Kind = ErrRateLimited
		e.Wait, _ = resetWait(resp.Header, time.Now())
	case resp.StatusCode == http.StatusNotFound:
		e.Kind = ErrNotFound
	case resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusForbidden:
		e.Kind = ErrUnauthorized
	case resp.StatusCode >= 500:
		e.Kind = ErrUnavailable
	case resp.StatusCode == http.StatusBadRequest, resp.StatusCode == http.StatusUnprocessableEntity:
		e.Kind = ErrInvalid
	}
	return e
}

// isNotFound reports a 404 answer among errors classify made.
func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// httpClient is the client every library is given: the retrying transport, no overall
// timeout (each attempt has one).
func httpClient(o Options) *http.Client {
	return &http.Client{Transport: &retryTransport{next: o.Transport, o: o}}
}
