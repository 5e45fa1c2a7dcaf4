package attach

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"github.com/gorilla/websocket"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/remotecommand"

	"github.com/exo-in-go/exo/pkg/agentlet/api"
	"github.com/exo-in-go/exo/pkg/asciicast"
)

const (
	writeTimeout = 10 * time.Second
	// endOfTransmission is what a terminal sends for Ctrl-D. A PTY has no
	// half-close, so a v5 CLOSE of stdin is delivered as EOF this way.
	endOfTransmission = 0x04
	// maxMessageBytes bounds one client message (keystrokes or a resize).
	maxMessageBytes = 1 << 20
)

type session struct {
	id       string
	stopOnce sync.Once
	stopped  chan struct{} // closed to end the session from outside

	writeMu sync.Mutex
	conn    *websocket.Conn
}

func newSession(id string) *session {
	return &session{id: id, stopped: make(chan struct{})}
}

func (s *session) stop() { s.stopOnce.Do(func() { close(s.stopped) }) }

// run drives the session to its end. It always closes conn.
func (s *session) run(conn *websocket.Conn, size api.TerminalSize, opts Options, log *slog.Logger) {
	s.conn = conn
	defer conn.Close()

	recording, closeRecording, err := openRecording(opts, s.id, size)
	if err != nil {
		log.Error("Attach recording failed", "err", err)
		s.sendStatus(internalError(err))
		return
	}
	defer func() {
		if err := closeRecording(); err != nil {
			log.Warn("Closing attach recording failed", "err", err)
		}
	}()

	cmd := exec.Command(opts.Command[0], opts.Command[1:]...)
	cmd.Env = opts.Env
	cmd.Dir = opts.WorkDir
	// pty.Start makes the child a session leader with the PTY as its
	// controlling terminal, so its process group ID is its PID.
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: size.Width, Rows: size.Height})
	if err != nil {
		log.Warn("Attach command failed to start", "err", err)
		s.sendStatus(internalError(fmt.Errorf("start %q: %w", opts.Command[0], err)))
		return
	}
	pgid := cmd.Process.Pid

	outputDone := make(chan struct{})
	go func() {
		defer close(outputDone)
		s.pumpOutput(ptmx, recording)
	}()
	clientGone := make(chan struct{})
	go func() {
		defer close(clientGone)
		s.readClient(ptmx, recording, opts.PingPeriod, log)
	}()
	pingDone := make(chan struct{})
	go func() {
		defer close(pingDone)
		s.ping(opts.PingPeriod, clientGone)
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	var waitErr error
	select {
	case waitErr = <-exited:
	case <-clientGone:
		waitErr = hangUp(pgid, opts.KillGracePeriod, exited)
	case <-s.stopped:
		waitErr = hangUp(pgid, opts.KillGracePeriod, exited)
	}
	// Background jobs of the session go with it, as when a terminal closes.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	// The PTY reports EIO once no process holds its other end; bound the
	// wait in case one escaped the session.
	select {
	case <-outputDone:
	case <-time.After(opts.KillGracePeriod + time.Second):
	}
	ptmx.Close()
	<-outputDone

	status := exitStatus(cmd.ProcessState, waitErr)
	s.sendStatus(status)
	s.writeMu.Lock()
	_ = conn.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	s.writeMu.Unlock()
	// Closing the connection ends readClient and, through clientGone, ping.
	conn.Close()
	<-clientGone
	<-pingDone
	log.Info("Attach session ended", "status", status.Status, "message", status.Message)
}

// pumpOutput copies the terminal's output to channel 1 and the recording.
func (s *session) pumpOutput(ptmx *os.File, recording *asciicast.Writer) {
	buf := make([]byte, 32<<10)
	for {
		n, err := ptmx.Read(buf)
		if n > 0 {
			_ = recording.WriteOutput(buf[:n])
			if werr := s.write(remotecommand.StreamStdOut, buf[:n]); werr != nil {
				// The client is gone; keep draining so the process
				// never blocks on a full terminal.
				continue
			}
		}
		if err != nil {
			return // EIO: every holder of the terminal has exited
		}
	}
}

