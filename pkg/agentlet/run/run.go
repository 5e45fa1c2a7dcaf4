package run

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/exo-in-go/exo/pkg/agentlet/api"
	"github.com/exo-in-go/exo/pkg/agentlet/outputlog"
	"github.com/exo-in-go/exo/pkg/asciicast"
)

// Run is one execution of the runtime.
type Run struct {
	id           string
	dir          string
	runtime      string
	argv         []string
	env          []string
	workDir      string
	timeout      time.Duration
	maxRecording int64
	output       *outputlog.Log
	log          *slog.Logger

	cmd       *exec.Cmd
	outRead   *os.File
	recording *asciicast.Writer
	castFile  *os.File

	cancelOnce    sync.Once
	cancelRequest chan struct{}
	done          chan struct{} // closed when the run is finished

	mu           sync.Mutex
	phase        api.Phase
	pid          int
	created      time.Time
	started      time.Time
	completed    time.Time
	exitCode     *int
	signal       string
	message      string
	cancelReason string
}

// start launches the process. On failure the run is marked Failed.
func (r *Run) start() (err error) {
	defer func() {
		if err != nil {
			r.finish(api.PhaseFailed, nil, "", fmt.Sprintf("could not start %q: %v", r.argv[0], err))
			r.output.Close()
			close(r.done)
		}
	}()
	stdin, err := os.Open(filepath.Join(r.dir, "stdin"))
	if err != nil {
		return fmt.Errorf("open stdin: %w", err)
	}
	defer stdin.Close() // the child has its own copy after Start

	// One pipe for stdout and stderr keeps their interleaving, as a
	// terminal would show it. Handing exec an *os.File (not an io.Writer)
	// means Wait does not wait for grandchildren that keep the pipe open;
	// we drain it ourselves after killing the group.
	outRead, outWrite, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("create output pipe: %w", err)
	}
	defer outWrite.Close()

	castFile, err := os.OpenFile(r.recordingPath(), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		outRead.Close()
		return fmt.Errorf("create recording: %w", err)
	}
	recording, err := asciicast.NewWriter(castFile, asciicast.Header{
		Width: 80, Height: 24, // runs have no terminal; players need a size
		Title: "run " + r.id,
		Env:   map[string]string{"AGENT_RUNTIME": r.runtime},
	}, asciicast.WriterOptions{MaxBytes: r.maxRecording})
	if err != nil {
		outRead.Close()
		castFile.Close()
		return err
	}

	cmd := exec.Command(r.argv[0], r.argv[1:]...)
	cmd.Env = r.env
	cmd.Dir = r.workDir
	cmd.Stdin = stdin
	cmd.Stdout = outWrite
	cmd.Stderr = outWrite
	cmd.SysProcAttr = processGroupAttr()
	if err := cmd.Start(); err != nil {
		outRead.Close()
		recording.Close()
		castFile.Close()
		return err
	}
	r.cmd, r.outRead, r.recording, r.castFile = cmd, outRead, recording, castFile
	r.mu.Lock()
	r.phase, r.pid, r.started = api.PhaseRunning, cmd.Process.Pid, time.Now()
	r.mu.Unlock()
	return nil
}

// supervise waits for the process, enforcing the timeout and cancel
// requests, then cleans up the process group and records the outcome.
func (r *Run) supervise(grace time.Duration) {
	defer close(r.done)
	pgid := r.cmd.Process.Pid // Setpgid: the child leads its own group

	copied := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.MultiWriter(r.output, r.recording.OutputWriter()), r.outRead)
		copied <- err
	}()
	exited := make(chan error, 1)
	go func() { exited <- r.cmd.Wait() }()

	timer := time.NewTimer(r.timeout)
	defer timer.Stop()
	var stoppedAs api.Phase // TimedOut or Canceled when we stopped it
	var waitErr error
	select {
	case waitErr = <-exited:
	case <-timer.C:
		stoppedAs = api.PhaseTimedOut
		waitErr = r.terminate(pgid, grace, exited)
	case <-r.cancelRequest:
		stoppedAs = api.PhaseCanceled
		waitErr = r.terminate(pgid, grace, exited)
	}

	// The run owns its process group: whatever the leader left behind
	// (background jobs, daemons) goes with it.
	if err := signalGroup(pgid, syscall.SIGKILL); err != nil {
		r.log.Warn("Could not kill the run's process group", "pgid", pgid, "err", err)
	}
	// Once every process in the group is dead the pipe reports EOF. A
	// process that left the group (setsid) could hold it open forever, so
	// give up after the grace period and close our end.
	select {
	case err := <-copied:
		if err != nil {
			r.log.Warn("Reading run output failed", "err", err)
		}
	case <-time.After(grace + time.Second):
		r.log.Warn("Run output still open after its process group was killed; a process escaped the group")
		r.outRead.Close()
		<-copied
	}
	r.outRead.Close()

	phase, exitCode, signal, message := outcome(r.cmd.ProcessState, waitErr, stoppedAs, r.timeout, r.cancelReasonText())
	r.finish(phase, exitCode, signal, message)
	if err := errors.Join(r.output.Close(), r.recording.Close(), r.castFile.Close()); err != nil {
		r.log.Warn("Closing run files failed", "err", err)
	}
}

