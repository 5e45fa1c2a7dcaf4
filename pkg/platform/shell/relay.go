package shell

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/exo-in-go/exo/pkg/asciicast"
	"github.com/exo-in-go/exo/pkg/platform/store"
	"github.com/exo-in-go/exo/pkg/shellexec/protocol"
	"github.com/exo-in-go/exo/pkg/tunnel"
)

// Why a session ended (store.ShellSession.EndReason, audit detail).
const (
	EndExited         = "exited"           // the shell exited; exit_code is set
	EndFailed         = "failed"           // the operator could not run the shell
	EndBrowserClosed  = "browser_closed"   // the browser closed the WebSocket
	EndBrowserTooSlow = "browser_too_slow" // the browser accepted no output for BrowserWriteTimeout
	EndTunnelClosed   = "tunnel_closed"    // the operator connection went away
	EndOpenTimeout    = "open_timeout"     // the operator did not start the shell in time
	EndShutdown       = "shutdown"         // exo-app is stopping
	EndRevoked        = "revoked"          // the user may no longer have it: removed, demoted, token expired or revoked
)

// Browser protocol: binary messages carry terminal bytes both ways; text
// messages are JSON control messages.
type (
	// browserMsg is a control message from the browser.
	browserMsg struct {
		Type string `json:"type"` // "resize"
		Cols uint16 `json:"cols"`
		Rows uint16 `json:"rows"`
	}
	// serverMsg is a control message to the browser: "session" (first),
	// "started" once the PTY runs, "exit" last.
	serverMsg struct {
		Type      string          `json:"type"`
		SessionID string          `json:"session_id,omitempty"`
		Pod       string          `json:"pod,omitempty"`
		Container string          `json:"container,omitempty"`
		ExitCode  *int            `json:"exit_code,omitempty"`
		Reason    string          `json:"reason,omitempty"`
		Error     *protocol.Error `json:"error,omitempty"`
	}
)

// relay is one live session: a browser WebSocket on one side, a tunnel
// stream on the other, the recording in between.
type relay struct {
	h      *Handler
	ws     *websocket.Conn
	conn   Conn
	stream *tunnel.Stream
	grant  grant
	rec    *asciicast.Writer
	log    *slog.Logger

	writeMu sync.Mutex // one data writer on ws at a time

	revoked    chan struct{} // closed by revoke
	revokeOnce sync.Once

	mu         sync.Mutex
	pod        string
	container  string
	final      *protocol.Close // the operator's shell_close
	reason     string          // first reason the session ended
	browserBad bool            // writes to the browser have failed
}

// revoke ends the session because its user is no longer authorised.
func (r *relay) revoke() {
	r.revokeOnce.Do(func() { close(r.revoked) })
}

func (r *relay) setReason(reason string) {
	r.mu.Lock()
	if r.reason == "" {
		r.reason = reason
	}
	r.mu.Unlock()
}

