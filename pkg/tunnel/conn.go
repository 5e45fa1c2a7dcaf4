package tunnel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// WebSocket close codes the tunnel uses. 1xxx are RFC 6455 codes; 4xxx are
// application codes the operator reacts to (see docs/tunnel.md).
const (
	CloseNormal          = websocket.CloseNormalClosure     // 1000
	CloseGoingAway       = websocket.CloseGoingAway         // 1001: shutdown, leader change
	CloseProtocolError   = websocket.CloseProtocolError     // 1002: undecodable frame, wrong version
	CloseUnsupportedData = websocket.CloseUnsupportedData   // 1003: binary message
	ClosePolicyViolation = websocket.ClosePolicyViolation   // 1008: flow-control violation
	CloseMessageTooBig   = websocket.CloseMessageTooBig     // 1009: frame over the read limit
	CloseAbnormal        = websocket.CloseAbnormalClosure   // 1006: no close frame (never sent)
	CloseInternal        = websocket.CloseInternalServerErr // 1011
	CloseSuperseded      = 4001                             // a newer connection with the same token won
	CloseTokenRevoked    = 4003                             // the deployment or its token is gone
	CloseDuplicate       = 4009                             // refused: another connection holds the grace window
	CloseHandshake       = 4010                             // no hello within the handshake deadline
)

// Defaults. PingInterval and the application heartbeat are both well under
// the 60 s idle timeout of common proxies (nginx proxy_read_timeout default).
const (
	DefaultReadLimit    = 1 << 20
	DefaultPingInterval = 20 * time.Second
	DefaultWriteTimeout = 10 * time.Second
	DefaultStreamWindow = 256 << 10
	DefaultControlQueue = 32
)

// Options tune a Conn. Zero values take the defaults.
type Options struct {
	// ReadLimit is the largest message accepted; a larger one closes the
	// connection with 1009.
	ReadLimit int64
	// PingInterval is the WebSocket ping cadence; the read deadline is
	// 2.5 × PingInterval and is extended by every message, ping and pong.
	PingInterval time.Duration
	// WriteTimeout bounds every single write; a peer that stops reading for
	// that long is dropped instead of blocking the writer forever.
	WriteTimeout time.Duration
	// StreamWindow is the initial credit of every flow-controlled stream, in
	// payload bytes, in each direction.
	StreamWindow uint32
	// ControlQueue bounds queued outgoing control frames; Send blocks (under
	// its context) when it is full.
	ControlQueue int
}

func (o Options) withDefaults() Options {
	if o.ReadLimit <= 0 {
		o.ReadLimit = DefaultReadLimit
	}
	if o.PingInterval <= 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.StreamWindow == 0 {
		o.StreamWindow = DefaultStreamWindow
	}
	if o.ControlQueue <= 0 {
		o.ControlQueue = DefaultControlQueue
	}
	return o
}

// Handler receives the frames of the control stream, in order, on the
// goroutine that called Run. It must not block for long: while it runs no
// other frame (and no pong) is read. Long work belongs in a goroutine.
// Unknown frame types reach the handler too; it ignores them.
type Handler func(Frame)

// ErrClosed is returned by operations on a closed Conn or Stream.
var ErrClosed = errors.New("tunnel: connection closed")

// ErrStreamReset is returned by a Stream the peer reset.
var ErrStreamReset = errors.New("tunnel: stream reset by peer")

// Conn is one tunnel connection. One goroutine (the caller of Run) reads;
// one goroutine, started by NewConn, writes: control frames first, then one
// frame per ready stream in turn. Stream frames are queued only once the
// peer has granted credit for them, so a stalled stream holds at most its
// window in memory and never sits in front of control frames or other
// streams.
type Conn struct {
	ws   *websocket.Conn
	opts Options

	ctrl chan []byte   // encoded control frames
	wake chan struct{} // a stream became ready (cap 1)

	mu      sync.Mutex
	streams map[uint32]*Stream
	ready   []*Stream // streams with paid-for frames, round robin

	closed     chan struct{}
	closeOnce  sync.Once
	err        error
	writerDone chan struct{}
}

