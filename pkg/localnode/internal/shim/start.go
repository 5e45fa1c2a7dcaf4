//go:build linux

package shim

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Spec describes a workload to start under a shim.
type Spec struct {
	// Path is the executable (absolute, or relative to Dir); Argv its arguments
	// including argv[0].
	Path string
	Argv []string
	Env  []string
	Dir  string
	// Stdin, Stdout and Stderr are handed to the workload; nil means /dev/null.
	Stdin, Stdout, Stderr *os.File
	// TTY says the standard streams are a terminal: the shim then leads a new
	// session with it as the controlling terminal, so job control and ^C work.
	TTY bool
}

// Result is how a workload ended.
type Result struct {
	// ExitCode is the exit status, or 128+signal when Signal is set.
	ExitCode int
	// Signal is the signal that ended the main process, 0 if it exited.
	Signal syscall.Signal
}

// Process is a running workload.
type Process struct {
	// Pid is the workload's main process (not the shim).
	Pid int

	cmd    *exec.Cmd
	ctl    *os.File
	ctlMu  sync.Mutex
	done   chan struct{}
	result Result
}

// StartError is returned when the workload could not be executed (missing
// binary, permissions…); the shim's message says why.
type StartError struct{ Msg string }

func (e *StartError) Error() string { return e.Msg }

// Start runs spec under a new shim and returns once the workload has started
// (or failed to).
func Start(spec Spec) (*Process, error) {
	if spec.Path == "" || len(spec.Argv) == 0 {
		return nil, errors.New("no command")
	}
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	stR, stW, err := os.Pipe()
	if err != nil {
		ctlR.Close()
		ctlW.Close()
		return nil, err
	}
	cmd := &exec.Cmd{
		Path:       "/proc/self/exe",
		Args:       append([]string{Argv0, spec.Path}, spec.Argv...),
		Env:        append(append([]string{}, spec.Env...), EnvMarker+"=1"),
		Dir:        spec.Dir,
		ExtraFiles: []*os.File{ctlR, stW},
		SysProcAttr: &syscall.SysProcAttr{
			// A catchable signal: the shim cleans up before it exits.
			Pdeathsig: syscall.SIGTERM,
		},
	}
	// Assigning a nil *os.File to the io.Reader/io.Writer fields would make
	// them non-nil interfaces.
	if spec.Stdin != nil {
		cmd.Stdin = spec.Stdin
	}
	if spec.Stdout != nil {
		cmd.Stdout = spec.Stdout
	}
	if spec.Stderr != nil {
		cmd.Stderr = spec.Stderr
	}
	if spec.TTY {
		cmd.SysProcAttr.Setsid = true
		cmd.SysProcAttr.Setctty = true
		cmd.SysProcAttr.Ctty = 0
	} else {
		cmd.SysProcAttr.Setpgid = true
	}
	err = spawn(cmd)
	ctlR.Close()
	stW.Close()
	if err != nil {
		ctlW.Close()
		stR.Close()
		return nil, err
	}
	p := &Process{cmd: cmd, ctl: ctlW, done: make(chan struct{})}
	status := bufio.NewReader(stR)
	first, _ := status.ReadString('\n')
	first = strings.TrimSpace(first)
	switch {
	case strings.HasPrefix(first, "started "):
		p.Pid, _ = strconv.Atoi(strings.TrimPrefix(first, "started "))
	case strings.HasPrefix(first, "failed "):
		_ = cmd.Wait()
		ctlW.Close()
		stR.Close()
		return nil, &StartError{Msg: strings.TrimPrefix(first, "failed ")}
	default:
		werr := cmd.Wait()
		ctlW.Close()
		stR.Close()
		return nil, fmt.Errorf("process supervisor ended before starting the workload: %v", werr)
	}
	go func() {
		// The shim's last word ("exit N" or "signal N") comes once every
		// process of the workload has ended; that is when the workload is
		// done, even if the shim itself takes a moment to exit.
		var last string
		final := false
		for !final {
			line, err := status.ReadString('\n')
			if line = strings.TrimSpace(line); line != "" {
				last = line
				final = strings.HasPrefix(line, "exit ") || strings.HasPrefix(line, "signal ")
			}
			if err != nil {
				break
			}
		}
		if final {
			p.setResult(last)
			close(p.done)
		}
		werr := cmd.Wait()
		stR.Close()
		p.ctlMu.Lock()
		ctlW.Close()
		p.ctl = nil
		p.ctlMu.Unlock()
		if final {
			return
		}
		// The shim itself was killed (SIGKILL from outside): its workload
		// died with it through Pdeathsig.
		p.result = Result{ExitCode: 137, Signal: syscall.SIGKILL}
		var ee *exec.ExitError
		if errors.As(werr, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Exited() {
				p.result = Result{ExitCode: ws.ExitStatus()}
			}
		}
		close(p.done)
	}()
	return p, nil
}

func (p *Process) setResult(last string) {
	switch {
	case strings.HasPrefix(last, "exit "):
		p.result.ExitCode, _ = strconv.Atoi(strings.TrimPrefix(last, "exit "))
	case strings.HasPrefix(last, "signal "):
		n, _ := strconv.Atoi(strings.TrimPrefix(last, "signal "))
		p.result = Result{ExitCode: 128 + n, Signal: syscall.Signal(n)}
	}
}

// Terminate sends SIGTERM to the workload's main process.
func (p *Process) Terminate() { p.control(CtlTerm) }

// Kill kills every process of the workload.
func (p *Process) Kill() { p.control(CtlKill) }

func (p *Process) control(b byte) {
	p.ctlMu.Lock()
	defer p.ctlMu.Unlock()
	if p.ctl != nil {
		_, _ = p.ctl.Write([]byte{b})
	}
}

// Done is closed when the workload and everything it started have ended.
func (p *Process) Done() <-chan struct{} { return p.done }

// Result is valid after Done is closed.
func (p *Process) Result() Result {
	<-p.done
	return p.result
}

// ShimPid is the supervisor's process ID.
func (p *Process) ShimPid() int { return p.cmd.Process.Pid }

type spawnReq struct {
	cmd *exec.Cmd
	err chan error
}

var (
	spawnOnce sync.Once
	spawnCh   chan spawnReq
)

// spawn starts cmd from one OS thread that lives as long as the process:
// Pdeathsig fires when the thread that forked a child ends, not the process, and
// the Go runtime may end threads.
func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnCh = make(chan spawnReq)
		go func() {
			runtime.LockOSThread()
			for r := range spawnCh {
				r.err <- r.cmd.Start()
			}
		}()
	})
	r := spawnReq{cmd: cmd, err: make(chan error, 1)}
	spawnCh <- r
	return <-r.err
}