// runSession runs one shell from upgrade to teardown. It returns only when
// every goroutine it started has returned and the stream is reset.
func (h *Handler) runSession(ws *websocket.Conn, conn Conn, g grant, settings store.ShellSettings, remote string) {
	defer ws.Close()
	sess := store.ShellSession{
		ID: store.NewID(), TenantID: g.TenantID, UserID: g.UserID, UserEmail: g.UserEmail,
		DeploymentID: g.DeploymentID, Namespace: g.Namespace, Agent: g.Agent, RemoteAddr: remote,
		InputRecorded: settings.RecordInput, StartedAt: h.opts.Now().UTC().Truncate(time.Millisecond),
	}
	// <tenant>/<session>.cast: both are ids we generated, never user input.
	sess.Recording = path.Join(g.TenantID, sess.ID+".cast")
	log := h.log.With("session", sess.ID, "tenant", g.TenantID, "deployment", g.DeploymentID, "agent", g.Namespace+"/"+g.Agent)

	file, rec, err := h.createRecording(sess, g)
	if err != nil {
		log.Error("create shell recording", "err", err)
		closeBrowser(ws, websocket.CloseInternalServerErr, "cannot record the session")
		return
	}
	// The session row and its audit event are written together.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err = h.store.CreateShellSession(audited(ctx, store.AuditEvent{
		TenantID: g.TenantID, ActorID: g.UserID, ActorEmail: g.UserEmail, Action: AuditShellOpened,
		TargetType: "shell_session", TargetID: sess.ID, RemoteAddr: remote,
	}, map[string]any{"deployment_id": g.DeploymentID, "namespace": g.Namespace, "agent": g.Agent, "input_recorded": settings.RecordInput}), sess)
	cancel()
	if err != nil {
		log.Error("store shell session", "err", err)
		_ = file.Close()
		_ = os.Remove(filepath.Join(h.opts.CastDir, filepath.FromSlash(sess.Recording)))
		closeBrowser(ws, websocket.CloseInternalServerErr, "cannot record the session")
		return
	}
	log.Info("shell session opened", "user", g.UserID)

	r := &relay{h: h, ws: ws, conn: conn, grant: g, rec: rec, log: log, revoked: make(chan struct{})}
	h.mu.Lock()
	h.active[sess.ID] = r
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.active, sess.ID)
		h.mu.Unlock()
	}()

	r.run(sess.ID)

	// Finish the record whatever happened.
	recErr := rec.Close()
	if err := file.Close(); err != nil || recErr != nil {
		log.Error("finish shell recording", "err", errors.Join(recErr, err))
	}
	var size int64
	if fi, err := os.Stat(file.Name()); err == nil {
		size = fi.Size()
	}
	r.mu.Lock()
	end := store.ShellSessionEnd{Pod: r.pod, Container: r.container, EndedAt: h.opts.Now().UTC().Truncate(time.Millisecond), Reason: r.reason, RecordingBytes: size}
	if r.final != nil {
		end.ExitCode = r.final.ExitCode
	}
	r.mu.Unlock()
	detail := map[string]any{
		"deployment_id": g.DeploymentID, "namespace": g.Namespace, "agent": g.Agent, "pod": end.Pod,
		"reason": end.Reason, "duration_ms": end.EndedAt.Sub(sess.StartedAt).Milliseconds(), "recording_bytes": size,
	}
	if end.ExitCode != nil {
		detail["exit_code"] = *end.ExitCode
	}
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	err = h.store.EndShellSession(audited(ctx, store.AuditEvent{
		TenantID: g.TenantID, ActorID: g.UserID, ActorEmail: g.UserEmail, Action: AuditShellClosed,
		TargetType: "shell_session", TargetID: sess.ID, RemoteAddr: remote,
	}, detail), g.TenantID, sess.ID, end)
	cancel()
	if err != nil {
		log.Error("store shell session end", "err", err)
	}
	log.Info("shell session closed", "reason", end.Reason, "exit_code", end.ExitCode, "recording_bytes", size)
}

func (h *Handler) createRecording(sess store.ShellSession, g grant) (*os.File, *asciicast.Writer, error) {
	p := filepath.Join(h.opts.CastDir, filepath.FromSlash(sess.Recording))
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, nil, err
	}
	rec, err := asciicast.NewWriter(f, asciicast.Header{
		Width: int(g.Cols), Height: int(g.Rows), Timestamp: sess.StartedAt.Unix(),
		Title: fmt.Sprintf("%s/%s", g.Namespace, g.Agent),
		Env:   map[string]string{"TERM": "xterm-256color"},
	}, asciicast.WriterOptions{RecordInput: sess.InputRecorded, MaxBytes: h.opts.MaxRecordingBytes, Now: h.opts.Now})
	if err != nil {
		_ = f.Close()
		_ = os.Remove(p)
		return nil, nil, err
	}
	return f, rec, nil
}