// terminate asks the group to stop with SIGTERM and uses SIGKILL when it
// has not exited within the grace period.
func (r *Run) terminate(pgid int, grace time.Duration, exited <-chan error) error {
	if err := signalGroup(pgid, syscall.SIGTERM); err != nil {
		r.log.Warn("SIGTERM to the run's process group failed", "pgid", pgid, "err", err)
	}
	select {
	case err := <-exited:
		return err
	case <-time.After(grace):
	}
	if err := signalGroup(pgid, syscall.SIGKILL); err != nil {
		r.log.Warn("SIGKILL to the run's process group failed", "pgid", pgid, "err", err)
	}
	return <-exited
}

// outcome turns how the process ended into the run's final status.
// A process killed by a signal gets exit code 128+signal, the convention of
// shells and of Kubernetes container statuses, and the signal's name.
func outcome(state *os.ProcessState, waitErr error, stoppedAs api.Phase, timeout time.Duration, cancelReason string) (api.Phase, *int, string, string) {
	if state == nil {
		return api.PhaseFailed, nil, "", fmt.Sprintf("waiting for the process failed: %v", waitErr)
	}
	var code int
	var signal string
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code = 128 + int(ws.Signal())
		signal = unix.SignalName(ws.Signal())
	} else {
		code = state.ExitCode()
	}
	switch {
	case stoppedAs == api.PhaseTimedOut:
		return stoppedAs, &code, signal, fmt.Sprintf("the run exceeded its timeout of %s; its process group was terminated", timeout)
	case stoppedAs == api.PhaseCanceled:
		return stoppedAs, &code, signal, "canceled: " + cancelReason
	case signal != "":
		return api.PhaseFailed, &code, signal, "the process was killed by " + signal
	case code != 0:
		return api.PhaseFailed, &code, "", fmt.Sprintf("the process exited with code %d", code)
	default:
		return api.PhaseSucceeded, &code, "", ""
	}
}

func (r *Run) finish(phase api.Phase, exitCode *int, signal, message string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.phase, r.exitCode, r.signal, r.message, r.completed = phase, exitCode, signal, message, time.Now()
}

func (r *Run) cancel(reason string) {
	r.cancelOnce.Do(func() {
		r.mu.Lock()
		r.cancelReason = reason
		r.mu.Unlock()
		close(r.cancelRequest)
	})
}

func (r *Run) cancelReasonText() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cancelReason
}

func (r *Run) recordingPath() string { return filepath.Join(r.dir, "recording.cast") }

// Status returns a snapshot of the run.
func (r *Run) Status() api.Run {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := api.Run{
		ID:             r.id,
		Phase:          r.phase,
		Runtime:        r.runtime,
		Command:        abbreviate(r.argv),
		PID:            r.pid,
		ExitCode:       r.exitCode,
		Signal:         r.signal,
		CreationTime:   r.created,
		TimeoutSeconds: int64(r.timeout / time.Second),
		Message:        r.message,
		OutputBytes:    r.output.Size(),
		OutputTail:     strings.ToValidUTF8(string(r.output.Tail()), "\uFFFD"),
	}
	if !r.started.IsZero() {
		started := r.started
		st.StartTime = &started
	}
	if !r.completed.IsZero() {
		completed := r.completed
		st.CompletionTime = &completed
	}
	return st
}

// abbreviate shortens long arguments (prompts passed on the command line)
// so that polling a run's status stays cheap.
func abbreviate(argv []string) []string {
	const maxArg = 256
	out := make([]string, len(argv))
	for i, a := range argv {
		if len(a) > maxArg {
			a = strings.ToValidUTF8(a[:maxArg], "") + "…"
		}
		out[i] = a
	}
	return out
}
