package realnode

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// registryDir lists the running clusters of the machine, one record each, so that a
// cluster whose owner died (a test binary killed at its time-out, a crashed up) is
// torn down by the next Start, whatever its name. It lives in /run, like the network
// namespaces, so a reboot clears both.
const registryDir = "/run/exo-realnode"

// record is a cluster in the registry, and in DIR/cluster.json for hack/realnode down.
type record struct {
	Name       string `json:"name"`
	Dir        string `json:"dir"`
	OwnerPID   int    `json:"ownerPID"`
	OwnerStart uint64 `json:"ownerStart"`
	// OwnsDir: the harness made Dir, and removes it.
	OwnsDir bool `json:"ownsDir"`
}

func ownRecord(name, dir string) record {
	_, start, _ := procState(os.Getpid())
	return record{Name: name, Dir: dir, OwnerPID: os.Getpid(), OwnerStart: start}
}

// ownerAlive reports whether the process that started the cluster still runs.
func (r record) ownerAlive() bool {
	state, start, ok := procState(r.OwnerPID)
	return ok && state != 'Z' && start == r.OwnerStart
}

func recordPath(name string) string { return filepath.Join(registryDir, name+".json") }

func (r record) write() error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	for _, path := range []string{recordPath(r.Name), filepath.Join(r.Dir, "cluster.json")} {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return fmt.Errorf("registering the cluster: %w", err)
		}
	}
	return nil
}

func readRecord(path string) (record, error) {
	var r record
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("reading %s: %w", path, err)
	}
	return r, nil
}

func records() []record {
	paths, _ := filepath.Glob(filepath.Join(registryDir, "*.json"))
	var rs []record
	for _, p := range paths {
		if r, err := readRecord(p); err == nil && r.Name != "" {
			rs = append(rs, r)
		}
	}
	return rs
}

// lockRegistry takes the machine-wide lock every cluster's start and stop hold while
// they change the registry and the shared folders.
func lockRegistry() (unlock func(), err error) {
	lockPath := filepath.Join(registryDir, "lock")
	for {
		if err := os.MkdirAll(registryDir, 0o755); err != nil {
			return nil, fmt.Errorf("creating %s: %w", registryDir, err)
		}
		f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", lockPath, err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", lockPath, err)
		}
		// The last cluster to stop removes the folder, lock included; a lock on a
		// removed file guards nothing, so take the new one.
		var held, current unix.Stat_t
		if unix.Fstat(int(f.Fd()), &held) == nil && unix.Stat(lockPath, &current) == nil && held.Ino == current.Ino {
			return func() { f.Close() }, nil
		}
		f.Close()
	}
}

// Folders outside DIR that the runtime writes to whatever it is told: containerd 1.6
// keeps shim sockets in /run/containerd, libcni caches results in /var/lib/cni, kubelet
// links container logs in /var/log/containers and serves device plugins at a fixed
// socket in /var/lib/kubelet, and ip netns keeps the namespaces in /run/netns (a mount
// of its own). Each cluster removes its own entries; the last one to stop removes a
// folder the clusters created, once nothing but machine-wide files (sharedFiles) is
// left in it.
var sharedDirs = []string{"/run/netns", "/run/containerd", "/var/lib/cni", "/var/log/containers", "/var/lib/kubelet"}

// sharedFiles belong to every cluster at once: every kubelet (re)creates its device
// plugin socket at the same path.
var sharedFiles = map[string][]string{"/var/lib/kubelet": {"device-plugins/kubelet.sock"}}

// Host-wide sysctls kubelet sets when it starts (vm.overcommit_memory=1, kernel.panic=10,
// kernel.panic_on_oops=1, ...); the first cluster saves them and the last one to stop
// puts them back.
var kubeletSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

func createdMarker(dir string) string {
	return filepath.Join(registryDir, "created"+strings.ReplaceAll(dir, "/", "-"))
}

