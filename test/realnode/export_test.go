package realnode

import (
	"os/exec"
	"testing"
)

// Leftovers is what of c is still on the machine: empty after Stop.
func Leftovers(c *Cluster) []string { return leftovers(c.Name, c.Dir) }

// Crash leaves c as a killed test binary would: its daemons die (their Pdeathsig), its
// owner is gone, and its pods, shims, mounts, cgroups, network namespace and registry
// entry stay for the next Start to clean up. Stop does nothing afterwards.
func Crash(t testing.TB, c *Cluster) {
	t.Helper()
	c.stopOnce.Do(func() {})
	c.mu.Lock()
	c.stopped = true
	forwarders, daemons := c.forwarders, c.daemons
	c.mu.Unlock()
	for _, f := range forwarders {
		f.Close()
	}
	for _, d := range daemons {
		_ = d.cmd.Process.Kill()
		<-d.done
	}
	// An owner that no longer runs: a process that has exited (and a start time no
	// process has, should its pid be reused).
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	r := ownRecord(c.Name, c.Dir)
	r.OwnerPID, r.OwnerStart, r.OwnsDir = gone.Process.Pid, 0, c.ownsDir
	if err := r.write(); err != nil {
		t.Fatal(err)
	}
}

// Shared are the machine-wide paths clusters create and the last one removes.
func Shared() []string { return append([]string{registryDir}, sharedDirs...) }
