//go:build linux

// Package shim is the small supervisor localnode puts between itself and every
// process it runs (container processes, exec sessions, exec probes).
//
// localnode starts the shim by re-executing its own binary (/proc/self/exe) with
// argv[0] set to Argv0 and the environment variable EnvMarker set; this
// package's init function recognises that and runs the shim instead of the
// program's main (or a test binary's TestMain). Importing the package is all a
// program needs to do, which is why it has almost no dependencies: its init runs
// early.
//
// The shim:
//   - makes itself a child subreaper, so every process the workload orphans is
//     re-parented to it instead of to init;
//   - starts the workload in its own process group (the shim's), with
//     Pdeathsig, and reports "started <pid>" or "failed <reason>" on the status
//     pipe (fd 4);
//   - obeys the control pipe (fd 3): 'T' sends SIGTERM to the workload's main
//     process (what a kubelet does to a container's PID 1), 'K' kills every
//     process of the workload; end of file — localnode exited, however it
//     exited — also kills every process;
//   - when the main process ends, kills whatever it left behind (as the end of a
//     container's PID 1 ends the container) and reaps it all;
//   - reports "exit <code>" or "signal <n>" on the status pipe and exits.
//
// So no process that localnode started outlives it, not even a double-forked
// daemon that left the process group.
package shim

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

const (
	// Argv0 is the shim's argv[0].
	Argv0 = "localnode-shim"
	// EnvMarker is set in the shim's environment (and removed before the
	// workload starts).
	EnvMarker = "LOCALNODE_SHIM"

	// ControlFD is the read end of the control pipe, StatusFD the write end of
	// the status pipe, in the shim.
	ControlFD = 3
	StatusFD  = 4

	// Control bytes.
	CtlTerm = 'T'
	CtlKill = 'K'
)

func init() {
	if len(os.Args) < 3 || os.Args[0] != Argv0 || os.Getenv(EnvMarker) == "" {
		return
	}
	// The main goroutine stays on the main thread for good, so the workload's
	// Pdeathsig (which follows the thread that forked it) fires only when the
	// shim itself ends.
	runtime.LockOSThread()
	os.Exit(run(os.Args[1], os.Args[2:]))
}

type shim struct {
	self     int
	pgid     int
	sid      int
	parent   int
	mainPid  int
	status   *os.File
	killReqs chan struct{}
}

func run(path string, argv []string) int {
	s := &shim{self: os.Getpid(), parent: os.Getppid(), killReqs: make(chan struct{}, 1)}
	s.pgid, _ = unix.Getpgid(0)
	s.sid, _ = unix.Getsid(0)
	// The pipes are the shim's alone: the workload must not inherit them.
	syscall.CloseOnExec(ControlFD)
	syscall.CloseOnExec(StatusFD)
	s.status = os.NewFile(StatusFD, "status")
	control := os.NewFile(ControlFD, "control")

	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

	// Handled (not ignored) signals revert to their defaults in the workload at
	// exec, so the workload sees SIGINT, SIGTERM, SIGTSTP… normally while the
	// shim, which shares its process group and terminal, does not die or stop.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
		syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGUSR1, syscall.SIGUSR2)

	env := make([]string, 0, len(os.Environ()))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, EnvMarker+"=") {
			env = append(env, kv)
		}
	}
	// If localnode died between starting us and now, do not start anything.
	if os.Getppid() != s.parent || s.parent == 1 {
		return 1
	}
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		s.report("failed %s", strings.ReplaceAll(fmt.Sprintf("exec %q: %v", path, err), "\n", " "))
		return 128
	}
	s.mainPid = pid
	s.report("started %d", pid)

	go func() {
		buf := make([]byte, 1)
		for {
			n, err := control.Read(buf)
			if n == 1 {
				switch buf[0] {
				case CtlTerm:
					_ = unix.Kill(s.mainPid, unix.SIGTERM)
				case CtlKill:
					s.requestKill()
				}
			}
			if err != nil {
				// localnode closed the pipe or is gone.
				s.requestKill()
				return
			}
		}
	}()
	go func() {
		for range sigs {
			// Signals aimed at the process group also reach the shim; they
			// matter only when they are the Pdeathsig telling us localnode
			// died.
			if os.Getppid() != s.parent {
				s.requestKill()
			}
		}
	}()
	go func() {
		for range s.killReqs {
			s.killAll()
		}
	}()

	var mainStatus unix.WaitStatus
	mainDone := false
	for {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil { // ECHILD: nothing left
			break
		}
		if wpid == s.mainPid && !mainDone {
			mainDone, mainStatus = true, ws
		}
		if mainDone {
			// The container ends with its main process: kill the rest.
			s.killAll()
		}
	}
	// Everything has ended: let go of the workload's streams so readers see
	// their end now, before this process has finished exiting (which takes a
	// second under the race detector).
	_ = syscall.Close(0)
	_ = syscall.Close(1)
	_ = syscall.Close(2)
	if mainStatus.Signaled() {
		s.report("signal %d", int(mainStatus.Signal()))
		return 128 + int(mainStatus.Signal())
	}
	s.report("exit %d", mainStatus.ExitStatus())
	return mainStatus.ExitStatus()
}

func (s *shim) requestKill() {
	select {
	case s.killReqs <- struct{}{}:
	default:
	}
}

func (s *shim) report(format string, args ...any) {
	_, _ = fmt.Fprintf(s.status, format+"\n", args...)
}

// killAll sends SIGKILL to the main process and to every process in the
// shim's process group, its session (when it leads one, as for a terminal) or
// re-parented to it. Processes forked meanwhile are caught by the next call,
// which the reaping loop makes after every reaped child.
func (s *shim) killAll() {
	if s.mainPid > 0 {
		_ = unix.Kill(s.mainPid, unix.SIGKILL)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == s.self {
			continue
		}
		ppid, pgrp, sid, ok := procStat(pid)
		if !ok {
			continue
		}
		if ppid == s.self || pgrp == s.pgid || (s.sid == s.self && sid == s.sid) {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// procStat reads the parent, process group and session of pid.
func procStat(pid int) (ppid, pgrp, sid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, false
	}
	// pid (comm) state ppid pgrp session ...; comm may hold spaces and ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 4 {
		return 0, 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	pgrp, _ = strconv.Atoi(f[2])
	sid, _ = strconv.Atoi(f[3])
	return ppid, pgrp, sid, true
}
