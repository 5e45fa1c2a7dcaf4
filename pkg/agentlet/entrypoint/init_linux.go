package entrypoint

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// forwarded are the signals Init passes on to its child: what the kubelet,
// `kill` and a terminal send to a container. SIGCHLD is Init's own.
var forwarded = []os.Signal{
	unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT,
	unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH, unix.SIGCONT,
}

// InitOptions tune Init.
type InitOptions struct {
	// Log receives the orphans reaped (debug) and signals that could not be
	// forwarded (warn).
	Log *slog.Logger
	// OnReap, when set, is called for every process Init reaps that is not its
	// child (an orphan of the runtime CLI), from Init's goroutine.
	OnReap func(pid int, status unix.WaitStatus)
}

// Init is what the agentlet does when it is its container's PID 1: it starts
// argv as its only child (the agentlet proper, which serves and runs the CLI),
// forwards signals to it, reaps every orphan the CLI leaves behind (a PID 1
// that does not reap fills the process table with zombies, and the kernel
// gives PID 1 no default signal handlers), and exits with the child's status
// when the child exits. Like tini, it does nothing else, so it needs no
// configuration and stays out of the way of the child's own process handling.
// It also marks itself a child subreaper, which makes it work the same when it
// is not PID 1 (and testable).
func Init(argv, env []string, opts InitOptions) int {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		log.Warn("Cannot become a child subreaper; orphans of the runtime are reaped only when this is PID 1", "err", err)
	}
	// Subscribe before starting the child, so neither its exit nor an early
	// SIGTERM from the kubelet can be missed.
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, append([]os.Signal{unix.SIGCHLD}, forwarded...)...)
	defer signal.Stop(sigs)

	proc, err := os.StartProcess(argv[0], argv, &os.ProcAttr{
		Env:   env,
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "agentlet: start %s: %v\n", argv[0], err)
		return 127
	}
	child := proc.Pid
	// Init reaps with wait4(-1), never with proc.Wait, so the handle is only
	// released.
	_ = proc.Release()

	for sig := range sigs {
		if sig != unix.SIGCHLD {
			if err := unix.Kill(child, sig.(syscall.Signal)); err != nil && err != unix.ESRCH {
				log.Warn("Cannot forward a signal to the agentlet", "signal", sig.String(), "err", err)
			}
			continue
		}
		if code, done := reap(child, opts.OnReap, log); done {
			return code
		}
	}
	return 0 // not reached: sigs is never closed
}

// reap collects every exited process (signals coalesce, so one SIGCHLD may
// stand for many) and reports the child's exit code once it is among them.
func reap(child int, onReap func(int, unix.WaitStatus), log *slog.Logger) (code int, childExited bool) {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return code, childExited
		}
		if pid != child {
			log.Debug("Reaped an orphan", "pid", pid, "status", int(ws))
			if onReap != nil {
				onReap(pid, ws)
			}
			continue
		}
		childExited = true
		switch {
		case ws.Exited():
			code = ws.ExitStatus()
		case ws.Signaled():
			code = 128 + int(ws.Signal())
		default:
			code = 1
		}
	}
}

// HideEnvironment makes this process non-dumpable. Its /proc entries, among
// them environ with the agentlet's token, then belong to root, so the runtime
// CLI, which runs as the same user in the same container, cannot read them;
// the CLI's own environment never holds the token (run.ChildEnv). execve
// resets the attribute, so the CLI itself is unaffected.
func HideEnvironment() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE): %w", err)
	}
	return nil
}
