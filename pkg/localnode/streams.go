//go:build linux

package localnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"

	"github.com/creack/pty"
	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	utilexec "k8s.io/utils/exec"

	"github.com/exo-in-go/exo/pkg/localnode/internal/shim"
)

// The kubelet API's streaming calls: exec, attach, logs and port-forward.

func (n *Node) runningInstance(namespace, podName, container string) (*podRuntime, *containerRuntime, *instance, error) {
	p := n.provider.lookup(namespace, podName)
	if p == nil {
		return nil, nil, nil, errdefs.NotFoundf("pod %s/%s is not on node %s", namespace, podName, n.opts.NodeName)
	}
	c := p.container(container)
	if c == nil {
		return nil, nil, nil, errdefs.NotFoundf("container %q not found in pod %s/%s", container, namespace, podName)
	}
	p.mu.Lock()
	inst := c.inst
	p.mu.Unlock()
	if inst == nil {
		return nil, nil, nil, errdefs.InvalidInputf("container %q in pod %s/%s is not running", container, namespace, podName)
	}
	return p, c, inst, nil
}

// RunInContainer runs a command in a container's environment (working
// directory, environment, mount mapping), under the pod so that deleting the
// pod ends it. The command's exit code reaches the client.
func (n *Node) RunInContainer(ctx context.Context, namespace, podName, container string, cmd []string, attach api.AttachIO) error {
	p, _, inst, err := n.runningInstance(namespace, podName, container)
	if err != nil {
		return err
	}
	if len(cmd) == 0 {
		return errdefs.InvalidInput("no command")
	}
	argv := make([]string, len(cmd))
	for i, s := range cmd {
		argv[i] = rewritePaths(s, inst.mounts, inst.rootfs)
	}
	ec := &envContext{mounts: inst.mounts, rootfs: inst.rootfs}
	bin, err := resolveExecutable(argv[0], inst.mapping, inst.env, ec)
	if err != nil {
		// What a container runtime reports: exit code 127 would need a shell.
		return err
	}
	env := inst.env.Environ()
	spec := shim.Spec{Path: bin, Argv: argv, Env: env, Dir: inst.dir, TTY: attach.TTY()}

	var wg sync.WaitGroup       // output copies
	var resizeWG sync.WaitGroup // the resize loop, which uses the terminal's fd
	var closeAfterStart []*os.File
	var stdinW *os.File
	var master *os.File
	if attach.TTY() {
		if _, ok := inst.env.Get("TERM"); !ok {
			spec.Env = append(spec.Env, "TERM=xterm")
		}
		m, slave, err := pty.Open()
		if err != nil {
			return err
		}
		master = m
		_ = pty.Setsize(master, &pty.Winsize{Rows: 24, Cols: 80})
		spec.Stdin, spec.Stdout, spec.Stderr = slave, slave, slave
		closeAfterStart = append(closeAfterStart, slave)
	} else {
		if attach.Stdin() != nil {
			r, w, err := os.Pipe()
			if err != nil {
				return err
			}
			spec.Stdin, stdinW = r, w
			closeAfterStart = append(closeAfterStart, r)
		}
		for _, s := range []struct {
			w   io.Writer
			dst **os.File
		}{{writerOrNil(attach.Stdout()), &spec.Stdout}, {writerOrNil(attach.Stderr()), &spec.Stderr}} {
			if s.w == nil {
				continue
			}
			r, w, err := os.Pipe()
			if err != nil {
				return err
			}
			*s.dst = w
			closeAfterStart = append(closeAfterStart, w)
			wg.Add(1)
			go func(dst io.Writer) {
				defer wg.Done()
				_, _ = io.Copy(dst, r)
				r.Close()
			}(s.w)
		}
	}

	p.mu.Lock()
	if p.stopping {
		p.mu.Unlock()
		for _, f := range closeAfterStart {
			f.Close()
		}
		return errdefs.InvalidInput("pod is terminating")
	}
	proc, err := shim.Start(spec)
	if err == nil {
		p.execs[proc] = struct{}{}
	}
	p.mu.Unlock()
	for _, f := range closeAfterStart {
		f.Close()
	}
	if err != nil {
		if master != nil {
			master.Close()
		}
		if stdinW != nil {
			stdinW.Close()
		}
		wg.Wait()
		return err
	}
	defer func() {
		p.mu.Lock()
		delete(p.execs, proc)
		p.mu.Unlock()
	}()

	if master != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out := writerOrNil(attach.Stdout()); out != nil {
				_, _ = io.Copy(out, master)
			} else {
				_, _ = io.Copy(io.Discard, master)
			}
		}()
		if in := attach.Stdin(); in != nil {
			go func() { _, _ = io.Copy(master, in) }()
		}
		resizeWG.Add(1)
		go func() {
			defer resizeWG.Done()
			for {
				select {
				case sz, ok := <-attach.Resize():
					if !ok {
						return
					}
					_ = pty.Setsize(master, &pty.Winsize{Rows: sz.Height, Cols: sz.Width})
				case <-proc.Done():
					return
				}
			}
		}()
	} else if stdinW != nil {
		go func() {
			_, _ = io.Copy(stdinW, attach.Stdin())
			stdinW.Close()
		}()
	}

	select {
	case <-proc.Done():
	case <-ctx.Done():
		// The client went away: end the session.
		proc.Kill()
		<-proc.Done()
	}
	wg.Wait()
	resizeWG.Wait()
	if master != nil {
		master.Close()
	}
	if stdinW != nil {
		stdinW.Close()
	}
	res := proc.Result()
	if res.ExitCode != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", res.ExitCode), Code: res.ExitCode}
	}
	return nil
}

