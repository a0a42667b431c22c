package trigger

import (
	"slices"
	"sync"

	"github.com/slipwayhq/slipway/sources"
)

// LookQueue starts watchers' looks at most perHost at a time against each Git host; the
// others wait their turn in order. A waiting look is an entry in a list, not a goroutine:
// a push to a thousand repositories on one host otherwise started a thousand looks at
// once, each holding a grown stack and its opened mirror while it queued behind the host's
// few Git connections (git.maxPerHost), which bound the work anyway. A nil *LookQueue
// starts every look at once.
type LookQueue struct {
	perHost int

	mu    sync.Mutex
	hosts map[string]*hostLooks
	peak  int // the most looks seen running at once against one host
}

// hostLooks are one host's looks: how many run and those waiting, first in first out.
type hostLooks struct {
	running int
	waiting []*queuedLook
}

// queuedLook is a look waiting its turn; a pointer, so a withdrawal finds its own.
type queuedLook struct{ run func() }

// NewLookQueue makes a queue running at most perHost looks at once per host (at least 1).
func NewLookQueue(perHost int) *LookQueue {
	return &LookQueue{perHost: max(perHost, 1), hosts: map[string]*hostLooks{}}
}

// Go runs look in a goroutine once repo's host has a place for it. It never blocks. The
// returned withdraw takes the look out of the queue if it has not started, and reports
// whether it did: a watcher whose context ended stops at once rather than waiting for its
// turn only to do nothing.
func (q *LookQueue) Go(repo sources.Repo, look func()) (withdraw func() bool) {
	if q == nil {
		go look()
		return func() bool { return false }
	}
	host := sources.HostOf(repo.URL)
	q.mu.Lock()
	defer q.mu.Unlock()
	h := q.hosts[host]
	if h == nil {
		h = &hostLooks{}
		q.hosts[host] = h
	}
	if h.running >= q.perHost {
		l := &queuedLook{run: look}
		h.waiting = append(h.waiting, l)
		return func() bool { return q.withdraw(host, l) }
	}
	h.running++
	q.peak = max(q.peak, h.running)
	go q.run(host, h, look)
	return func() bool { return false }
}

func (q *LookQueue) withdraw(host string, l *queuedLook) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	h := q.hosts[host]
	if h == nil {
		return false
	}
	i := slices.Index(h.waiting, l)
	if i < 0 {
		return false
	}
	h.waiting = slices.Delete(h.waiting, i, i+1)
	return true
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
		look = h.waiting[0].run
		h.waiting[0] = nil
		h.waiting = h.waiting[1:]
		q.mu.Unlock()
	}
}

// Waiting is how many looks wait for their host's turn now.
func (q *LookQueue) Waiting() int { _, waiting := q.counts(); return waiting }

// Running is how many looks run now, across hosts.
func (q *LookQueue) Running() int { running, _ := q.counts(); return running }

func (q *LookQueue) counts() (running, waiting int) {
	if q == nil {
		return 0, 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, h := range q.hosts {
		running += h.running
		waiting += len(h.waiting)
	}
	return running, waiting
}

// Peak is the most looks seen running at once against one host.
func (q *LookQueue) Peak() int {
	if q == nil {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.peak
}

// Cap is the most looks that run at once against one host.
func (q *LookQueue) Cap() int { return q.perHost }
