package connect

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/tunnel"
)

// Annotations the connector writes.
const (
	// AnnotationRequestID links an AgentRun to the platform request that created it.
	AnnotationRequestID = "agentkube.io/platform-request-id"
	// AnnotationRequestedBy is the platform user behind a run.
	AnnotationRequestedBy = "agentkube.io/requested-by"
	// AnnotationEnsurePod is bumped on an Agent to make its controller
	// reconcile now (and recreate a missing pod).
	AnnotationEnsurePod = "agentkube.io/ensure-pod-requested-at"
)

const (
	defaultRequestTimeout = 5 * time.Minute
	// recheck bounds how long a missed cache notification can delay an answer.
	recheck = time.Second
)

// outputStream registers the output stream an invoke_agent names, when this
// operator can follow run output; nil otherwise (the platform then gets the
// result's tail only).
func (c *Connector) outputStream(conn *tunnel.Conn, f tunnel.Frame) *tunnel.Stream {
	if f.Type != tunnel.TypeInvokeAgent || c.opts.RunOutput == nil {
		return nil
	}
	var req tunnel.InvokeAgent
	if f.Unmarshal(&req) != nil || req.OutputStream == 0 {
		return nil
	}
	s, err := conn.OpenStream(req.OutputStream)
	if err != nil {
		c.log.Info("cannot open the invocation's output stream; answering without it", "stream", req.OutputStream, "err", err)
		return nil
	}
	return s
}

// serveRequest answers one request. out is the invocation's output stream
// or nil.
func (c *Connector) serveRequest(ctx context.Context, conn *tunnel.Conn, f tunnel.Frame, out *tunnel.Stream) {
	switch f.Type {
	case tunnel.TypeInvokeAgent:
		var req tunnel.InvokeAgent
		if err := f.Unmarshal(&req); err != nil {
			c.reply(ctx, conn, f, tunnel.InvokeAgentResult{Error: &tunnel.Error{Code: tunnel.CodeInvalid, Message: err.Error()}})
			return
		}
		c.reply(ctx, conn, f, c.invoke(ctx, f.ID, req, out))
	case tunnel.TypeEnsurePod:
		var req tunnel.EnsurePod
		if err := f.Unmarshal(&req); err != nil {
			c.reply(ctx, conn, f, tunnel.EnsurePodResult{Error: &tunnel.Error{Code: tunnel.CodeInvalid, Message: err.Error()}})
			return
		}
		c.reply(ctx, conn, f, c.ensurePod(ctx, req))
	}
}

// reply sends the result of request f; an *tunnel.Error alone becomes a
// result with only its error set.
func (c *Connector) reply(ctx context.Context, conn *tunnel.Conn, f tunnel.Frame, result any) {
	typ := f.Type + "_result"
	if e, ok := result.(*tunnel.Error); ok {
		result = map[string]any{"error": e}
	}
	if err := conn.Send(ctx, typ, f.ID, result); err != nil {
		c.log.Info("could not send a result; the platform will time out the request", "type", typ, "err", err)
	}
}

func validRef(ns, name string) *tunnel.Error {
	if len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
		return &tunnel.Error{Code: tunnel.CodeInvalid, Message: fmt.Sprintf("%q/%q is not a valid namespace/name", ns, name)}
	}
	return nil
}

func timeoutOf(seconds int) time.Duration {
	if seconds <= 0 {
		return defaultRequestTimeout
	}
	return time.Duration(seconds) * time.Second
}

// invoke creates an AgentRun (trigger Platform) and waits for its terminal
// phase. The run's own timeout is the request's, so the cluster stops the
// run when the platform stops waiting. With an output stream, the run's
// output is followed onto it meanwhile, and the result waits (briefly) for
// the output to be sent.
func (c *Connector) invoke(ctx context.Context, requestID string, req tunnel.InvokeAgent, out *tunnel.Stream) (res tunnel.InvokeAgentResult) {
	followed := false
	if out != nil {
		defer func() {
			if !followed { // no run to follow: end the stream at once
				c.endOutput(ctx, out, nil)
			}
			res.OutputStreamed = true
		}()
	}
	if e := validRef(req.Namespace, req.Name); e != nil {
		return tunnel.InvokeAgentResult{Error: e}
	}
	timeout := timeoutOf(req.TimeoutSeconds)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var agent agentkubev1alpha1.Agent
	if err := c.tracker.cache.Get(ctx, types.NamespacedName{Namespace: req.Namespace, Name: req.Name}, &agent); err != nil {
		return tunnel.InvokeAgentResult{Error: apiError("agent", req.Namespace, req.Name, err)}
	}
	prefix := req.Name
	if len(prefix) > 40 {
		prefix = prefix[:40]
	}
	run := &agentkubev1alpha1.AgentRun{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: prefix + "-platform-",
			Namespace:    req.Namespace,
			Annotations:  map[string]string{AnnotationRequestID: requestID},
			// Owned by the Agent so run history is cleaned up with it.
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: agentkubev1alpha1.SchemeGroupVersion.String(), Kind: "Agent",
				Name: agent.Name, UID: agent.UID,
			}},
		},
		Spec: agentkubev1alpha1.AgentRunSpec{
			AgentRef: agentkubev1alpha1.LocalObjectReference{Name: req.Name},
			Input:    req.Input,
			Args:     req.Args,
			Timeout:  &metav1.Duration{Duration: timeout},
			Trigger:  agentkubev1alpha1.RunTriggerPlatform,
		},
	}
	if req.RequestedBy != "" {
		run.Annotations[AnnotationRequestedBy] = req.RequestedBy
	}
	if err := c.client.Create(ctx, run); err != nil {
		return tunnel.InvokeAgentResult{Error: apiError("agentrun", req.Namespace, run.GenerateName, err)}
	}
	c.log.Info("platform invoked agent", "agent", client.ObjectKeyFromObject(&agent), "run", run.Name)
	if out != nil {
		followed = true
		followCtx, stopFollowing := context.WithCancel(ctx)
		following := make(chan struct{})
		go func() {
			defer close(following)
			c.followOutput(followCtx, out, client.ObjectKeyFromObject(run))
		}()
		defer func() {
			// The run has ended (or the wait did): give its last output a
			// moment to reach the stream, then stop following.
			select {
			case <-following:
			case <-time.After(outputGrace):
			}
			stopFollowing()
			<-following
		}()
	}

	key := tunnel.ObjectKey{Kind: "AgentRun", Namespace: run.Namespace, Name: run.Name}
	changed, stop := c.tracker.watch(key)
	defer stop()
	tick := time.NewTicker(recheck)
	defer tick.Stop()
	for {
		var cur agentkubev1alpha1.AgentRun
		err := c.tracker.cache.Get(ctx, client.ObjectKeyFromObject(run), &cur)
		if err == nil && terminal(cur.Status.Phase) {
			return tunnel.InvokeAgentResult{
				RunName: cur.Name, Phase: cur.Status.Phase, ExitCode: cur.Status.ExitCode,
				Output: cur.Status.OutputTail, Message: cur.Status.Message,
			}
		}
		select {
		case <-changed:
		case <-tick.C:
		case <-ctx.Done():
			return tunnel.InvokeAgentResult{RunName: run.Name, Phase: cur.Status.Phase,
				Error: &tunnel.Error{Code: tunnel.CodeTimeout, Message: fmt.Sprintf("run %s did not finish within %s", run.Name, timeout)}}
		}
	}
}

