//go:build linux

package localnode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// DefaultPodCIDR is where pod IPs come from. All of 127.0.0.0/8 is local on
// Linux, so a pod's processes can bind its IP without any setup; 127.0.0.0/16
// is left alone because 127.0.0.1 and Debian's 127.0.1.1 are in use.
const DefaultPodCIDR = "127.1.0.0/16"

// ipam hands out pod IPs from a prefix of 127.0.0.0/8. Every address in use is
// held with an exclusive flock on a file in a directory shared by all localnode
// processes of the machine, so two nodes (for example the test clusters of two
// packages that run in parallel) never give the same IP to two pods. The kernel
// drops the lock when the process ends, however it ends.
type ipam struct {
	prefix netip.Prefix
	dir    string

	mu    sync.Mutex
	held  map[netip.Addr]*os.File
	owner map[netip.Addr]string
	next  uint32
}

func newIPAM(cidr, lockDir string) (*ipam, error) {
	prefix, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("pod CIDR: %w", err)
	}
	prefix = prefix.Masked()
	if !prefix.Addr().Is4() || !netip.MustParsePrefix("127.0.0.0/8").Contains(prefix.Addr()) || prefix.Bits() < 8 || prefix.Bits() > 30 {
		return nil, fmt.Errorf("pod CIDR %s must be an IPv4 prefix inside 127.0.0.0/8 with room for pods", cidr)
	}
	if err := os.MkdirAll(lockDir, 0o1777); err != nil {
		return nil, fmt.Errorf("IP lock directory: %w", err)
	}
	return &ipam{prefix: prefix, dir: lockDir, held: map[netip.Addr]*os.File{}, owner: map[netip.Addr]string{}}, nil
}

func (a *ipam) size() uint32 { return 1 << (32 - a.prefix.Bits()) }

func (a *ipam) addr(i uint32) netip.Addr {
	base := a.prefix.Addr().As4()
	v := binary.BigEndian.Uint32(base[:]) + i
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// allocate returns a free IP for owner, preferring want when it is free.
func (a *ipam) allocate(owner string, want string) (netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if w, err := netip.ParseAddr(want); err == nil && a.prefix.Contains(w) && a.usable(w) {
		if a.owner[w] == owner {
			return w, nil
		}
		if _, mine := a.held[w]; !mine && a.tryLock(w) {
			a.owner[w] = owner
			return w, nil
		}
	}
	n := a.size()
	for i := uint32(0); i < n; i++ {
		idx := (a.next + i) % n
		ip := a.addr(idx)
		if !a.usable(ip) {
			continue
		}
		if _, mine := a.held[ip]; mine {
			continue
		}
		if a.tryLock(ip) {
			a.owner[ip] = owner
			a.next = idx + 1
			return ip, nil
		}
	}
	return netip.Addr{}, errors.New("no free pod IP in " + a.prefix.String())
}

// usable leaves out the prefix's network and broadcast addresses and 127.0.0.1.
func (a *ipam) usable(ip netip.Addr) bool {
	if ip == netip.MustParseAddr("127.0.0.1") {
		return false
	}
	return ip != a.prefix.Addr() && ip != a.addr(a.size()-1)
}

func (a *ipam) tryLock(ip netip.Addr) bool {
	f, err := os.OpenFile(filepath.Join(a.dir, ip.String()), os.O_CREATE|os.O_RDONLY, 0o666)
	if err != nil {
		return false
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return false
	}
	a.held[ip] = f
	return true
}

func (a *ipam) release(ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if f, ok := a.held[ip]; ok {
		// The file stays: removing it could let two processes lock two
		// different inodes under one name.
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
		delete(a.held, ip)
		delete(a.owner, ip)
	}
}

func (a *ipam) releaseAll() {
	a.mu.Lock()
	ips := make([]netip.Addr, 0, len(a.held))
	for ip := range a.held {
		ips = append(ips, ip)
	}
	a.mu.Unlock()
	for _, ip := range ips {
		a.release(ip)
	}
}
