package testenv

import (
	"net"
	"strconv"
	"sync"
	"testing"
)

// handedOut holds the loopback ports FreeAddress gave out in this test process. The kernel
// may give a port just closed to the very next bind to port 0, so two picks in a row can
// name the same port: a daemon's API and metrics addresses did, and it failed to start.
// Other test processes running at once may still pick a port this one did; two picks a
// moment apart in one process were the collision seen.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// FreeAddress returns a loopback address free a moment ago and never returned before in
// this process.
func FreeAddress(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePorts(t, 1)[0]))
}

// FreePorts returns n distinct loopback ports free a moment ago, none returned before in
// this process.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	var out []int
	var held []net.Listener // kept open until the end, so the kernel offers others
	defer func() {
		for _, ln := range held {
			ln.Close()
		}
	}()
	for len(out) < n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, ln)
		port := ln.Addr().(*net.TCPAddr).Port
		if handedOut.ports[port] {
			continue
		}
		handedOut.ports[port] = true
		out = append(out, port)
	}
	return out
}