// NewConn takes over ws and starts its writer. The caller must call Run.
func NewConn(ws *websocket.Conn, opts Options) *Conn {
	opts = opts.withDefaults()
	c := &Conn{
		ws:         ws,
		opts:       opts,
		ctrl:       make(chan []byte, opts.ControlQueue),
		wake:       make(chan struct{}, 1),
		streams:    map[uint32]*Stream{},
		closed:     make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	go c.writeLoop()
	return c
}

// Done is closed when the connection is closed.
func (c *Conn) Done() <-chan struct{} { return c.closed }

// Err is why the connection closed: a *websocket.CloseError carrying the
// close code (sent or received), or a transport error. Nil while open.
func (c *Conn) Err() error {
	select {
	case <-c.closed:
		return c.err
	default:
		return nil
	}
}

// CloseCode extracts the WebSocket close code from an error returned by
// Run or Err; CloseAbnormal when the connection ended without a close frame.
func CloseCode(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return CloseAbnormal
}

// Run reads frames until the connection closes or ctx ends (then it sends
// 1001). It returns only after the writer has stopped, so a returned Conn
// holds no goroutines.
func (c *Conn) Run(ctx context.Context, h Handler) error {
	defer func() { <-c.writerDone }()
	stop := context.AfterFunc(ctx, func() { c.Close(CloseGoingAway, "shutting down") })
	defer stop()

	pongWait := c.opts.PingInterval * 5 / 2
	extend := func() { _ = c.ws.SetReadDeadline(time.Now().Add(pongWait)) }
	c.ws.SetReadLimit(c.opts.ReadLimit)
	extend()
	c.ws.SetPongHandler(func(string) error { extend(); return nil })
	c.ws.SetPingHandler(func(data string) error {
		extend()
		err := c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(c.opts.WriteTimeout))
		if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
			return err
		}
		return nil
	})

	for {
		typ, b, err := c.ws.ReadMessage()
		if err != nil {
			// On ErrReadLimit gorilla has already sent 1009 to the peer.
			if errors.Is(err, websocket.ErrReadLimit) {
				err = &websocket.CloseError{Code: CloseMessageTooBig, Text: "frame exceeds read limit"}
			}
			c.fail(err)
			return c.Err()
		}
		extend()
		if typ != websocket.TextMessage {
			c.Close(CloseUnsupportedData, "tunnel frames are JSON text messages")
			return c.Err()
		}
		f, err := Decode(b)
		if err != nil {
			c.Close(CloseProtocolError, truncate(err.Error(), 120))
			return c.Err()
		}
		switch {
		case f.Type == TypeWindowUpdate:
			if err := c.grant(f); err != nil {
				c.Close(ClosePolicyViolation, truncate(err.Error(), 120))
				return c.Err()
			}
		case f.Type == TypeStreamReset:
			c.peerReset(f.Stream)
		case f.Stream != 0:
			if err := c.deliver(f); err != nil {
				c.Close(ClosePolicyViolation, truncate(err.Error(), 120))
				return c.Err()
			}
		default:
			h(f)
		}
	}
}

// Send queues a control-stream frame. It blocks while the control queue is
// full, until ctx ends or the connection closes.
func (c *Conn) Send(ctx context.Context, typ, id string, payload any) error {
	f, err := NewFrame(typ, id, 0, payload)
	if err != nil {
		return err
	}
	b, err := f.Encode()
	if err != nil {
		return err
	}
	return c.sendRaw(ctx, b)
}

func (c *Conn) sendRaw(ctx context.Context, b []byte) error {
	if int64(len(b)) > c.opts.ReadLimit {
		// The peer would close the connection with 1009; fail the one frame instead.
		return fmt.Errorf("tunnel: frame of %d bytes exceeds the %d byte limit", len(b), c.opts.ReadLimit)
	}
	select {
	case <-c.closed:
		return ErrClosed
	default:
	}
	select {
	case c.ctrl <- b:
		return nil
	case <-c.closed:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("tunnel: queue %d-byte frame: %w", len(b), ctx.Err())
	}
}

// MaxFrameBytes is the largest encoded frame the peer accepts.
func (c *Conn) MaxFrameBytes() int64 { return c.opts.ReadLimit }

// Close sends a close frame with code and reason and closes the connection.
// The first close wins; later calls only wait.
func (c *Conn) Close(code int, reason string) {
	c.closeOnce.Do(func() {
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason),
			time.Now().Add(time.Second))
		c.shutdown(&websocket.CloseError{Code: code, Text: reason})
	})
}

// fail closes the connection without a close frame (the transport is gone).
func (c *Conn) fail(err error) {
	c.closeOnce.Do(func() { c.shutdown(err) })
}

func (c *Conn) shutdown(err error) {
	c.err = err
	close(c.closed)
	_ = c.ws.Close()
}

func (c *Conn) writeLoop() {
	defer close(c.writerDone)
	ping := time.NewTicker(c.opts.PingInterval)
	defer ping.Stop()
	for {
		// Control frames first: heartbeats, window updates and deltas never
		// wait behind stream data.
		select {
		case b := <-c.ctrl:
			if !c.write(b) {
				return
			}
			continue
		default:
		}
		if b := c.nextStreamFrame(); b != nil {
			if !c.write(b) {
				return
			}
			continue
		}
		select {
		case b := <-c.ctrl:
			if !c.write(b) {
				return
			}
		case <-c.wake:
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.opts.WriteTimeout)); err != nil {
				c.fail(fmt.Errorf("tunnel: ping: %w", err))
				return
			}
		case <-c.closed:
			return
		}
	}
}

func (c *Conn) write(b []byte) bool {
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		c.fail(fmt.Errorf("tunnel: write: %w", err))
		return false
	}
	return true
}

func (c *Conn) signalWake() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
