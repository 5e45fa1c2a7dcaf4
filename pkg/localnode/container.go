//go:build linux

package localnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/exo-in-go/exo/pkg/localnode/internal/shim"
)

// containerRuntime is one container of a pod and its succession of instances
// (one per start).
type containerRuntime struct {
	p       *podRuntime
	name    string
	init    bool
	sidecar bool

	// Guarded by p.mu.
	spec      *corev1.Container
	status    corev1.ContainerStatus
	inst      *instance
	started   bool
	ready     bool
	instances int // instances started, including those before a localnode restart

	startedCh   chan struct{} // closed at the first start (sidecars)
	startedOnce sync.Once

	backoffN     int
	configDelay  time.Duration
	lastInstance *instance
}

// instance is one run of a container.
type instance struct {
	proc      *shim.Process
	log       *logFile
	env       *envList
	dir       string
	rootfs    string
	mounts    []string
	mapping   ImageMapping
	tty       *os.File // terminal master when the container has tty: true
	ttyMu     sync.Mutex
	ttyClosed bool
	stdin     *os.File // write end of the container's stdin when stdin: true
	restart   int
	startedAt time.Time
	pumps     sync.WaitGroup

	stopProbes context.CancelFunc

	subMu sync.Mutex
	subs  map[*subscriber]struct{}
}

func newContainerRuntime(p *podRuntime, spec *corev1.Container, init bool, prev corev1.ContainerStatus) *containerRuntime {
	c := &containerRuntime{
		p:         p,
		name:      spec.Name,
		init:      init,
		sidecar:   init && spec.RestartPolicy != nil && *spec.RestartPolicy == corev1.ContainerRestartPolicyAlways,
		spec:      spec.DeepCopy(),
		startedCh: make(chan struct{}),
	}
	c.status = corev1.ContainerStatus{
		Name:  spec.Name,
		Image: spec.Image,
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: ReasonContainerCreating}},
	}
	if init {
		c.status.State.Waiting.Reason = ReasonPodInitializing
	}
	// A pod that ran before localnode restarted: its containers are started
	// again, which counts as a restart.
	if prev.Name != "" && (prev.State.Running != nil || prev.State.Terminated != nil || prev.LastTerminationState.Terminated != nil) {
		c.instances = int(prev.RestartCount) + 1
		c.status.RestartCount = prev.RestartCount
		if prev.State.Terminated != nil {
			c.status.LastTerminationState.Terminated = prev.State.Terminated
		} else if prev.State.Running != nil {
			c.status.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{
				ExitCode: 137, Reason: "Unknown", Message: "localnode restarted",
				StartedAt: prev.State.Running.StartedAt, FinishedAt: metav1.Now(),
			}
		}
	}
	return c
}

func (c *containerRuntime) imageProblem() (string, string) {
	return imageProblem(c.p.n.opts.ImageMap, c.spec)
}

func (c *containerRuntime) setWaitingLocked(reason, message string) {
	c.status.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}}
}

func (c *containerRuntime) setWaiting(reason, message string) {
	c.p.mu.Lock()
	c.setWaitingLocked(reason, message)
	c.p.mu.Unlock()
	c.p.changed()
}

func (c *containerRuntime) statusLocked() corev1.ContainerStatus {
	s := *c.status.DeepCopy()
	s.Image = c.spec.Image
	s.ImageID = "localnode://" + c.spec.Image
	if m, ok := c.p.n.opts.ImageMap.Lookup(c.spec.Image); ok && m.Binary != "" {
		s.ImageID = "localnode://" + m.Binary
	}
	s.Ready = c.readyLocked()
	if !c.init || c.sidecar {
		s.Started = ptr.To(c.inst != nil && c.started)
	}
	return s
}

func (c *containerRuntime) readyLocked() bool {
	return c.inst != nil && c.started && c.ready
}

func (c *containerRuntime) initDoneLocked() bool {
	if c.sidecar {
		return c.inst != nil && c.started
	}
	t := c.status.State.Terminated
	return t != nil && t.ExitCode == 0
}

func (c *containerRuntime) event(eventType, reason, message string) {
	c.p.n.event(c.p.current(), c, eventType, reason, message)
}

func (c *containerRuntime) rootfs() string {
	return filepath.Join(c.p.dir, "containers", c.name, "rootfs")
}

func (c *containerRuntime) logDir() string {
	return filepath.Join(c.p.dir, "logs", c.name)
}

func (c *containerRuntime) logPath(restart int) string {
	return filepath.Join(c.logDir(), strconv.Itoa(restart)+".log")
}

type runResult struct {
	exitCode  int
	configErr bool
	ranFor    time.Duration
}