func terminal(phase string) bool {
	switch phase {
	case agentkubev1alpha1.AgentRunPhaseSucceeded, agentkubev1alpha1.AgentRunPhaseFailed, agentkubev1alpha1.AgentRunPhaseTimedOut:
		return true
	}
	return false
}

// ensurePod reports the Agent's pod; when it is missing it asks the Agent
// controller to reconcile now (an annotation change is an event it
// watches) and waits for the pod to appear.
func (c *Connector) ensurePod(ctx context.Context, req tunnel.EnsurePod) tunnel.EnsurePodResult {
	if e := validRef(req.Namespace, req.Name); e != nil {
		return tunnel.EnsurePodResult{Error: e}
	}
	ctx, cancel := context.WithTimeout(ctx, timeoutOf(req.TimeoutSeconds))
	defer cancel()
	var agent agentkubev1alpha1.Agent
	if err := c.tracker.cache.Get(ctx, types.NamespacedName{Namespace: req.Namespace, Name: req.Name}, &agent); err != nil {
		return tunnel.EnsurePodResult{Error: apiError("agent", req.Namespace, req.Name, err)}
	}
	podName := agent.Status.PodName
	if podName == "" {
		podName = agent.Name // an Agent runs as one pod named after it
	}
	key := tunnel.ObjectKey{Kind: "Pod", Namespace: agent.Namespace, Name: podName}
	changed, stop := c.tracker.watch(key)
	defer stop()
	nudged := false
	tick := time.NewTicker(recheck)
	defer tick.Stop()
	for {
		var pod corev1.Pod
		err := c.tracker.cache.Get(ctx, types.NamespacedName{Namespace: agent.Namespace, Name: podName}, &pod)
		if err == nil && pod.DeletionTimestamp == nil {
			return tunnel.EnsurePodResult{PodName: pod.Name, Phase: string(pod.Status.Phase), Ready: podReady(&pod)}
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return tunnel.EnsurePodResult{Error: apiError("pod", agent.Namespace, podName, err)}
		}
		if !nudged {
			patch := client.MergeFrom(agent.DeepCopy())
			if agent.Annotations == nil {
				agent.Annotations = map[string]string{}
			}
			agent.Annotations[AnnotationEnsurePod] = time.Now().UTC().Format(time.RFC3339Nano)
			if err := c.client.Patch(ctx, &agent, patch); err != nil {
				return tunnel.EnsurePodResult{Error: apiError("agent", agent.Namespace, agent.Name, err)}
			}
			nudged = true
		}
		select {
		case <-changed:
		case <-tick.C:
		case <-ctx.Done():
			return tunnel.EnsurePodResult{PodName: podName, Error: &tunnel.Error{Code: tunnel.CodeTimeout, Message: "the Agent's pod did not appear in time"}}
		}
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// apiError maps a Kubernetes API error to a result error.
func apiError(what, ns, name string, err error) *tunnel.Error {
	switch {
	case apierrors.IsNotFound(err):
		return &tunnel.Error{Code: tunnel.CodeNotFound, Message: fmt.Sprintf("%s %s/%s not found", what, ns, name)}
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		return &tunnel.Error{Code: tunnel.CodeInvalid, Message: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return &tunnel.Error{Code: tunnel.CodeTimeout, Message: fmt.Sprintf("%s %s/%s: %v", what, ns, name, err)}
	default:
		return &tunnel.Error{Code: tunnel.CodeInternal, Message: fmt.Sprintf("%s %s/%s: %v", what, ns, name, err)}
	}
}
