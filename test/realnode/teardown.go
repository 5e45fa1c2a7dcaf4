package realnode

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// teardown removes everything of the cluster name in dir, whether its owner stopped it
// or died: every process in its cgroups (pods, shims, daemons), every mount under dir,
// its cgroups, its network namespace and its entries in the shared folders. It succeeds
// on what is already gone, so it is safe to repeat.
func teardown(name, dir string) error {
	var errs []error
	g := cgroupsOf(name)
	if err := killAll(g, 15*time.Second); err != nil {
		errs = append(errs, err)
	}
	if err := unmountUnder(dir); err != nil {
		errs = append(errs, err)
	}
	if err := g.remove(); err != nil {
		errs = append(errs, err)
	}
	if _, err := os.Stat(netnsPath(name)); err == nil {
		if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip netns delete %s: %w: %s", name, err, out))
		}
	}
	errs = append(errs, removeSharedEntries(name, dir))
	return errors.Join(errs...)
}

// killAll SIGKILLs every process in the cgroups until none is left alive (a zombie
// counts as gone: see alive).
func killAll(g cgroupSet, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var live []int
		for _, pid := range g.pids() {
			if alive(pid) {
				live = append(live, pid)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if len(live) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v of the cluster still run %s after SIGKILL", live, timeout)
		}
		time.Sleep(20 * time.Millisecond) // waiting for the kernel to end them
	}
}

// mountsUnder lists the mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		p := unescapeMount(fields[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	return points
}

// unmountUnder unmounts everything at or below dir: pods' volumes, container root file
// systems, sandboxes' network namespaces and /dev/shm, kubelet's shared root.
func unmountUnder(dir string) error {
	for range 10 { // a mount may have been stacked on another
		points := mountsUnder(dir)
		if len(points) == 0 {
			return nil
		}
		for _, p := range points {
			_ = unix.Unmount(p, unix.MNT_DETACH)
		}
	}
	return fmt.Errorf("still mounted under %s: %v", dir, mountsUnder(dir))
}

// removeSharedEntries removes what the cluster left in the shared folders: kubelet's log
// links pointing into dir; libcni's cached results of the cluster's sandboxes (one of the
// cluster's network, named after it, and one of containerd's loopback network); and the
// sockets containerd 1.6 puts in /run/containerd/s whatever its state folder (a shim
// removes its own when it exits cleanly, not when it is killed).
func removeSharedEntries(name, dir string) error {
	var stale []string
	links, _ := filepath.Glob("/var/log/containers/*")
	for _, l := range links {
		if target, err := os.Readlink(l); err == nil && strings.HasPrefix(target, dir+"/") {
			stale = append(stale, l)
		}
	}
	address := filepath.Join(dir, "containerd", "containerd.sock")
	for _, id := range containerIDs(dir) {
		cached, _ := filepath.Glob(filepath.Join("/var/lib/cni/results", name+"-"+id+"-*"))
		// A shim's socket is named after containerd's address, the namespace and the
		// task, as containerd's runtime/v2/shim.SocketAddress computes it.
		sum := sha256.Sum256([]byte(filepath.Join(address, "k8s.io", id)))
		stale = append(append(stale, cached...),
			"/var/lib/cni/results/cni-loopback-"+id+"-lo",
			filepath.Join("/run/containerd/s", hex.EncodeToString(sum[:])))
	}
	var errs []error
	for _, p := range stale {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// containerIDs lists the ids of the cluster's sandboxes and containers that containerd's
// folders under dir still know.
func containerIDs(dir string) []string {
	var ids []string
	for _, d := range []string{
		"state/io.containerd.runtime.v2.task/k8s.io",
		"state/io.containerd.grpc.v1.cri/sandboxes",
		"root/io.containerd.grpc.v1.cri/sandboxes",
		"root/io.containerd.grpc.v1.cri/containers",
	} {
		entries, _ := os.ReadDir(filepath.Join(dir, "containerd", d))
		for _, e := range entries {
			ids = append(ids, e.Name())
		}
	}
	return ids
}

// netnsPath is where ip netns keeps the namespace name.
func netnsPath(name string) string { return "/run/netns/" + name }

// leftovers describes what of the cluster name in dir is still on the machine; empty
// when nothing is. Tests assert it after Stop.
func leftovers(name, dir string) []string {
	var left []string
	if _, err := os.Stat(netnsPath(name)); err == nil {
		left = append(left, "network namespace "+netnsPath(name))
	}
	for _, m := range mountsUnder(dir) {
		left = append(left, "mount "+m)
	}
	g := cgroupsOf(name)
	for _, pid := range g.pids() {
		if alive(pid) {
			left = append(left, "process "+strconv.Itoa(pid))
		}
	}
	if g.exists() {
		left = append(left, "cgroups "+strings.Join(g.dirs(), " "))
	}
	if procs := processesMentioning(dir); len(procs) > 0 {
		left = append(left, "processes naming "+dir+": "+strings.Join(procs, "; "))
	}
	return left
}

// processesMentioning lists the live processes whose command line holds s.
func processesMentioning(s string) []string {
	entries, _ := os.ReadDir("/proc")
	var found []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !alive(pid) {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(cmdline), s) {
			found = append(found, fmt.Sprintf("%d %s", pid, strings.ReplaceAll(string(cmdline), "\x00", " ")))
		}
	}
	return found
}
