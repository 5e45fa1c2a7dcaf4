package realnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// inNetns runs fn on an OS thread that has joined the network namespace at nsPath. The
// thread is thrown away afterwards (the goroutine ends still locked to it), so no other
// goroutine ever runs in that namespace by accident. Sockets fn creates stay in the
// namespace for their whole life, whichever thread uses them later.
func inNetns(nsPath string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: see above.
		ns, err := os.Open(nsPath)
		if err != nil {
			errc <- fmt.Errorf("opening network namespace: %w", err)
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("joining network namespace %s: %w", nsPath, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// setupNetwork makes the cluster's network namespace: loopback, the node IP on a bridge
// without ports (the kernel here has no dummy links, and kubelet refuses a loopback node
// IP), a route for the Service range so kube-proxy's rules see Service traffic, and no
// default route, so anything outside the namespace fails at once with "network is
// unreachable". Pods get their own bridge from the CNI plugin.
func (c *Cluster) setupNetwork(ctx context.Context) error {
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", c.Name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add %s: %w: %s", c.Name, err, out)
	}
	script := strings.Join([]string{
		"link set lo up",
		"link add " + nodeBridge + " type bridge",
		"addr add " + NodeIP + "/24 dev " + nodeBridge,
		"link set " + nodeBridge + " up",
		"route add " + ServiceCIDR + " dev " + nodeBridge,
	}, "\n")
	cmd := exec.CommandContext(ctx, "ip", "-n", c.Name, "-batch", "-")
	cmd.Stdin = strings.NewReader(script + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("configuring network namespace %s: %w: %s", c.Name, err, out)
	}
	// Per-namespace settings: pods' bridged traffic must pass iptables (kube-proxy's
	// Service rules), and the namespace routes between the pod bridge and the node IP.
	return inNetns(c.netnsPath(), func() error {
		for key, value := range map[string]string{
			"net/bridge/bridge-nf-call-iptables": "1",
			"net/ipv4/ip_forward":                "1",
		} {
			if err := os.WriteFile("/proc/sys/"+key, []byte(value), 0o644); err != nil {
				return fmt.Errorf("sysctl %s in the cluster's namespace: %w", key, err)
			}
		}
		return nil
	})
}

// DialContext connects from inside the cluster's network namespace, as a process on the
// node would: to pod IPs, Service ClusterIPs (through kube-proxy's rules) and the
// node's ports. A host name is resolved by the cluster's DNS first, so
// "web.default.svc.cluster.local:80" works too. It suits http.Transport.DialContext.
func (c *Cluster) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	if net.ParseIP(host) == nil {
		addrs, err := c.resolver().LookupIPAddr(ctx, host)
		if err != nil {
			return nil, fmt.Errorf("resolving %s with the cluster's DNS: %w", host, err)
		}
		host = addrs[0].IP.String()
	}
	var conn net.Conn
	err = inNetns(c.netnsPath(), func() error {
		// No fallback racing: every connection attempt must happen on this thread.
		d := net.Dialer{FallbackDelay: -1}
		var err error
		conn, err = d.DialContext(ctx, network, net.JoinHostPort(host, port))
		return err
	})
	return conn, err
}

// resolver asks the cluster's DNS from inside the namespace: the kube-dns Service, or
// CoreDNS's pod when there is no kube-proxy to route Service addresses.
func (c *Cluster) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		c.mu.Lock()
		server := c.dnsServer
		c.mu.Unlock()
		return c.DialContext(ctx, network, server)
	}}
}

// forwarder copies TCP connections from a listener to whatever dial returns; Close stops
// it and ends every connection it carries.
type forwarder struct {
	ln     net.Listener
	dial   func(context.Context) (net.Conn, error)
	ctx    context.Context // ends with Close, and so do dials in progress
	cancel context.CancelFunc

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func newForwarder(ln net.Listener, dial func(context.Context) (net.Conn, error)) *forwarder {
	ctx, cancel := context.WithCancel(context.Background())
	f := &forwarder{ln: ln, dial: dial, ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.serve()
	return f
}

func (f *forwarder) serve() {
	defer f.wg.Done()
	for {
		in, err := f.ln.Accept()
		if err != nil {
			return // closed
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.pipe(in)
		}()
	}
}

const forwardDialTimeout = 10 * time.Second

func (f *forwarder) pipe(in net.Conn) {
	ctx, cancel := context.WithTimeout(f.ctx, forwardDialTimeout)
	out, err := f.dial(ctx)
	cancel()
	if err != nil {
		in.Close()
		return
	}
	if !f.track(in, out) {
		in.Close()
		out.Close()
		return
	}
	defer f.untrack(in, out)
	done := make(chan struct{}, 2)
	copyHalf := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Pass the end of one direction on, so request-then-close clients work.
		if tc, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go copyHalf(out, in)
	go copyHalf(in, out)
	<-done
	<-done
}

func (f *forwarder) track(conns ...net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	for _, c := range conns {
		f.conns[c] = struct{}{}
	}
	return true
}

func (f *forwarder) untrack(conns ...net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range conns {
		c.Close()
		delete(f.conns, c)
	}
}

func (f *forwarder) Close() {
	f.cancel()
	f.mu.Lock()
	f.closed = true
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.ln.Close()
	f.wg.Wait()
}

// forwardAPIServer listens on the host's 127.0.0.1 (port 0: any free one) and forwards
// to kube-apiserver on 127.0.0.1:6443 inside the namespace; kubeconfigs for the host
// point there. The serving certificate names 127.0.0.1, so TLS verifies end to end.
func (c *Cluster) forwardAPIServer(port int) (*forwarder, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", fmt.Sprint(port)))
	if err != nil {
		return nil, fmt.Errorf("listening for the kube-apiserver forwarder: %w", err)
	}
	target := net.JoinHostPort("127.0.0.1", fmt.Sprint(apiServerPort))
	return newForwarder(ln, func(ctx context.Context) (net.Conn, error) {
		return c.DialContext(ctx, "tcp", target)
	}), nil
}

// ExposeHost makes a server on the host reachable from pods: it listens on the node IP
// inside the cluster's namespace and forwards every connection to hostAddr, dialled from
// the host's namespace (typically a test's server on 127.0.0.1). Pods use the returned
// address; stop ends the forwarding (Stop does too).
func (c *Cluster) ExposeHost(hostAddr string) (addrForPods string, stop func(), err error) {
	var ln net.Listener
	if err := inNetns(c.netnsPath(), func() error {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(NodeIP, "0"))
		return err
	}); err != nil {
		return "", nil, fmt.Errorf("listening on the node IP for %s: %w", hostAddr, err)
	}
	f := newForwarder(ln, func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", hostAddr)
	})
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		f.Close()
		return "", nil, errors.New("cluster stopped")
	}
	c.forwarders = append(c.forwarders, f)
	c.mu.Unlock()
	return ln.Addr().String(), sync.OnceFunc(f.Close), nil
}
