package shellexec

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/exo-in-go/exo/pkg/shellexec/protocol"
	"github.com/exo-in-go/exo/pkg/tunnel"
)

// streamStartGrace bounds how long a cancelled shell waits for its exec
// stream to show life before its context is cancelled anyway.
const streamStartGrace = 3 * time.Second

// session is one shell. Three goroutines take part: run (the exec stream),
// recvLoop (frames from the platform) and client-go's own stdin copier,
// which reads from input until the exec context ends.
type session struct {
	e      *Executor
	ctx    context.Context // the tunnel connection's lifetime
	sctx   context.Context // this shell; cancelled by the platform or the tunnel
	cancel context.CancelCauseFunc
	stream *tunnel.Stream
	open   protocol.Open
	log    logr.Logger
}

func (s *session) run() {
	execCtx, stopExec := context.WithCancel(s.sctx)
	defer stopExec()
	input := make(chan []byte)
	sizes := newSizeQueue(execCtx.Done(), s.open.Cols, s.open.Rows)
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		s.recvLoop(execCtx.Done(), input, sizes)
	}()

	final := s.exec(execCtx, input, sizes)
	stopExec()

	// Report how the shell ended and wait for the platform to reset the
	// stream (recvLoop then ends); reset it ourselves if it does not.
	sendCtx, cancel := context.WithTimeout(s.ctx, s.e.opts.CloseTimeout)
	if err := s.stream.Send(sendCtx, tunnel.TypeShellClose, s.open.GrantID, final); err != nil {
		s.log.V(1).Info("Cannot send shell_close", "err", err)
	}
	select {
	case <-recvDone:
	case <-sendCtx.Done():
	}
	cancel()
	_ = s.stream.Close(context.WithoutCancel(s.ctx)) // no-op when the peer already reset it
	<-recvDone
	s.log.V(1).Info("Shell ended", "exit_code", final.ExitCode, "error", final.Error)
}

// exec resolves the pod, runs the PTY session and describes how it ended.
func (s *session) exec(ctx context.Context, input <-chan []byte, sizes *sizeQueue) protocol.Close {
	t, perr := s.e.resolve(ctx, s.open)
	if perr != nil {
		return protocol.Close{Error: perr}
	}
	ex, err := s.e.executor(t)
	if err != nil {
		return protocol.Close{Error: &protocol.Error{Code: protocol.CodeInternal, Message: err.Error()}}
	}
	if err := s.stream.Send(ctx, protocol.TypeShellStarted, s.open.GrantID, protocol.Started{Pod: t.pod.Name, Container: t.container}); err != nil {
		return protocol.Close{Error: &protocol.Error{Code: protocol.CodeUnavailable, Message: err.Error()}}
	}
	s.log.Info("Shell opened", "pod", t.pod.Name, "container", t.container, "requested_by", s.open.RequestedBy)

	// The exec stream gets a context of its own that is cancelled only once
	// the stream has delivered output (or after a grace period). client-go's
	// WebSocket executor (v0.37) leaks its stream goroutines when its
	// context ends between the handshake and the start of its read loop
	// (readDemuxLoop returns on a failed SetReadDeadline without closing the
	// stream pipes); any output proves the read loop is running.
	streamCtx, stopStream := context.WithCancel(context.WithoutCancel(ctx))
	defer stopStream()
	firstOutput := make(chan struct{})
	streamDone := make(chan struct{})
	defer close(streamDone)
	go func() {
		select {
		case <-ctx.Done():
			grace := time.NewTimer(streamStartGrace)
			defer grace.Stop()
			select {
			case <-firstOutput:
			case <-grace.C:
			case <-streamDone:
			}
			stopStream()
		case <-streamDone:
		}
	}()
	err = ex.StreamWithContext(streamCtx, remotecommand.StreamOptions{
		Stdin:             &chanReader{ch: input, done: streamCtx.Done()},
		Stdout:            &streamWriter{ctx: streamCtx, s: s.stream, first: firstOutput},
		Tty:               true,
		TerminalSizeQueue: sizes,
	})
	var exitErr utilexec.ExitError
	switch {
	case err == nil:
		zero := 0
		return protocol.Close{ExitCode: &zero}
	case errors.As(err, &exitErr) && exitErr.Exited():
		code := exitErr.ExitStatus()
		return protocol.Close{ExitCode: &code}
	case errors.Is(context.Cause(s.sctx), errClosedByPlatform):
		return protocol.Close{Reason: "closed by the platform"}
	case s.sctx.Err() != nil:
		// The tunnel closed, the operator is stopping or the stream was reset.
		return protocol.Close{Error: &protocol.Error{Code: protocol.CodeUnavailable, Message: "session cancelled: " + context.Cause(s.sctx).Error()}}
	default:
		return protocol.Close{Error: &protocol.Error{Code: protocol.CodeUnavailable, Message: "exec stream: " + err.Error()}}
	}
}