// writerOrNil turns a nil io.WriteCloser in an interface into a nil
// io.Writer.
func writerOrNil(w io.WriteCloser) io.Writer {
	if w == nil {
		return nil
	}
	return w
}

// AttachToContainer connects to a running container's main process: its
// output from now on, and its stdin when the container has stdin: true.
func (n *Node) AttachToContainer(ctx context.Context, namespace, podName, container string, attach api.AttachIO) error {
	p, c, inst, err := n.runningInstance(namespace, podName, container)
	if err != nil {
		return err
	}
	p.mu.Lock()
	spec := c.spec.DeepCopy()
	p.mu.Unlock()

	sub := inst.subscribe()
	defer inst.unsubscribe(sub)
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		for ch := range sub.ch {
			var w io.Writer
			if ch.stream == "stderr" {
				w = writerOrNil(attach.Stderr())
			} else {
				w = writerOrNil(attach.Stdout())
			}
			if w != nil {
				if _, err := w.Write(ch.data); err != nil {
					return
				}
			}
		}
	}()
	if in := attach.Stdin(); in != nil && spec.Stdin {
		go func() {
			switch {
			case inst.tty != nil:
				_, _ = io.Copy(inst.tty, in)
			case inst.stdin != nil:
				_, _ = io.Copy(inst.stdin, in)
				if spec.StdinOnce {
					inst.stdin.Close()
				}
			}
		}()
	}
	if inst.tty != nil && attach.Resize() != nil {
		go func() {
			for {
				select {
				case sz, ok := <-attach.Resize():
					if !ok {
						return
					}
					inst.resize(sz.Height, sz.Width)
				case <-inst.proc.Done():
					return
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	select {
	case <-inst.proc.Done():
		<-outDone
		res := inst.proc.Result()
		if res.ExitCode != 0 {
			return utilexec.CodeExitError{Err: fmt.Errorf("container exited with code %d", res.ExitCode), Code: res.ExitCode}
		}
	case <-outDone:
	case <-ctx.Done():
	}
	return nil
}

// GetContainerLogs serves a container's log (or the previous instance's), with
// follow, tailLines, sinceSeconds/sinceTime, timestamps and limitBytes.
func (n *Node) GetContainerLogs(ctx context.Context, namespace, podName, container string, opts api.ContainerLogOpts) (io.ReadCloser, error) {
	p := n.provider.lookup(namespace, podName)
	if p == nil {
		return nil, errdefs.NotFoundf("pod %s/%s is not on node %s", namespace, podName, n.opts.NodeName)
	}
	c := p.container(container)
	if c == nil {
		return nil, errdefs.NotFoundf("container %q not found in pod %s/%s", container, namespace, podName)
	}
	p.mu.Lock()
	last := c.lastInstance
	instances := c.instances
	p.mu.Unlock()
	var live *logFile
	var file string
	switch {
	case opts.Previous:
		if instances < 2 {
			return nil, errdefs.InvalidInputf("previous terminated container %q in pod %q not found", container, podName)
		}
		idx := instances - 2
		if last != nil {
			idx = last.restart - 1
		}
		file = c.logPath(idx)
	case last != nil:
		file = c.logPath(last.restart)
		live = last.log
		if _, closed, _ := live.state(); closed {
			live = nil
		}
	default:
		if instances == 0 {
			return nil, errdefs.InvalidInputf("container %q in pod %q is waiting to start", container, podName)
		}
		file = c.logPath(instances - 1)
	}
	if _, err := os.Stat(file); err != nil {
		return nil, errdefs.NotFoundf("no log for container %q in pod %q", container, podName)
	}
	r, w := io.Pipe()
	go func() {
		err := streamLogs(ctx, w, live, []string{file + ".1", file}, opts)
		w.CloseWithError(err)
	}()
	return r, nil
}

// PortForward connects a stream to a port of the pod's IP.
func (n *Node) PortForward(ctx context.Context, namespace, podName string, port int32, stream io.ReadWriteCloser) error {
	p := n.provider.lookup(namespace, podName)
	if p == nil {
		return errdefs.NotFoundf("pod %s/%s is not on node %s", namespace, podName, n.opts.NodeName)
	}
	ip := p.ipString()
	if ip == "" {
		return errdefs.InvalidInputf("pod %s/%s has no IP", namespace, podName)
	}
	defer stream.Close()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ip, strconv.Itoa(int(port))))
	if err != nil {
		return err
	}
	defer conn.Close()
	errc := make(chan error, 2)
	go func() { _, err := io.Copy(conn, stream); errc <- err }()
	go func() { _, err := io.Copy(stream, conn); errc <- err }()
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return err
}
