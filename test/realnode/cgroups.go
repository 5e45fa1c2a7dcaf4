package realnode

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// daemonsCgroup holds the cluster's daemons and so containerd's shims, which inherit it;
// kubelet puts the pods in kubepods beside it, under the same cgroup root.
const daemonsCgroup = "daemons"

// cgroupSet is one cgroup, by relative path, in every cgroup hierarchy of the host.
// Each cluster has its own (kubelet's cgroupRoot), so its pods never mix with the host's
// processes and teardown finds every process the cluster left, even after a crash.
type cgroupSet struct {
	hierarchies []string // mount points
	root        string   // relative to each mount point, e.g. "exo-realnode-rn-1234abcd"
}

func (c *Cluster) cgroups() cgroupSet {
	return cgroupsOf(c.Name)
}

func cgroupsOf(name string) cgroupSet {
	return cgroupSet{hierarchies: cgroupHierarchies(), root: "exo-realnode-" + name}
}

// cgroupRoot is kubelet's cgroupRoot.
func (g cgroupSet) cgroupRoot() string { return "/" + g.root }

// cgroupHierarchies lists the mount points of the cgroup hierarchies: the v1 ones, and
// the v2 one this machine also has (at /sys/fs/cgroup/unified, without controllers),
// where runc puts containers too.
func cgroupHierarchies() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID parent major:minor root mountpoint options ... - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, postFields := strings.Fields(pre), strings.Fields(post)
		if ok && len(fields) >= 5 && len(postFields) >= 1 && (postFields[0] == "cgroup" || postFields[0] == "cgroup2") {
			points = append(points, unescapeMount(fields[4]))
		}
	}
	return points
}

// create makes the cgroup sub (relative to the root; "" for the root itself) in every
// hierarchy. A v1 cpuset takes no process until it has CPUs and memory nodes, which a
// new one lacks: it gets its parent's.
func (g cgroupSet) create(sub string) error {
	for _, h := range g.hierarchies {
		dir := filepath.Join(h, g.root, sub)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("creating cgroup %s: %w", dir, err)
		}
		for _, file := range []string{"cpuset.cpus", "cpuset.mems"} {
			parent, err := os.ReadFile(filepath.Join(filepath.Dir(dir), file))
			if errors.Is(err, fs.ErrNotExist) {
				break // not the cpuset hierarchy
			}
			if err != nil {
				return fmt.Errorf("reading %s: %w", file, err)
			}
			if err := os.WriteFile(filepath.Join(dir, file), parent, 0o644); err != nil {
				return fmt.Errorf("setting %s of %s: %w", file, dir, err)
			}
		}
	}
	return nil
}

// join moves a process (all its threads) into sub in every hierarchy.
func (g cgroupSet) join(sub string, pid int) error {
	for _, h := range g.hierarchies {
		procs := filepath.Join(h, g.root, sub, "cgroup.procs")
		if err := os.WriteFile(procs, []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", procs, err)
		}
	}
	return nil
}

// dirs lists the cgroup's folders in every hierarchy, deepest first.
func (g cgroupSet) dirs() []string {
	var dirs []string
	for _, h := range g.hierarchies {
		_ = filepath.WalkDir(filepath.Join(h, g.root), func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	return dirs
}

// pids lists the processes in the cgroup or below it, in any hierarchy.
func (g cgroupSet) pids() []int {
	seen := map[int]bool{}
	var pids []int
	for _, dir := range g.dirs() {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && !seen[pid] {
				seen[pid] = true
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// remove deletes the cgroup's folders, which must hold no process any more.
func (g cgroupSet) remove() error {
	var errs []error
	for _, dir := range g.dirs() {
		if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing cgroup %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

// exists reports whether any of the cgroup's folders is left.
func (g cgroupSet) exists() bool { return len(g.dirs()) > 0 }

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