func (r *relay) run(sessionID string) {
	h := r.h
	var err error
	if r.stream, err = h.openStream(r.conn); err != nil {
		r.log.Error("open tunnel stream", "err", err)
		r.setReason(EndTunnelClosed)
		r.finishBrowser(&protocol.Error{Code: protocol.CodeUnavailable, Message: "the operator connection is not usable"})
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sendCtx, sendCancel := context.WithTimeout(ctx, 5*time.Second)
	err = r.conn.Send(sendCtx, tunnel.TypeShellOpen, r.grant.hashID(), protocol.Open{
		GrantID: r.grant.hashID(), Stream: r.stream.ID(), Namespace: r.grant.Namespace, Agent: r.grant.Agent,
		Cols: r.grant.Cols, Rows: r.grant.Rows, RequestedBy: r.grant.UserEmail,
	})
	sendCancel()
	if err != nil {
		r.log.Error("send shell_open", "err", err)
		_ = r.stream.Close(context.Background())
		r.setReason(EndTunnelClosed)
		r.finishBrowser(&protocol.Error{Code: protocol.CodeUnavailable, Message: "the operator connection is not usable"})
		return
	}
	r.writeJSON(serverMsg{Type: "session", SessionID: sessionID})

	started := make(chan struct{})
	operatorDone := make(chan struct{})
	browserGone := make(chan struct{})
	var goneOnce sync.Once
	markGone := func(reason string) {
		goneOnce.Do(func() {
			r.setReason(reason)
			close(browserGone)
		})
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(operatorDone)
		r.fromOperator(ctx, started, markGone)
	})
	wg.Go(func() { r.fromBrowser(ctx, markGone) })
	wg.Go(func() { r.ping(ctx) })

	openTimer := time.NewTimer(h.opts.OpenTimeout)
	defer openTimer.Stop()
	openTimeout := openTimer.C
wait:
	for {
		select {
		case <-started:
			started, openTimeout = nil, nil
		case <-openTimeout:
			r.setReason(EndOpenTimeout)
			break wait
		case <-operatorDone:
			break wait
		case <-browserGone:
			break wait
		case <-r.revoked:
			r.setReason(EndRevoked)
			break wait
		case <-h.srv.Draining().Done():
			r.setReason(EndShutdown)
			// A browser write stuck on a slow reader must not hold up the
			// shutdown for BrowserWriteTimeout.
			_ = r.ws.NetConn().SetWriteDeadline(time.Now().Add(time.Second))
			break wait
		}
	}

	// Unless the operator already ended it, ask it to end the shell (on the
	// control stream, so the request never waits behind unread input) and
	// give it CloseTimeout to report the exit status.
	select {
	case <-operatorDone:
	default:
		closeCtx, closeCancel := context.WithTimeout(ctx, h.opts.CloseTimeout)
		r.mu.Lock()
		reason := r.reason
		r.mu.Unlock()
		if err := r.conn.Send(closeCtx, tunnel.TypeShellClose, r.grant.hashID(), protocol.Close{Reason: reason}); err == nil {
			select {
			case <-operatorDone:
			case <-closeCtx.Done():
			}
		}
		closeCancel()
	}
	// The reset tells the operator we are done and ends fromOperator; the
	// cancel unblocks a fromBrowser waiting for stream credit.
	_ = r.stream.Close(context.WithoutCancel(ctx))
	cancel()
	<-operatorDone

	r.mu.Lock()
	final := r.final
	if final == nil {
		final = &protocol.Close{}
	}
	r.mu.Unlock()
	r.finishBrowser(final.Error)
	wg.Wait()
}

// fromOperator relays the stream to the browser and the recording until
// the operator's shell_close, a stream reset or the end of the tunnel.
func (r *relay) fromOperator(ctx context.Context, started chan<- struct{}, markGone func(string)) {
	for {
		f, err := r.stream.Recv(ctx)
		if err != nil {
			switch {
			case errors.Is(err, tunnel.ErrClosed):
				r.setReason(EndTunnelClosed)
			case errors.Is(err, tunnel.ErrStreamReset):
				r.setReason(EndFailed)
			}
			return
		}
		switch f.Type {
		case protocol.TypeShellStarted:
			var st protocol.Started
			if f.Unmarshal(&st) != nil {
				continue
			}
			r.mu.Lock()
			r.pod, r.container = st.Pod, st.Container
			r.mu.Unlock()
			if started != nil {
				close(started)
				started = nil
			}
			r.writeJSON(serverMsg{Type: "started", Pod: st.Pod, Container: st.Container})
		case tunnel.TypeShellOutput:
			var d protocol.Data
			if f.Unmarshal(&d) != nil || len(d.Data) == 0 {
				continue
			}
			if err := r.rec.WriteOutput(d.Data); err != nil {
				r.log.Warn("record shell output", "err", err)
			}
			if err := r.writeBrowser(websocket.BinaryMessage, d.Data); err != nil {
				// Keep draining the stream: the operator's shell_close
				// still has to arrive, and the recording goes on.
				if errors.Is(err, errBrowserTimeout) {
					markGone(EndBrowserTooSlow)
				} else {
					markGone(EndBrowserClosed)
				}
			}
		case tunnel.TypeShellClose:
			var c protocol.Close
			_ = f.Unmarshal(&c)
			r.mu.Lock()
			r.final = &c
			r.mu.Unlock()
			if c.ExitCode != nil {
				r.setReason(EndExited)
			} else {
				r.setReason(EndFailed)
			}
			return
		}
	}
}

