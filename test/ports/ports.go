// Package ports hands tests TCP ports for servers they start in another
// process, which must be given a port number rather than a listener.
//
// The usual trick, listening on port 0 and closing the listener, returns a
// port from the kernel's ephemeral range: the range every outgoing
// connection takes its local port from. Between the close and the child's
// bind, any client on the machine (kube-apiserver talking to etcd, a test
// dialling) can take that port, and the child fails with "address already
// in use". Ports below the ephemeral range are only ever taken by an
// explicit bind, so Free picks from there.
package ports

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// span is how many ports below the ephemeral range Free picks from.
const span = 10000

var (
	mu     sync.Mutex
	handed = map[int]bool{} // never hand out a port twice in one test binary
)

// Free is Pick for a test: it fails the test when no port is found.
func Free(tb testing.TB) int {
	tb.Helper()
	port, err := Pick()
	if err != nil {
		tb.Fatal(err)
	}
	return port
}

// Pick returns a port on 127.0.0.1 that nothing listens on, below the
// ephemeral range, and not returned before by this process.
func Pick() (int, error) {
	low := ephemeralLow()
	mu.Lock()
	defer mu.Unlock()
	for range 200 {
		port := low - 1 - rand.IntN(span)
		if port < 1024 || handed[port] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // in use
		}
		ln.Close()
		handed[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("no free port found below the ephemeral range (%d)", low)
}

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	const fallback = 32768 // Linux's default
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return fallback
	}
	var low, high int
	if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &low, &high); err != nil || low < 1024+span/2 {
		return fallback
	}
	return low
}
