// Package attach serves interactive terminals: a WebSocket speaking the
// framing of Kubernetes' v5.channel.k8s.io (and v4) subprotocol, bridged to
// a PTY that runs the runtime's interactive command, recorded as asciicast.
//
// Every binary message starts with a channel byte: 0 stdin (client→server),
// 1 stdout, 3 the final metav1.Status, 4 resize ({"Width","Height"}), and in
// v5 255 close, whose next byte names the stream the client half-closed.
// With a TTY stderr is merged into stdout, so channel 2 is never sent. The
// framing matches kubelet's, so client-go's remotecommand WebSocket executor
// (what kubectl uses) works against it unchanged.
package attach

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/remotecommand"

	"github.com/exo-in-go/exo/pkg/agentlet/api"
)

// Protocols are the subprotocols accepted, most preferred first.
var Protocols = []string{remotecommand.StreamProtocolV5Name, remotecommand.StreamProtocolV4Name}

// Options configure a Handler.
type Options struct {
	// Command runs in the PTY of every session.
	Command []string
	// Env is the full environment of Command.
	Env     []string
	WorkDir string
	// RecordingDir receives one <session>.cast file per session.
	RecordingDir      string
	RecordInput       bool
	MaxRecordingBytes int64
	MaxSessions       int
	PingPeriod        time.Duration
	// KillGracePeriod is how long a session's processes get between SIGHUP
	// and SIGKILL when the client goes away.
	KillGracePeriod time.Duration
	Log             *slog.Logger
}

// Handler serves attach WebSockets. Authentication is the caller's job.
type Handler struct {
	opts     Options
	upgrader websocket.Upgrader

	mu       sync.Mutex
	sessions map[string]*session
	closing  bool
	wg       sync.WaitGroup
}

// NewHandler prepares the recording directory.
func NewHandler(opts Options) (*Handler, error) {
	if len(opts.Command) == 0 {
		return nil, errors.New("attach: no command configured")
	}
	if err := os.MkdirAll(opts.RecordingDir, 0o700); err != nil {
		return nil, fmt.Errorf("attach: create recording directory: %w", err)
	}
	return &Handler{
		opts: opts,
		upgrader: websocket.Upgrader{
			Subprotocols:     Protocols,
			HandshakeTimeout: 10 * time.Second,
			// The default origin check stays: a browser page on another
			// site must never drive a terminal, whatever it holds.
		},
		sessions: map[string]*session{},
	}, nil
}

// ServeHTTP upgrades to a WebSocket and runs one terminal session until the
// command exits or the client goes away. Query parameters width and height
// set the initial terminal size (default 80x24).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		api.WriteError(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, "attach needs a WebSocket upgrade")
		return
	}
	if !offersProtocol(r) {
		api.WriteError(w, http.StatusBadRequest, metav1.StatusReasonBadRequest,
			fmt.Sprintf("attach needs one of the WebSocket subprotocols %v", Protocols))
		return
	}
	size, err := initialSize(r)
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
		return
	}
	id := newSessionID()
	s, err := h.register(id)
	if err != nil {
		api.WriteError(w, http.StatusTooManyRequests, metav1.StatusReasonTooManyRequests, err.Error())
		return
	}
	defer h.unregister(id)

	conn, err := h.upgrader.Upgrade(w, r, http.Header{api.HeaderSessionID: {id}})
	if err != nil {
		// Upgrade has already answered the client.
		h.opts.Log.Info("Attach handshake failed", "session", id, "err", err)
		return
	}
	log := h.opts.Log.With("session", id, "protocol", conn.Subprotocol())
	log.Info("Attach session started", "command", h.opts.Command, "size", fmt.Sprintf("%dx%d", size.Width, size.Height))
	s.run(conn, size, h.opts, log)
}

// RecordingPath returns the recording of a session; the file exists from
// the moment the session starts.
func (h *Handler) RecordingPath(id string) (string, error) {
	if !validSessionID.MatchString(id) {
		return "", os.ErrNotExist
	}
	path := filepath.Join(h.opts.RecordingDir, id+".cast")
	if _, err := os.Stat(path); err != nil {
		return "", err
	}
	return path, nil
}

// Shutdown ends every session (its processes get SIGHUP, then SIGKILL) and
// waits for them to finish.
func (h *Handler) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closing = true
	for _, s := range h.sessions {
		s.stop()
	}
	h.mu.Unlock()
	done := make(chan struct{})
	go func() {
		h.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for attach sessions to end: %w", ctx.Err())
	}
}

func (h *Handler) register(id string) (*session, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return nil, errors.New("the agentlet is shutting down")
	}
	if len(h.sessions) >= h.opts.MaxSessions {
		return nil, fmt.Errorf("%d attach sessions are already open, the maximum", h.opts.MaxSessions)
	}
	s := newSession(id)
	h.sessions[id] = s
	h.wg.Add(1)
	return s, nil
}

func (h *Handler) unregister(id string) {
	h.mu.Lock()
	delete(h.sessions, id)
	h.mu.Unlock()
	h.wg.Done()
}

func offersProtocol(r *http.Request) bool {
	for _, offered := range websocket.Subprotocols(r) {
		for _, p := range Protocols {
			if offered == p {
				return true
			}
		}
	}
	return false
}

func initialSize(r *http.Request) (api.TerminalSize, error) {
	size := api.TerminalSize{Width: 80, Height: 24}
	for name, dst := range map[string]*uint16{"width": &size.Width, "height": &size.Height} {
		v := r.URL.Query().Get(name)
		if v == "" {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil || n == 0 {
			return size, fmt.Errorf("query parameter %s=%q must be a terminal size between 1 and 65535", name, v)
		}
		*dst = uint16(n)
	}
	return size, nil
}

var validSessionID = regexp.MustCompile(`^attach-[0-9]{8}-[0-9]{6}-[0-9a-f]{8}$`)

func newSessionID() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "attach-" + time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}