// fromBrowser relays keystrokes and resizes to the stream. Stream.Send
// blocks while the operator has granted no credit; then this loop stops
// reading the WebSocket and TCP pushes back on the browser.
func (r *relay) fromBrowser(ctx context.Context, markGone func(string)) {
	ws := r.ws
	ws.SetReadLimit(64 << 10)
	wait := r.h.opts.PingInterval * 5 / 2
	extend := func() { _ = ws.SetReadDeadline(time.Now().Add(wait)) }
	extend()
	ws.SetPongHandler(func(string) error { extend(); return nil })
	for {
		typ, data, err := ws.ReadMessage()
		if err != nil {
			markGone(EndBrowserClosed)
			return
		}
		extend()
		switch typ {
		case websocket.BinaryMessage:
			if err := r.rec.WriteInput(data); err != nil {
				r.log.Warn("record shell input", "err", err)
			}
			for len(data) > 0 {
				n := min(len(data), protocol.MaxChunk)
				if err := r.stream.Send(ctx, tunnel.TypeShellInput, "", protocol.Data{Data: data[:n]}); err != nil {
					return
				}
				data = data[n:]
			}
		case websocket.TextMessage:
			var m browserMsg
			if json.Unmarshal(data, &m) != nil || m.Type != "resize" {
				continue // unknown control messages are ignored, like unknown frames
			}
			if m.Cols == 0 || m.Rows == 0 || m.Cols > 1000 || m.Rows > 1000 {
				continue
			}
			if err := r.rec.Resize(int(m.Cols), int(m.Rows)); err != nil {
				r.log.Warn("record shell resize", "err", err)
			}
			if err := r.stream.Send(ctx, tunnel.TypeShellResize, "", protocol.Resize{Cols: m.Cols, Rows: m.Rows}); err != nil {
				return
			}
		}
	}
}

func (r *relay) ping(ctx context.Context) {
	t := time.NewTicker(r.h.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(r.h.opts.BrowserWriteTimeout)); err != nil {
				return
			}
		}
	}
}

var errBrowserTimeout = errors.New("browser did not accept output in time")

func (r *relay) writeBrowser(typ int, data []byte) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	if r.browserBad {
		return websocket.ErrCloseSent
	}
	_ = r.ws.SetWriteDeadline(time.Now().Add(r.h.opts.BrowserWriteTimeout))
	err := r.ws.WriteMessage(typ, data)
	if err != nil {
		r.browserBad = true
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			return errBrowserTimeout
		}
	}
	return err
}

func (r *relay) writeJSON(m serverMsg) {
	b, _ := json.Marshal(m)
	_ = r.writeBrowser(websocket.TextMessage, b)
}

// finishBrowser sends the exit message and a close frame, then closes the
// socket so fromBrowser returns.
func (r *relay) finishBrowser(perr *protocol.Error) {
	r.mu.Lock()
	m := serverMsg{Type: "exit", Reason: r.reason, Error: perr}
	if r.final != nil {
		m.ExitCode = r.final.ExitCode
	}
	r.mu.Unlock()
	r.writeJSON(m)
	code := websocket.CloseNormalClosure
	switch m.Reason {
	case EndShutdown:
		code = websocket.CloseGoingAway
	case EndRevoked:
		code = websocket.ClosePolicyViolation
	}
	closeBrowser(r.ws, code, m.Reason)
}

func closeBrowser(ws *websocket.Conn, code int, reason string) {
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
	_ = ws.Close()
}
