package realnode

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// spawn starts cmd from one OS thread that lives as long as the process. Pdeathsig is
// delivered when the thread that forked a child ends, not the process: inNetns throws
// threads away, and a goroutine that locks itself to a thread may land on the very
// thread an earlier exec.Cmd.Start forked from, so a daemon started from an ordinary
// goroutine could be killed in the middle of a test.
func spawn(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	spawner() <- func() { errc <- cmd.Start() }
	return <-errc
}

var spawner = sync.OnceValue(func() chan<- func() {
	ch := make(chan func())
	go func() {
		runtime.LockOSThread()
		for fn := range ch {
			fn()
		}
	}()
	return ch
})

// hostPath is every daemon's PATH: containerd finds runc and its shim there, kube-proxy
// iptables and conntrack, the CNI plugins ip tools.
const hostPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// daemon is one of the cluster's processes, started in the cluster's network namespace
// (nsenter --net, which keeps the host's mounts: ip netns exec would mount a sysfs
// without cgroups), in the cluster's daemons cgroup, with its own process group so a
// terminal's Ctrl-C reaches only the harness, and dying with the harness (Pdeathsig).
type daemon struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (c *Cluster) startDaemon(name, bin string, args ...string) (*daemon, error) {
	logPath := c.path("log", name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", logPath, err)
	}
	defer logFile.Close() // the child has its own copy
	cmd := exec.Command("nsenter", append([]string{"--net=" + c.netnsPath(), "--", bin}, args...)...)
	cmd.Env = []string{"PATH=" + hostPath, "HOME=" + c.Dir}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := spawn(cmd); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	d := &daemon{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	c.mu.Lock()
	c.daemons = append(c.daemons, d)
	c.mu.Unlock()
	// Nothing forks this early (containerd starts shims only for pods), so every
	// process of the cluster ends up in its cgroups, where teardown finds them.
	if err := c.cgroups().join(daemonsCgroup, cmd.Process.Pid); err != nil {
		return nil, fmt.Errorf("moving %s into the cluster's cgroup: %w", name, err)
	}
	c.logf("started %s (pid %d, log %s)", name, cmd.Process.Pid, logPath)
	return d, nil
}

// exited reports an ended daemon as an error, nil while it runs.
func (d *daemon) exited() error {
	select {
	case <-d.done:
		return fmt.Errorf("%s exited: %v (log %s)", d.name, d.err, d.log)
	default:
		return nil
	}
}

// stop sends SIGTERM and SIGKILL after grace, and waits for the process to be reaped.
func (d *daemon) stop(grace time.Duration) {
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(grace):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

// stopDaemons stops the named daemons at the same time.
func (c *Cluster) stopDaemons(grace time.Duration, names ...string) {
	c.mu.Lock()
	var ds []*daemon
	for _, d := range c.daemons {
		for _, n := range names {
			if d.name == n {
				ds = append(ds, d)
			}
		}
	}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, d := range ds {
		wg.Go(func() { d.stop(grace) })
	}
	wg.Wait()
}

// exitedDaemon is the first daemon that ended, as an error; nil while all run.
func (c *Cluster) exitedDaemon() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range c.daemons {
		if err := d.exited(); err != nil {
			return err
		}
	}
	return nil
}

// LogTails returns the last lines of every daemon's log (DIR/log), for a failure report.
func (c *Cluster) LogTails(lines int) string {
	logs, _ := filepath.Glob(c.path("log", "*.log"))
	sort.Strings(logs)
	var b strings.Builder
	for _, l := range logs {
		fmt.Fprintf(&b, "--- last lines of %s\n%s\n", l, tail(l, lines))
	}
	return b.String()
}

func tail(path string, lines int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var last []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		last = append(last, sc.Text())
		if len(last) > lines {
			last = last[1:]
		}
	}
	return strings.Join(last, "\n")
}

// procState is a process's state letter from /proc/PID/stat ('Z' for a zombie) and its
// start time in clock ticks since boot (which tells a reused pid apart); ok is false
// when the process is gone.
func procState(pid int) (state byte, start uint64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// The command name, in parentheses, may itself hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 {
		return 0, 0, false
	}
	start, _ = strconv.ParseUint(fields[19], 10, 64)
	return fields[0][0], start, true
}

// alive reports whether pid runs. A zombie does not: this machine's init reaps
// orphans only every few seconds, and kill -0 succeeds on a zombie until then.
func alive(pid int) bool {
	state, _, ok := procState(pid)
	return ok && state != 'Z'
}