// supervise runs the container again and again as its restart policy says,
// with the kubelet's exponential back-off, until it is done or ctx ends.
func (c *containerRuntime) supervise(ctx context.Context) {
	for {
		res := c.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if res.configErr {
			if !sleepCtx(ctx, c.configBackoff()) {
				return
			}
			continue
		}
		policy := c.p.restartPolicy()
		if c.sidecar {
			policy = corev1.RestartPolicyAlways
		}
		switch {
		case policy == corev1.RestartPolicyNever:
			return
		case policy == corev1.RestartPolicyOnFailure && res.exitCode == 0:
			return
		}
		if !c.backOff(ctx, res) {
			return
		}
	}
}

// configBackoff paces retries of a container whose configuration cannot be
// resolved yet (a missing Secret): 1s, 2s, 4s… up to 20s.
func (c *containerRuntime) configBackoff() time.Duration {
	if c.configDelay == 0 {
		c.configDelay = time.Second
	} else {
		c.configDelay = min(2*c.configDelay, 20*time.Second)
	}
	return c.configDelay
}

// backOff waits before a restart: base, 2×base… up to the maximum, reset when
// the last instance ran longer than twice the maximum.
func (c *containerRuntime) backOff(ctx context.Context, res runResult) bool {
	base, maxDelay := c.p.n.opts.RestartBackoff, c.p.n.opts.MaxRestartBackoff
	if res.ranFor > 2*maxDelay {
		c.backoffN = 0
	}
	d := base << c.backoffN
	if d > maxDelay || d <= 0 {
		d = maxDelay
	} else {
		c.backoffN++
	}
	pod := c.p.current()
	msg := fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", d, c.name, pod.Name, pod.Namespace, pod.UID)
	c.p.mu.Lock()
	last := c.status.State.Terminated
	c.status.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: ReasonCrashLoopBackOff, Message: msg}}
	if last != nil {
		c.status.LastTerminationState = corev1.ContainerState{Terminated: last}
	}
	c.p.mu.Unlock()
	c.p.changed()
	c.event(corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container "+c.name+" in pod "+pod.Name)
	return sleepCtx(ctx, d)
}