// recvLoop feeds input and resizes to the exec stream until the stream is
// reset or the tunnel closes. Once the exec has ended (execDone) input is
// dropped, so a reader never blocks the loop from seeing the reset.
func (s *session) recvLoop(execDone <-chan struct{}, input chan<- []byte, sizes *sizeQueue) {
	for {
		f, err := s.stream.Recv(s.ctx)
		if err != nil {
			s.cancel(err) // stream reset, tunnel closed or operator stopping
			return
		}
		switch f.Type {
		case tunnel.TypeShellInput:
			var d protocol.Data
			if f.Unmarshal(&d) != nil || len(d.Data) == 0 {
				continue
			}
			select {
			case input <- d.Data:
			case <-execDone:
			}
		case tunnel.TypeShellResize:
			var r protocol.Resize
			if f.Unmarshal(&r) == nil && r.Cols > 0 && r.Rows > 0 {
				sizes.push(remotecommand.TerminalSize{Width: r.Cols, Height: r.Rows})
			}
		case tunnel.TypeShellClose:
			s.cancel(errClosedByPlatform)
		}
	}
}

// chanReader is the exec's stdin: keystrokes from the platform, EOF once
// the exec context ends so client-go's copier goroutine returns.
type chanReader struct {
	ch   <-chan []byte
	done <-chan struct{}
	buf  []byte
}

func (r *chanReader) Read(p []byte) (int, error) {
	if len(r.buf) == 0 {
		select {
		case b := <-r.ch:
			r.buf = b
		case <-r.done:
			return 0, io.EOF
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// streamWriter is the exec's stdout. Each write becomes shell_output frames
// and blocks while the platform has granted no credit: a browser that stops
// reading slows this one shell down to its own pace, back to the PTY.
type streamWriter struct {
	ctx   context.Context
	s     *tunnel.Stream
	first chan struct{} // closed on the first write
	wrote bool
}

func (w *streamWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.wrote = true
		close(w.first)
	}
	written := 0
	for len(p) > 0 {
		n := min(len(p), protocol.MaxChunk)
		if err := w.s.Send(w.ctx, tunnel.TypeShellOutput, "", protocol.Data{Data: p[:n]}); err != nil {
			return written, err
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

// sizeQueue is the exec's TerminalSizeQueue, seeded with the initial size.
// A burst of resizes keeps only the latest: only the final size matters.
type sizeQueue struct {
	ch   chan remotecommand.TerminalSize
	done <-chan struct{}
}

func newSizeQueue(done <-chan struct{}, cols, rows uint16) *sizeQueue {
	q := &sizeQueue{ch: make(chan remotecommand.TerminalSize, 1), done: done}
	if cols == 0 || rows == 0 {
		cols, rows = 80, 24
	}
	q.ch <- remotecommand.TerminalSize{Width: cols, Height: rows}
	return q
}

func (q *sizeQueue) push(sz remotecommand.TerminalSize) {
	for {
		select {
		case q.ch <- sz:
			return
		default:
		}
		select {
		case <-q.ch: // drop the stale size
		default:
		}
	}
}

// Next returns the next size, or nil once the session ends.
func (q *sizeQueue) Next() *remotecommand.TerminalSize {
	select {
	case sz := <-q.ch:
		return &sz
	case <-q.done:
		return nil
	}
}
