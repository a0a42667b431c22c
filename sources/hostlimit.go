package sources

import (
	"context"
	"fmt"
	"sync"

	"github.com/go-git/go-git/v5/plumbing/transport"
)

// DefaultPerHost is how many fetches or ref listings run against one Git host at once.
// Forges rate-limit per client; a daemon following hundreds of repositories on one host
// must not open hundreds of connections when their poll timers line up.
const DefaultPerHost = 4

// HostLimiter bounds the requests in flight to each Git host (Mirrors.network takes a
// place around each one).
type HostLimiter struct {
	PerHost int // <= 0: DefaultPerHost

	mu    sync.Mutex
	slots map[string]chan struct{}
	peak  int // the most operations seen at once against one host
}

// Peak is the most operations that ran at once against one host since the limiter was
// made: the metrics show it, so the bound can be seen to hold.
func (l *HostLimiter) Peak() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.peak
}

// HostOf is the host a Git URL names (the URL itself when it does not parse): the key of
// the bounds kept per Git host.
func HostOf(url string) string {
	if ep, err := transport.NewEndpoint(url); err == nil {
		return ep.Host
	}
	return url
}

// Cap is the most operations at once against one host.
func (l *HostLimiter) Cap() int {
	if l == nil || l.PerHost <= 0 {
		return DefaultPerHost
	}
	return l.PerHost
}

// Acquire waits for a slot on the host of url and returns its release.
func (l *HostLimiter) Acquire(ctx context.Context, url string) (release func(), err error) {
	if l == nil {
		return func() {}, nil
	}
	host := HostOf(url)
	l.mu.Lock()
	if l.slots == nil {
		l.slots = map[string]chan struct{}{}
	}
	sem := l.slots[host]
	if sem == nil {
		sem = make(chan struct{}, l.Cap())
		l.slots[host] = sem
	}
	l.mu.Unlock()
	select {
	case sem <- struct{}{}:
		l.mu.Lock()
		l.peak = max(l.peak, len(sem))
		l.mu.Unlock()
		return func() { <-sem }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a connection slot to %s: %w", host, ctx.Err())
	}
}