// claimShared notes, with the registry locked, which shared folders the clusters create
// and the sysctls to restore.
func claimShared() error {
	for _, d := range sharedDirs {
		if _, err := os.Stat(d); errors.Is(err, fs.ErrNotExist) {
			if err := os.WriteFile(createdMarker(d), nil, 0o644); err != nil {
				return fmt.Errorf("noting %s as the clusters': %w", d, err)
			}
		}
	}
	saved := filepath.Join(registryDir, "sysctls.json")
	if _, err := os.Stat(saved); err == nil {
		return nil // saved by a cluster still running, or by one that crashed
	}
	values := map[string]string{}
	for _, key := range kubeletSysctls {
		b, err := os.ReadFile("/proc/sys/" + key)
		if err != nil {
			return fmt.Errorf("reading sysctl %s: %w", key, err)
		}
		values[key] = strings.TrimSpace(string(b))
	}
	b, _ := json.Marshal(values)
	return os.WriteFile(saved, b, 0o644)
}

// releaseShared runs, with the registry locked, when no cluster is left: it removes the
// shared folders the clusters created if nothing but empty folders is in them, restores
// the sysctls, and removes the registry.
func releaseShared() error {
	var errs []error
	for _, d := range sharedDirs {
		marker := createdMarker(d)
		if _, err := os.Stat(marker); err != nil {
			continue
		}
		for _, f := range sharedFiles[d] {
			os.Remove(filepath.Join(d, f))
		}
		if onlyEmptyDirs(d) {
			for _, m := range mountsUnder(d) { // ip netns mounts /run/netns on itself
				if err := unix.Unmount(m, unix.MNT_DETACH); err != nil {
					errs = append(errs, fmt.Errorf("unmounting %s: %w", m, err))
				}
			}
			if err := os.RemoveAll(d); err != nil {
				errs = append(errs, err)
			}
		}
		os.Remove(marker)
	}
	saved := filepath.Join(registryDir, "sysctls.json")
	if b, err := os.ReadFile(saved); err == nil {
		var values map[string]string
		if err := json.Unmarshal(b, &values); err != nil {
			errs = append(errs, fmt.Errorf("reading %s: %w", saved, err))
		}
		for key, v := range values {
			if err := os.WriteFile("/proc/sys/"+key, []byte(v), 0o644); err != nil {
				errs = append(errs, fmt.Errorf("restoring sysctl %s: %w", key, err))
			}
		}
		os.Remove(saved)
	}
	os.Remove(filepath.Join(registryDir, "lock"))
	if err := os.Remove(registryDir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// onlyEmptyDirs reports whether dir holds nothing but (possibly nested) empty folders.
func onlyEmptyDirs(dir string) bool {
	empty := true
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			empty = false
			return filepath.SkipAll
		}
		return nil
	})
	return empty
}

