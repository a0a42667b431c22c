package trigger

import (
	"sync"

	"github.com/slipwayhq/slipway/sources"
)

// LookQueue starts watchers' looks at most perHost at a time against each Git host; the
// others wait their turn in order. A waiting look is a func in a slice, not a goroutine:
// a push to a thousand repositories on one host otherwise started a thousand looks at
// once, each holding a grown stack and its opened mirror while it queued behind the host's
// few Git connections (git.maxPerHost), which bound the work anyway. A nil *LookQueue
// starts every look at once.
type LookQueue struct {
	perHost int

	mu    sync.Mutex
	hosts map[string]*hostLooks
}

// hostLooks are one host's looks: how many run and those waiting, first in first out.
type hostLooks struct {
	running int
	waiting []func()
}

// NewLookQueue makes a queue running at most perHost looks at once per host (at least 1).
func NewLookQueue(perHost int) *LookQueue {
	return &LookQueue{perHost: max(perHost, 1), hosts: map[string]*hostLooks{}}
}

// Go runs look in a goroutine once repo's host has a place for it. It never blocks.
func (q *LookQueue) Go(repo sources.Repo, look func()) {
	if q == nil {
		go look()
		return
	}
	host := sources.HostOf(repo.URL)
	q.mu.Lock()
	h := q.hosts[host]
	if h == nil {
		h = &hostLooks{}
		q.hosts[host] = h
	}
	if h.running >= q.perHost {
		h.waiting = append(h.waiting, look)
		q.mu.Unlock()
		return
	}
	h.running++
	q.mu.Unlock()
	go q.run(host, h, look)
}

// run runs look, then the host's waiting looks one after another on the same goroutine,
// until none waits.
func (q *LookQueue) run(host string, h *hostLooks, look func()) {
	for {
		look()
		q.mu.Lock()
		if len(h.waiting) == 0 {
			h.running--
			if h.running == 0 {
				delete(q.hosts, host) // the map holds only hosts being looked at
			}
			q.mu.Unlock()
			return
		}
		look = h.waiting[0]
		h.waiting[0] = nil
		h.waiting = h.waiting[1:]
		q.mu.Unlock()
	}
}

// Waiting is how many looks wait for their host's turn now.
func (q *LookQueue) Waiting() int {
	if q == nil {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, h := range q.hosts {
		n += len(h.waiting)
	}
	return n
}
