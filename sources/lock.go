package sources

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

// repoLocks serialises work on one mirror: within the process with a channel (so waiting
// honours the context) and across processes (serve and a CLI run sharing a data dir) with
// an flock on a file next to the mirror.
type repoLocks struct {
	mu   sync.Mutex
	held map[string]chan struct{}
}

func newRepoLocks() *repoLocks { return &repoLocks{held: map[string]chan struct{}{}} }

// flockPoll is how often a waiter retries the cross-process lock.
const flockPoll = 20 * time.Millisecond

func (l *repoLocks) lock(ctx context.Context, path string) (unlock func(), err error) {
	l.mu.Lock()
	ch, ok := l.held[path]
	if !ok {
		ch = make(chan struct{}, 1)
		l.held[path] = ch
	}
	l.mu.Unlock()

	select {
	case ch <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for mirror lock: %w", ctx.Err())
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		<-ch
		return nil, fmt.Errorf("mirror lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			<-ch
			return nil, fmt.Errorf("mirror lock %s: %w", path, err)
		}
		select {
		case <-time.After(flockPoll):
		case <-ctx.Done():
			f.Close()
			<-ch
			return nil, fmt.Errorf("wait for mirror lock: %w", ctx.Err())
		}
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
		<-ch
	}, nil
}