var validName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$`)

func (c *Cluster) chooseDir() error {
	dir := c.opts.Dir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "exo-rn-"); err != nil {
			return fmt.Errorf("realnode: creating the cluster's folder: %w", err)
		}
		c.ownsDir = true
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("realnode: %w", err)
	}
	if len(dir) > maxDirLen {
		return fmt.Errorf("realnode: folder %s is longer than %d characters (containerd's sockets live under it)", dir, maxDirLen)
	}
	if err := checkLayout(dir); err != nil {
		return err
	}
	c.Dir, c.Name = dir, c.opts.Name
	if c.Name == "" {
		c.Name = defaultName(dir)
	}
	if !validName.MatchString(c.Name) {
		return fmt.Errorf("realnode: name %q: want at most 32 lower-case letters, digits and dashes", c.Name)
	}
	return nil
}

// defaultName is the name of a cluster in dir (an absolute path) when Options.Name is
// empty.
func defaultName(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return "rn-" + hex.EncodeToString(sum[:4])
}

// register tears down what a dead owner left (this cluster's earlier run, or any
// other), refuses to run twice, and enters the cluster in the registry.
func (c *Cluster) register() error {
	unlock, err := lockRegistry()
	if err != nil {
		return err
	}
	defer unlock()
	for _, r := range records() {
		same := r.Name == c.Name || r.Dir == c.Dir
		if r.ownerAlive() {
			if same {
				return fmt.Errorf("realnode: cluster %s in %s already runs (process %d): stop it, or use another folder", r.Name, r.Dir, r.OwnerPID)
			}
			continue
		}
		c.logf("tearing down cluster %s in %s, left by process %d", r.Name, r.Dir, r.OwnerPID)
		err := teardown(r.Name, r.Dir)
		if err == nil {
			err = clearDir(r.Dir, r.OwnsDir)
		}
		switch {
		case err != nil && same:
			return fmt.Errorf("realnode: tearing down what an earlier run of %s left: %w", r.Name, err)
		case err != nil:
			// Another folder's trouble; its record stays for a later Start to retry.
			c.logf("tearing down the left-over cluster %s: %v", r.Name, err)
		default:
			os.Remove(recordPath(r.Name))
		}
	}
	// Left-overs the registry does not know (it was removed by hand): same name, same folder.
	if err := teardown(c.Name, c.Dir); err != nil {
		return fmt.Errorf("realnode: tearing down what an earlier run of %s left: %w", c.Name, err)
	}
	// The last run's logs, kept for whoever looks after a Stop or a crash, go now.
	if err := clearDir(c.Dir, true); err != nil {
		return err
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return fmt.Errorf("realnode: creating %s: %w", c.Dir, err)
	}
	if err := claimShared(); err != nil {
		return fmt.Errorf("realnode: %w", err)
	}
	r := ownRecord(c.Name, c.Dir)
	r.OwnsDir = c.ownsDir
	if err := r.write(); err != nil {
		return err
	}
	c.registered = true
	return nil
}

// layout is what a cluster keeps in its folder.
var layout = map[string]bool{
	"cluster.json": true, "kubeconfig": true, "log": true, "pki": true, "etc": true,
	"etcd": true, "containerd": true, "kubelet": true, "cni": true,
}

// checkLayout refuses a folder that holds anything but a cluster's files: Start clears
// the folder, and must never clear someone's files (up /tmp by mistake).
func checkLayout(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("realnode: reading %s: %w", dir, err)
	}
	for _, e := range entries {
		if !layout[e.Name()] {
			return fmt.Errorf("realnode: %s holds %s, which is no cluster's: give a new or empty folder", dir, e.Name())
		}
	}
	return nil
}

// clearDir removes a cluster's folder when the harness made it, and otherwise all of
// it but the logs. It refuses while anything is mounted below: a container's root file
// system may hold a bind mount of a host folder, and removing would reach into it.
func clearDir(dir string, owned bool) error {
	if m := mountsUnder(dir); len(m) > 0 {
		return fmt.Errorf("realnode: not removing %s: still mounted there: %v", dir, m)
	}
	if owned {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("realnode: removing %s: %w", dir, err)
		}
		return nil
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("realnode: reading %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.Name() == "log" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("realnode: clearing %s: %w", dir, err)
		}
	}
	return nil
}

// finish tears the cluster down, leaves the registry, and clears its folder.
func finish(name, dir string, ownsDir, registered bool) error {
	unlock, err := lockRegistry()
	if err != nil {
		return errors.Join(err, teardown(name, dir))
	}
	defer unlock()
	errs := []error{teardown(name, dir)}
	if registered {
		os.Remove(recordPath(name))
		if len(records()) == 0 {
			errs = append(errs, releaseShared())
		}
	}
	errs = append(errs, clearDir(dir, ownsDir))
	return errors.Join(errs...)
}

// Down stops the cluster that runs, or ran, in dir (hack/realnode down): it asks the
// process that started it to stop it, and then removes whatever is left, such as what a
// crashed run left behind.
func Down(ctx context.Context, dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := checkLayout(dir); err != nil {
		return err
	}
	r, err := readRecord(filepath.Join(dir, "cluster.json"))
	if errors.Is(err, fs.ErrNotExist) {
		// Stopped cleanly or never started, or its record is gone: remove whatever a
		// cluster of the default name left.
		return finish(defaultName(dir), dir, false, false)
	}
	if err != nil {
		return err
	}
	if r.ownerAlive() {
		if p, err := os.FindProcess(r.OwnerPID); err == nil {
			_ = p.Signal(os.Interrupt)
		}
		for r.ownerAlive() {
			select {
			case <-ctx.Done():
				return fmt.Errorf("process %d, which runs cluster %s, did not stop: %w", r.OwnerPID, r.Name, ctx.Err())
			case <-time.After(50 * time.Millisecond): // waiting for another process
			}
		}
	}
	return finish(r.Name, r.Dir, r.OwnsDir, true)
}