// readClient handles stdin, resize and close messages until the connection
// fails or closes.
func (s *session) readClient(ptmx *os.File, recording *asciicast.Writer, pingPeriod time.Duration, log *slog.Logger) {
	conn := s.conn
	conn.SetReadLimit(maxMessageBytes)
	deadline := func() { _ = conn.SetReadDeadline(time.Now().Add(3 * pingPeriod)) }
	deadline()
	conn.SetPongHandler(func(string) error { deadline(); return nil })
	for {
		kind, msg, err := conn.ReadMessage()
		if err != nil {
			return
		}
		deadline()
		if kind != websocket.BinaryMessage || len(msg) == 0 {
			continue // the channel protocols use binary messages only
		}
		channel, data := msg[0], msg[1:]
		switch channel {
		case remotecommand.StreamStdIn:
			_ = recording.WriteInput(data)
			if _, err := ptmx.Write(data); err != nil {
				log.Debug("Writing to the terminal failed", "err", err)
			}
		case remotecommand.StreamResize:
			var size api.TerminalSize
			if err := json.Unmarshal(data, &size); err != nil || size.Width == 0 || size.Height == 0 {
				log.Info("Ignoring an invalid resize message", "data", string(data))
				continue
			}
			if err := pty.Setsize(ptmx, &pty.Winsize{Cols: size.Width, Rows: size.Height}); err != nil {
				log.Debug("Resizing the terminal failed", "err", err)
				continue
			}
			_ = recording.Resize(int(size.Width), int(size.Height))
		case remotecommand.StreamClose:
			if len(data) > 0 && data[0] == remotecommand.StreamStdIn {
				_, _ = ptmx.Write([]byte{endOfTransmission})
			}
		}
	}
}

func (s *session) ping(period time.Duration, clientGone <-chan struct{}) {
	ticker := time.NewTicker(period)
	defer ticker.Stop()
	for {
		select {
		case <-clientGone:
			return
		case <-ticker.C:
			// WriteControl may run concurrently with other writes.
			if err := s.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)); err != nil {
				return
			}
		}
	}
}

func (s *session) write(channel byte, data []byte) error {
	msg := make([]byte, 1+len(data))
	msg[0] = channel
	copy(msg[1:], data)
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	return s.conn.WriteMessage(websocket.BinaryMessage, msg)
}

func (s *session) sendStatus(status metav1.Status) {
	b, err := json.Marshal(status)
	if err != nil {
		return
	}
	_ = s.write(remotecommand.StreamErr, b)
}

// hangUp does what closing a terminal does (SIGHUP), then SIGKILL if the
// session has not exited within the grace period.
func hangUp(pgid int, grace time.Duration, exited <-chan error) error {
	_ = syscall.Kill(-pgid, syscall.SIGHUP)
	select {
	case err := <-exited:
		return err
	case <-time.After(grace):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	return <-exited
}

// exitStatus is the channel-3 status kubelet sends: Success, or a Failure
// with reason NonZeroExitCode and the code in an ExitCode cause.
func exitStatus(state *os.ProcessState, waitErr error) metav1.Status {
	if state == nil {
		return internalError(fmt.Errorf("waiting for the command: %w", waitErr))
	}
	code := state.ExitCode()
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	if code == 0 {
		return metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess}
	}
	return metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Reason:   remotecommand.NonZeroExitCodeReason,
		Message:  fmt.Sprintf("command terminated with non-zero exit code: %s", state),
		Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{
			Type:    remotecommand.ExitCodeCauseType,
			Message: fmt.Sprint(code),
		}}},
	}
}

func internalError(err error) metav1.Status {
	s := api.NewStatus(500, metav1.StatusReasonInternalError, err.Error())
	return s
}

// openRecording starts the session's asciicast file.
func openRecording(opts Options, id string, size api.TerminalSize) (*asciicast.Writer, func() error, error) {
	f, err := os.OpenFile(filepath.Join(opts.RecordingDir, id+".cast"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("create recording: %w", err)
	}
	w, err := asciicast.NewWriter(f, asciicast.Header{
		Width:   int(size.Width),
		Height:  int(size.Height),
		Command: strings.Join(opts.Command, " "),
		Title:   id,
		Env:     terminalEnv(opts.Env),
	}, asciicast.WriterOptions{RecordInput: opts.RecordInput, MaxBytes: opts.MaxRecordingBytes})
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return w, func() error { return errors.Join(w.Close(), f.Close()) }, nil
}

// terminalEnv picks the variables players care about from env.
func terminalEnv(env []string) map[string]string {
	out := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if k == "TERM" || k == "SHELL" {
			out[k] = v
		}
	}
	return out
}
