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

func (h *Hub) request(ctx context.Context, deploymentID, typ string, payload any, timeoutSeconds int, result any) error {
	d := h.lookup(deploymentID)
	if d == nil {
		return ErrOperatorOffline
	}
	h.mu.Lock()
	s := d.active
	h.mu.Unlock()
	if s == nil {
		return ErrOperatorOffline
	}
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