// runOnce starts one instance and waits for it to end.
func (c *containerRuntime) runOnce(ctx context.Context) runResult {
	p := c.p
	n := p.n
	p.mu.Lock()
	spec := c.spec.DeepCopy()
	pod := p.pod.DeepCopy()
	p.mu.Unlock()

	mapping, ok := n.opts.ImageMap.Lookup(spec.Image)
	if !ok {
		msg := fmt.Sprintf("no binary mapped for image %q", spec.Image)
		c.setWaiting(ReasonErrImagePull, msg)
		c.event(corev1.EventTypeWarning, "Failed", msg)
		return runResult{configErr: true}
	}
	rootfs := c.rootfs()
	var mountPaths []string
	for _, m := range spec.VolumeMounts {
		mountPaths = append(mountPaths, path.Clean("/"+m.MountPath))
	}
	ec := &envContext{
		pod: pod, container: spec, podIP: p.ipString(), hostIP: hostIP, rootfs: rootfs, mounts: mountPaths,
		mapping: mapping, tty: spec.TTY, apiHost: n.apiHost, apiPort: n.apiPort, nodeName: n.opts.NodeName,
		allocatable: n.allocatable,
	}
	configFail := func(reason string, err error) runResult {
		c.setWaiting(reason, err.Error())
		c.event(corev1.EventTypeWarning, "Failed", "Error: "+err.Error())
		return runResult{configErr: true}
	}
	env, err := n.resolveEnv(ctx, ec)
	if err != nil {
		return configFail(ReasonCreateContainerConfigError, err)
	}
	if _, err := p.mountVolumes(spec, rootfs, env); err != nil {
		return configFail(ReasonCreateContainerConfigError, err)
	}
	argv, err := containerArgv(spec, mapping, env, ec)
	if err != nil {
		return configFail(ReasonCreateContainerError, err)
	}
	bin, err := resolveExecutable(argv[0], mapping, env, ec)
	if err != nil {
		return configFail(ReasonCreateContainerError, err)
	}
	dir := rootfs
	if spec.WorkingDir != "" {
		dir = filepath.Join(rootfs, path.Clean("/"+spec.WorkingDir))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return configFail(ReasonCreateContainerError, err)
		}
	}

	p.mu.Lock()
	restart := c.instances
	if c.instances > 0 {
		c.status.RestartCount = int32(c.instances)
	}
	p.mu.Unlock()
	if err := os.MkdirAll(c.logDir(), 0o755); err != nil {
		return configFail(ReasonCreateContainerError, err)
	}
	// Keep the current and the previous instance's logs, as the kubelet does.
	if old, _ := filepath.Glob(filepath.Join(c.logDir(), "*.log*")); len(old) > 0 {
		for _, f := range old {
			base := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(f), ".1"), ".log")
			if k, err := strconv.Atoi(base); err == nil && k < restart-1 {
				os.Remove(f)
			}
		}
	}
	logf, err := createLogFile(c.logPath(restart), n.opts.MaxLogBytes)
	if err != nil {
		return configFail(ReasonCreateContainerError, err)
	}

	inst := &instance{
		log: logf, env: env, dir: dir, rootfs: rootfs, mounts: mountPaths, mapping: mapping,
		restart: restart, subs: map[*subscriber]struct{}{},
	}
	spawn := shim.Spec{Path: bin, Argv: argv, Env: env.Environ(), Dir: dir, TTY: spec.TTY}
	var closeAfterStart []*os.File
	if spec.TTY {
		master, slave, err := pty.Open()
		if err != nil {
			logf.close()
			return configFail(ReasonCreateContainerError, err)
		}
		_ = pty.Setsize(master, &pty.Winsize{Rows: 24, Cols: 80})
		spawn.Stdin, spawn.Stdout, spawn.Stderr = slave, slave, slave
		closeAfterStart = append(closeAfterStart, slave)
		inst.tty = master
		inst.pumps.Add(1)
		go inst.pump(master, "stdout")
	} else {
		outR, outW, _ := os.Pipe()
		errR, errW, _ := os.Pipe()
		spawn.Stdout, spawn.Stderr = outW, errW
		closeAfterStart = append(closeAfterStart, outW, errW)
		if spec.Stdin {
			inR, inW, _ := os.Pipe()
			spawn.Stdin = inR
			inst.stdin = inW
			closeAfterStart = append(closeAfterStart, inR)
		}
		inst.pumps.Add(2)
		go inst.pump(outR, "stdout")
		go inst.pump(errR, "stderr")
	}
	startedAt := time.Now()
	proc, err := shim.Start(spawn)
	for _, f := range closeAfterStart {
		f.Close()
	}
	containerID := fmt.Sprintf("localnode://%s/%s/%d", pod.UID, c.name, restart)
	if err != nil {
		inst.pumps.Wait()
		inst.closeIO()
		logf.close()
		var se *shim.StartError
		msg := err.Error()
		if errors.As(err, &se) {
			msg = se.Msg
		}
		p.mu.Lock()
		c.instances++
		c.status.ContainerID = containerID
		c.status.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: 128, Reason: ReasonStartError, Message: msg,
			StartedAt: metav1.NewTime(startedAt), FinishedAt: metav1.Now(), ContainerID: containerID,
		}}
		p.mu.Unlock()
		p.changed()
		c.event(corev1.EventTypeWarning, "Failed", "Error: "+msg)
		return runResult{exitCode: 128}
	}
	inst.proc = proc
	inst.startedAt = startedAt
	probeCtx, stopProbes := context.WithCancel(ctx)
	inst.stopProbes = stopProbes

	p.mu.Lock()
	c.instances++
	c.inst = inst
	c.lastInstance = inst
	c.started = spec.StartupProbe == nil
	c.ready = false
	c.status.ContainerID = containerID
	c.status.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(startedAt)}}
	stopping := p.stopping
	p.mu.Unlock()
	if stopping {
		proc.Kill()
	}
	n.log.Debug("container started", "pod", p.key, "container", c.name, "restart", restart, "pid", proc.Pid, "argv", argv)
	c.event(corev1.EventTypeNormal, "Started", "Started container "+c.name)
	if c.started {
		c.startedOnce.Do(func() { close(c.startedCh) })
	}
	p.changed()
	go c.runProbes(probeCtx, inst, spec)

	<-proc.Done()
	stopProbes()
	inst.pumps.Wait()
	res := proc.Result()
	logf.close()
	inst.closeIO()
	finished := time.Now()

	n.log.Debug("container ended", "pod", p.key, "container", c.name, "restart", restart, "exitCode", res.ExitCode, "signal", int(res.Signal))
	term := &corev1.ContainerStateTerminated{
		ExitCode: int32(res.ExitCode), Reason: "Completed",
		StartedAt: metav1.NewTime(startedAt), FinishedAt: metav1.NewTime(finished), ContainerID: containerID,
	}
	if res.ExitCode != 0 {
		term.Reason = "Error"
	}
	if res.Signal != 0 {
		term.Signal = int32(res.Signal)
	}
	if res.ExitCode != 0 && spec.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError {
		term.Message = lastLogLines(c.logPath(restart), 80, 2048)
	}
	p.mu.Lock()
	c.inst = nil
	c.ready = false
	c.status.State = corev1.ContainerState{Terminated: term}
	p.mu.Unlock()
	p.changed()
	return runResult{exitCode: res.ExitCode, ranFor: finished.Sub(startedAt)}
}

