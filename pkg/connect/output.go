package connect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
	"unicode/utf8"

	"sigs.k8s.io/controller-runtime/pkg/client"

	agentletclient "github.com/exo-in-go/exo/pkg/agentlet/client"
	"github.com/exo-in-go/exo/pkg/agentlet/endpoint"
	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/tunnel"
)

// RunOutput opens the followed output of a run in an Agent's agentlet: the
// stream ends when the run ends.
type RunOutput interface {
	FollowRunOutput(ctx context.Context, agent *agentkubev1alpha1.Agent, runID string) (io.ReadCloser, error)
}

// Locator finds an Agent's agentlet, the token it accepts and, when it serves
// TLS, the transport that verifies it; the aggregated API's
// pkg/registry/agent.PodLocator is one.
type Locator interface {
	Locate(ctx context.Context, agent *agentkubev1alpha1.Agent) (endpoint.Endpoint, error)
}

// AgentletOutput is the RunOutput of a real cluster: it reaches the agentlet
// as the aggregated API's agents/log does, with the Agent's own token.
type AgentletOutput struct {
	Locator Locator
	// HTTPClient reaches plain-HTTP agentlets (https ones come with their own
	// verifying transport from the Locator). It must not set a Timeout, which
	// would cut a followed stream; nil uses http.DefaultClient.
	HTTPClient *http.Client
}

// FollowRunOutput implements RunOutput.
func (o AgentletOutput) FollowRunOutput(ctx context.Context, agent *agentkubev1alpha1.Agent, runID string) (io.ReadCloser, error) {
	ep, err := o.Locator.Locate(ctx, agent)
	if err != nil {
		return nil, err
	}
	c, err := ep.Client(o.HTTPClient)
	if err != nil {
		return nil, err
	}
	out, err := c.StreamOutput(ctx, runID, agentletclient.OutputOptions{Follow: true})
	if err != nil {
		return nil, err
	}
	return out, nil
}

const (
	// outputRetry is how often following waits for a run the agentlet has
	// not started yet.
	outputRetry = 250 * time.Millisecond
	// outputGrace is how long a finished run's output may still take to
	// reach the platform before the result is sent without it.
	outputGrace = 10 * time.Second
	// resetWait bounds the wait for the platform to reset a finished stream.
	resetWait = 30 * time.Second
)

// followOutput sends the run's output on the platform's stream as the
// agentlet produces it, then ends the stream. It returns once the end frame
// is queued: when the run's output has ended or ctx is canceled.
func (c *Connector) followOutput(ctx context.Context, s *tunnel.Stream, run client.ObjectKey) {
	err := c.sendOutput(ctx, s, run)
	if err != nil && !errors.Is(err, context.Canceled) {
		c.log.V(1).Info("run output not streamed", "run", run, "err", err)
	} else {
		err = nil
	}
	c.endOutput(ctx, s, err)
}

// endOutput queues invoke_agent_output_end, even after ctx is canceled
// (within a bound) so that the platform knows nothing more is coming. The
// platform resets the stream when it reads that frame; the stream is
// released then, in the background. Resetting from this side first would
// drop frames still queued.
func (c *Connector) endOutput(ctx context.Context, s *tunnel.Stream, err error) {
	end := tunnel.InvokeAgentOutputEnd{}
	if err != nil {
		end.Error = err.Error()
	}
	sendCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resetWait)
	if s.Send(sendCtx, tunnel.TypeInvokeAgentOutputEnd, "", end) != nil {
		_ = s.Close(sendCtx)
		cancel()
		return
	}
	go func() {
		defer cancel()
		_, _ = s.Recv(sendCtx) // nothing is sent to us here: this waits for the reset
		_ = s.Close(sendCtx)
	}()
}

func (c *Connector) sendOutput(ctx context.Context, s *tunnel.Stream, key client.ObjectKey) error {
	out, err := c.openOutput(ctx, key)
	if err != nil || out == nil {
		return err
	}
	defer out.Close()
	buf := make([]byte, tunnel.MaxOutputChunk)
	held := 0 // bytes of an incomplete UTF-8 sequence carried to the next chunk
	for {
		n, rerr := out.Read(buf[held:])
		n += held
		cut := utf8Boundary(buf[:n])
		if rerr != nil {
			cut = n // at the end nothing more can complete a sequence
		}
		if cut > 0 {
			if err := s.Send(ctx, tunnel.TypeInvokeAgentOutput, "", tunnel.InvokeAgentOutput{Data: string(buf[:cut])}); err != nil {
				return err
			}
		}
		held = copy(buf, buf[cut:n])
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("reading the run's output: %w", rerr)
		}
	}
}

// openOutput waits for the agentlet to know the run and opens its followed
// output; nil without error when the run ended before it ever started there
// (its result then carries everything there is).
func (c *Connector) openOutput(ctx context.Context, key client.ObjectKey) (io.ReadCloser, error) {
	tick := time.NewTicker(outputRetry)
	defer tick.Stop()
	var lastErr error
	for {
		var run agentkubev1alpha1.AgentRun
		if err := c.tracker.cache.Get(ctx, key, &run); err == nil {
			if run.Status.RunID != "" {
				var agent agentkubev1alpha1.Agent
				err := c.tracker.cache.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: run.Spec.AgentRef.Name}, &agent)
				if err == nil {
					out, err := c.opts.RunOutput.FollowRunOutput(ctx, &agent, run.Status.RunID)
					if err == nil {
						return out, nil
					}
				}
				lastErr = err
			}
			if terminal(run.Status.Phase) && run.Status.RunID == "" {
				return nil, nil
			}
			if terminal(run.Status.Phase) && lastErr != nil {
				return nil, lastErr
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			if lastErr != nil {
				return nil, lastErr
			}
			return nil, ctx.Err()
		}
	}
}

// utf8Boundary returns the length of the longest prefix of b that does not
// end inside a UTF-8 sequence, so text is never split mid-character.
func utf8Boundary(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if !utf8.RuneStart(b[i]) {
			continue
		}
		if utf8.FullRune(b[i:]) {
			return len(b)
		}
		return i
	}
	return len(b)
}
