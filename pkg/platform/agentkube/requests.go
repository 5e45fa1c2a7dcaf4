package agentkube

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/exo-in-go/exo/pkg/tunnel"
)

// ErrOperatorOffline is returned by requests to a deployment whose operator
// is not connected, or whose connection dropped before it answered.
var ErrOperatorOffline = errors.New("the deployment's operator is not connected")

// ErrRequestTimeout is returned when the operator did not answer in time.
var ErrRequestTimeout = errors.New("the operator did not answer in time")

// replySlack is how much longer than the request's own timeout the platform
// waits, so the operator's timeout result (with the run's name) wins the race.
const replySlack = 5 * time.Second

// InvokeAgent asks the deployment's operator to run an Agent and waits for
// the run's terminal state. An error result from the operator is returned in
// the result, not as error.
func (h *Hub) InvokeAgent(ctx context.Context, deploymentID string, req tunnel.InvokeAgent) (tunnel.InvokeAgentResult, error) {
	var res tunnel.InvokeAgentResult
	err := h.request(ctx, deploymentID, tunnel.TypeInvokeAgent, req, req.TimeoutSeconds, &res)
	return res, err
}

// EnsurePod asks the operator to make sure an Agent's pod exists.
func (h *Hub) EnsurePod(ctx context.Context, deploymentID string, req tunnel.EnsurePod) (tunnel.EnsurePodResult, error) {
	var res tunnel.EnsurePodResult
	err := h.request(ctx, deploymentID, tunnel.TypeEnsurePod, req, req.TimeoutSeconds, &res)
	return res, err
}

// outputDrain bounds how long a finished invocation waits for the rest of
// its streamed output, which may trail the result (streams and the control
// stream are written independently).
const outputDrain = 30 * time.Second

// InvokeAgentStreaming is InvokeAgent with the run's output delivered to
// onOutput as the agent produces it, on a flow-controlled tunnel stream of
// its own: a slow onOutput (a slow browser) holds back this run's output
// only. onOutput is called from one goroutine, never after this returns; an
// error from it stops the streaming, not the request. When the operator
// cannot stream (an older one), onOutput is never called and the result
// carries the output's tail as usual.
func (h *Hub) InvokeAgentStreaming(ctx context.Context, deploymentID string, req tunnel.InvokeAgent, onOutput func(string) error) (tunnel.InvokeAgentResult, error) {
	var res tunnel.InvokeAgentResult
	s := h.activeSession(deploymentID)
	if s == nil {
		return res, ErrOperatorOffline
	}
	out, err := h.openOutputStream(s.conn)
	if err != nil {
		return res, err
	}
	defer func() { _ = out.Close(context.WithoutCancel(ctx)) }() // no-op once the pump has reset it
	req.OutputStream = out.ID()

	pumpCtx, stopPump := context.WithCancel(ctx)
	defer stopPump()
	pumped := make(chan struct{})
	go func() {
		defer close(pumped)
		pumpOutput(pumpCtx, out, onOutput)
	}()
	err = h.roundTrip(ctx, s, tunnel.TypeInvokeAgent, req, req.TimeoutSeconds, &res)
	if err == nil && res.OutputStreamed {
		select {
		case <-pumped:
		case <-time.After(outputDrain):
		}
	}
	stopPump()
	<-pumped
	return res, err
}

// pumpOutput delivers an output stream to onOutput until its end frame, then
// resets the stream, which releases the operator's side.
func pumpOutput(ctx context.Context, out *tunnel.Stream, onOutput func(string) error) {
	defer func() { _ = out.Close(context.WithoutCancel(ctx)) }() // best effort: the connection may be gone
	for {
		f, err := out.Recv(ctx)
		if err != nil {
			return
		}
		switch f.Type {
		case tunnel.TypeInvokeAgentOutput:
			var o tunnel.InvokeAgentOutput
			if f.Unmarshal(&o) != nil || onOutput(o.Data) != nil {
				return
			}
		case tunnel.TypeInvokeAgentOutputEnd:
			return
		}
	}
}

// openOutputStream registers the next free odd stream id on conn.
func (h *Hub) openOutputStream(conn *tunnel.Conn) (*tunnel.Stream, error) {
	var lastErr error
	for range 16 {
		id := h.nextOutputStream.Add(2) - 1 // 1, 3, 5, …; wraps to odd ids again
		s, err := conn.OpenStream(id)
		if err == nil {
			return s, nil
		}
		lastErr = err // still held by a long invocation after a wrap-around
	}
	return nil, fmt.Errorf("no free tunnel stream id: %w", lastErr)
}

func (h *Hub) activeSession(deploymentID string) *session {
	d := h.lookup(deploymentID)
	if d == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return d.active
}

func (h *Hub) request(ctx context.Context, deploymentID, typ string, payload any, timeoutSeconds int, result any) error {
	s := h.activeSession(deploymentID)
	if s == nil {
		return ErrOperatorOffline
	}
	return h.roundTrip(ctx, s, typ, payload, timeoutSeconds, result)
}

// roundTrip sends a request on s and waits for its result.
func (h *Hub) roundTrip(ctx context.Context, s *session, typ string, payload any, timeoutSeconds int, result any) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(timeoutSeconds)*time.Second+replySlack)
	defer cancel()

	id := newRequestID()
	ch := make(chan tunnel.Frame, 1)
	s.mu.Lock()
	s.pending[id] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
	}()
	if err := s.conn.Send(ctx, typ, id, payload); err != nil {
		if errors.Is(err, tunnel.ErrClosed) {
			return ErrOperatorOffline
		}
		return fmt.Errorf("send %s: %w", typ, err)
	}
	select {
	case f, ok := <-ch:
		if !ok {
			return fmt.Errorf("%w: connection lost before the answer", ErrOperatorOffline)
		}
		return f.Unmarshal(result)
	case <-s.conn.Done():
		return fmt.Errorf("%w: connection lost before the answer", ErrOperatorOffline)
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return ErrRequestTimeout
		}
		return ctx.Err()
	}
}
