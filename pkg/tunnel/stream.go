package tunnel

import (
	"context"
	"fmt"
	"math"
)

// Stream is a flow-controlled channel of frames inside a Conn, identified by
// a non-zero id that both sides agree on through a control frame (for
// shells: shell_open carries the grant_id and the stream id).
//
// Each direction has a credit window in payload bytes. A sender spends
// credit when it queues a frame and blocks when it has none; the receiver
// grants credit back (window_update) only as its application consumes
// frames with Recv. So a receiver that stops reading a stream stops that
// stream only: the sender's writer never holds more than one window of it,
// and the reader never buffers more than one window of it.
type Stream struct {
	c      *Conn
	id     uint32
	window int64

	// Guarded by c.mu.
	credit     int64    // bytes we may still send
	pending    [][]byte // paid-for encoded frames waiting for the writer
	queued     bool     // in c.ready
	inbox      []Frame
	recvWindow int64 // bytes the peer may still send us
	consumed   int64 // consumed since the last window update
	reset      bool

	creditCh chan struct{} // credit granted (cap 1)
	inCh     chan struct{} // frame delivered (cap 1)
	done     chan struct{} // closed locally or reset by the peer
}

// OpenStream registers stream id on this side. The receiving side must open
// the stream from its handler of the control frame that announces it (the
// handler runs before the next frame is read, so no data frame can overtake
// the registration).
func (c *Conn) OpenStream(id uint32) (*Stream, error) {
	if id == 0 {
		return nil, fmt.Errorf("tunnel: stream 0 is the control stream")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.streams[id]; ok {
		return nil, fmt.Errorf("tunnel: stream %d already open", id)
	}
	w := int64(c.opts.StreamWindow)
	s := &Stream{
		c: c, id: id, window: w, credit: w, recvWindow: w,
		creditCh: make(chan struct{}, 1),
		inCh:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	c.streams[id] = s
	return s, nil
}

// ID is the stream id.
func (s *Stream) ID() uint32 { return s.id }

// Send queues a frame on the stream once the peer has granted credit for its
// payload. It blocks while the stream has no credit, until ctx ends, the
// stream is reset or the connection closes. A payload larger than the window
// can never be sent; callers chunk byte streams well below it.
func (s *Stream) Send(ctx context.Context, typ, id string, payload any) error {
	f, err := NewFrame(typ, id, s.id, payload)
	if err != nil {
		return err
	}
	n := int64(len(f.Payload))
	if n > s.window {
		return fmt.Errorf("tunnel: %d-byte payload exceeds stream window %d", n, s.window)
	}
	b, err := f.Encode()
	if err != nil {
		return err
	}
	if int64(len(b)) > s.c.opts.ReadLimit {
		return fmt.Errorf("tunnel: frame of %d bytes exceeds the %d byte limit", len(b), s.c.opts.ReadLimit)
	}
	for {
		s.c.mu.Lock()
		if s.reset {
			s.c.mu.Unlock()
			return ErrStreamReset
		}
		if s.credit >= n {
			s.credit -= n
			s.pending = append(s.pending, b)
			if !s.queued {
				s.queued = true
				s.c.ready = append(s.c.ready, s)
			}
			s.c.mu.Unlock()
			s.c.signalWake()
			return nil
		}
		s.c.mu.Unlock()
		select {
		case <-s.creditCh:
		case <-s.done:
		case <-s.c.closed:
			return ErrClosed
		case <-ctx.Done():
			return fmt.Errorf("tunnel: stream %d: waiting for credit: %w", s.id, ctx.Err())
		}
	}
}

// Recv returns the next frame of the stream and, once half a window has
// been consumed, grants the peer that much credit again.
func (s *Stream) Recv(ctx context.Context) (Frame, error) {
	for {
		s.c.mu.Lock()
		if len(s.inbox) > 0 {
			f := s.inbox[0]
			s.inbox[0] = Frame{}
			s.inbox = s.inbox[1:]
			s.consumed += int64(len(f.Payload))
			var grant int64
			if s.consumed >= s.window/2 {
				grant, s.consumed = s.consumed, 0
				s.recvWindow += grant
			}
			s.c.mu.Unlock()
			if grant > 0 {
				if err := s.c.sendStreamControl(ctx, TypeWindowUpdate, s.id, WindowUpdate{Increment: uint32(grant)}); err != nil {
					return f, err
				}
			}
			return f, nil
		}
		reset := s.reset
		s.c.mu.Unlock()
		if reset {
			return Frame{}, ErrStreamReset
		}
		select {
		case <-s.inCh:
		case <-s.done:
		case <-s.c.closed:
			return Frame{}, ErrClosed
		case <-ctx.Done():
			return Frame{}, ctx.Err()
		}
	}
}

// Close abandons the stream on both sides (stream_reset). Frames still
// queued for it are dropped.
func (s *Stream) Close(ctx context.Context) error {
	if !s.c.forget(s) {
		return nil
	}
	return s.c.sendStreamControl(ctx, TypeStreamReset, s.id, StreamReset{Reason: "closed"})
}

// sendStreamControl queues a flow-control frame for stream id with control
// priority: credit must flow even when the stream's data does not.
func (c *Conn) sendStreamControl(ctx context.Context, typ string, id uint32, payload any) error {
	f, err := NewFrame(typ, "", id, payload)
	if err != nil {
		return err
	}
	b, err := f.Encode()
	if err != nil {
		return err
	}
	return c.sendRaw(ctx, b)
}

// forget removes s and reports whether it was still open.
func (c *Conn) forget(s *Stream) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.streams[s.id] != s {
		return false
	}
	delete(c.streams, s.id)
	s.reset = true
	s.pending = nil
	close(s.done)
	return true
}

func (c *Conn) peerReset(id uint32) {
	c.mu.Lock()
	s := c.streams[id]
	c.mu.Unlock()
	if s != nil {
		c.forget(s)
	}
}

// grant adds credit from a window_update.
func (c *Conn) grant(f Frame) error {
	var wu WindowUpdate
	if err := f.Unmarshal(&wu); err != nil {
		return err
	}
	c.mu.Lock()
	s := c.streams[f.Stream]
	if s == nil {
		c.mu.Unlock()
		return nil // the stream was closed meanwhile
	}
	if s.credit+int64(wu.Increment) > math.MaxInt32 {
		c.mu.Unlock()
		return fmt.Errorf("stream %d: window overflow", f.Stream)
	}
	s.credit += int64(wu.Increment)
	c.mu.Unlock()
	select {
	case s.creditCh <- struct{}{}:
	default:
	}
	return nil
}

// deliver appends a data frame to its stream's inbox. A peer that sends more
// than it was granted is broken or hostile: the connection is closed rather
// than buffering without bound.
func (c *Conn) deliver(f Frame) error {
	n := int64(len(f.Payload))
	c.mu.Lock()
	s := c.streams[f.Stream]
	if s == nil {
		c.mu.Unlock()
		return nil // late frame for a stream we already closed
	}
	if n > s.recvWindow {
		c.mu.Unlock()
		return fmt.Errorf("stream %d: %d bytes beyond the granted window", f.Stream, n-s.recvWindow)
	}
	s.recvWindow -= n
	s.inbox = append(s.inbox, f)
	c.mu.Unlock()
	select {
	case s.inCh <- struct{}{}:
	default:
	}
	return nil
}

// nextStreamFrame pops one frame of the next ready stream, round robin.
func (c *Conn) nextStreamFrame() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.ready) > 0 {
		s := c.ready[0]
		c.ready[0] = nil
		c.ready = c.ready[1:]
		if len(s.pending) == 0 {
			s.queued = false
			continue
		}
		b := s.pending[0]
		s.pending[0] = nil
		s.pending = s.pending[1:]
		if len(s.pending) > 0 {
			c.ready = append(c.ready, s)
		} else {
			s.queued = false
		}
		return b
	}
	return nil
}