// killInstance kills the running instance (liveness failure, image change);
// supervise decides what comes next.
func (c *containerRuntime) killInstance() {
	c.p.mu.Lock()
	inst := c.inst
	c.p.mu.Unlock()
	if inst != nil {
		grace := c.p.gracePeriod(nil)
		inst.proc.Terminate()
		go func() {
			select {
			case <-inst.proc.Done():
			case <-time.After(grace):
				inst.proc.Kill()
			}
		}()
	}
}

// containerArgv builds argv by Kubernetes' entrypoint rules, expanding
// $(VAR) and mapping mount paths.
func containerArgv(spec *corev1.Container, m ImageMapping, env *envList, ec *envContext) ([]string, error) {
	var argv []string
	exp := func(ss []string) []string {
		out := make([]string, len(ss))
		for i, s := range ss {
			out[i] = ec.rewrite(expand(s, env.mapping()))
		}
		return out
	}
	switch {
	case len(spec.Command) > 0:
		argv = append(exp(spec.Command), exp(spec.Args)...)
	case m.Binary == "":
		return nil, fmt.Errorf("image %q is mapped without a binary and the container sets no command", spec.Image)
	case len(spec.Args) > 0:
		argv = append([]string{m.Binary}, exp(spec.Args)...)
	default:
		argv = append([]string{m.Binary}, m.Args...)
	}
	return argv, nil
}

// resolveExecutable finds the host executable for a command: through the
// mapping's commands, as a (mount-mapped) path, or in the container's PATH.
func resolveExecutable(name string, m ImageMapping, env *envList, ec *envContext) (string, error) {
	if host, ok := m.Commands[name]; ok {
		return host, nil
	}
	if strings.Contains(name, "/") {
		if host, ok := m.Commands[path.Base(name)]; ok && !fileExists(name) {
			return host, nil
		}
		return name, nil
	}
	pathEnv, _ := env.Get("PATH")
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		cand := filepath.Join(dir, name)
		if executable(cand) == nil {
			return cand, nil
		}
	}
	return "", fmt.Errorf("exec: %q: executable file not found in $PATH (%s)", name, pathEnv)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func lastLogLines(path string, lines, maxBytes int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var entries []logEntry
	for _, l := range strings.SplitAfter(string(data), "\n") {
		if e, ok := parseLogLine([]byte(l)); ok {
			entries = append(entries, e)
		}
	}
	var b strings.Builder
	for _, e := range tailEntries(entries, lines) {
		b.Write(e.text)
		if !e.partial {
			b.WriteByte('\n')
		}
	}
	s := b.String()
	if len(s) > maxBytes {
		s = s[len(s)-maxBytes:]
	}
	return s
}

// subscriber receives a container's output (kubectl attach).
type subscriber struct {
	ch   chan chunk
	once sync.Once
}

type chunk struct {
	stream string
	data   []byte
}

func (s *subscriber) close() { s.once.Do(func() { close(s.ch) }) }

func (inst *instance) subscribe() *subscriber {
	s := &subscriber{ch: make(chan chunk, 256)}
	inst.subMu.Lock()
	inst.subs[s] = struct{}{}
	inst.subMu.Unlock()
	return s
}

func (inst *instance) unsubscribe(s *subscriber) {
	inst.subMu.Lock()
	delete(inst.subs, s)
	inst.subMu.Unlock()
	s.close()
}

// pump copies one output stream of the container to its log and to attached
// clients. A client that cannot keep up is dropped rather than slowing the
// container down.
func (inst *instance) pump(r *os.File, stream string) {
	defer inst.pumps.Done()
	defer func() {
		if r == inst.tty {
			inst.ttyMu.Lock()
			inst.ttyClosed = true
			r.Close()
			inst.ttyMu.Unlock()
		} else {
			r.Close()
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			data := append([]byte(nil), buf[:n]...)
			inst.log.write(stream, data)
			inst.subMu.Lock()
			for s := range inst.subs {
				select {
				case s.ch <- chunk{stream: stream, data: data}:
				default:
					delete(inst.subs, s)
					s.close()
				}
			}
			inst.subMu.Unlock()
		}
		if err != nil {
			// EOF, or EIO from a terminal whose last user is gone.
			if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.EIO) && !errors.Is(err, os.ErrClosed) {
				inst.log.write("stderr", []byte("localnode: reading output: "+err.Error()+"\n"))
			}
			break
		}
	}
	inst.subMu.Lock()
	for s := range inst.subs {
		delete(inst.subs, s)
		s.close()
	}
	inst.subMu.Unlock()
}

func (inst *instance) closeIO() {
	if inst.stdin != nil {
		inst.stdin.Close()
	}
}

// resize sets the size of the container's terminal while it is open.
func (inst *instance) resize(rows, cols uint16) {
	inst.ttyMu.Lock()
	defer inst.ttyMu.Unlock()
	if inst.tty != nil && !inst.ttyClosed {
		_ = pty.Setsize(inst.tty, &pty.Winsize{Rows: rows, Cols: cols})
	}
}
