// Package shellexec is the operator's side of browser shells: it answers
// shell_open frames from the platform tunnel by opening a PTY in an Agent
// pod's runtime container through pods/exec (client-go's WebSocket executor,
// falling back to SPDY) with the manager's own identity, and relays input,
// output, resizes and the exit status over the frame's tunnel stream.
//
// The wire format is in pkg/shellexec/protocol; docs/shell.md describes the
// whole path from the browser to the pod.
package shellexec

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/streaming/pkg/httpstream"

	"github.com/exo-in-go/exo/pkg/controllers/agent"
	"github.com/exo-in-go/exo/pkg/shellexec/protocol"
	"github.com/exo-in-go/exo/pkg/tunnel"
)

// DefaultContainer is the Agent pod's one container, the runtime's image
// with the agentlet as its entrypoint.
const DefaultContainer = agent.ContainerAgent

// DefaultCommand starts the best shell the image has: bash when present,
// else sh (nothing guarantees bash in a runtime image). An exec inherits the
// container's environment, and the agentlet, the container's entrypoint,
// takes its token from there: the shell drops it first, so a person in the
// shell sees no more of the agentlet than the runtime CLI does.
var DefaultCommand = []string{"/bin/sh", "-c", "unset AGENTLET_TOKEN; command -v bash >/dev/null 2>&1 && exec bash -il || exec sh -i"}

// agentGroup is the API group of the Agent kind that owns agent pods.
const agentGroup = "agentkube.io"

// StreamOpener is the part of *tunnel.Conn the executor uses.
type StreamOpener interface {
	OpenStream(id uint32) (*tunnel.Stream, error)
}

// Options configure an Executor.
type Options struct {
	// Config is the manager's rest.Config: shells run with its identity,
	// which the admission webhook allows into agent pods.
	Config *rest.Config
	// Command is the argv run in the container; DefaultCommand when empty.
	Command []string
	// Container is the container when shell_open names none; DefaultContainer when empty.
	Container string
	// CloseTimeout bounds the wait for the platform to acknowledge the final
	// shell_close before the stream is reset anyway (default 10s).
	CloseTimeout time.Duration
	Log          logr.Logger
}

// Executor runs the shells of one operator. It is safe for concurrent use.
type Executor struct {
	opts   Options
	client kubernetes.Interface

	mu       sync.Mutex
	sessions map[string]context.CancelCauseFunc // grant id → cancel
	wg       sync.WaitGroup
}

// New builds an Executor.
func New(opts Options) (*Executor, error) {
	if opts.Config == nil {
		return nil, errors.New("shellexec: Config is required")
	}
	if len(opts.Command) == 0 {
		opts.Command = DefaultCommand
	}
	if opts.Container == "" {
		opts.Container = DefaultContainer
	}
	if opts.CloseTimeout <= 0 {
		opts.CloseTimeout = 10 * time.Second
	}
	client, err := kubernetes.NewForConfig(opts.Config)
	if err != nil {
		return nil, fmt.Errorf("shellexec: build client: %w", err)
	}
	return &Executor{opts: opts, client: client, sessions: map[string]context.CancelCauseFunc{}}, nil
}

// errClosedByPlatform is the cancel cause when the platform ends a shell.
var errClosedByPlatform = errors.New("closed by the platform")

// Handle processes the shell frames of the control stream and reports
// whether f was one. It must run on the tunnel's reading goroutine (inside
// the tunnel.Handler): shell_open registers its stream before the next frame
// is read, so no stream frame can overtake it. The session itself runs in a
// goroutine bound to ctx, which should end with the tunnel connection.
//
// shell_close arrives on the control stream rather than the shell's own
// stream so that it is never stuck behind input the shell is not reading.
func (e *Executor) Handle(ctx context.Context, conn StreamOpener, f tunnel.Frame) bool {
	switch f.Type {
	case tunnel.TypeShellOpen:
		e.open(ctx, conn, f)
	case tunnel.TypeShellClose:
		e.mu.Lock()
		cancel := e.sessions[f.ID]
		e.mu.Unlock()
		if cancel != nil {
			cancel(errClosedByPlatform)
		}
	default:
		return false
	}
	return true
}

// Wait blocks until every session has ended (after their contexts ended).
func (e *Executor) Wait() { e.wg.Wait() }

// Active is the number of running sessions.
func (e *Executor) Active() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.sessions)
}

func (e *Executor) open(ctx context.Context, conn StreamOpener, f tunnel.Frame) {
	var o protocol.Open
	if err := f.Unmarshal(&o); err != nil || o.Stream == 0 || o.GrantID == "" {
		// Without a valid stream there is nowhere to answer; the platform
		// times the session out.
		e.opts.Log.Info("Ignoring malformed shell_open", "err", err)
		return
	}
	log := e.opts.Log.WithValues("grant", redact(o.GrantID), "namespace", o.Namespace, "agent", o.Agent, "stream", o.Stream)
	s, err := conn.OpenStream(o.Stream)
	if err != nil {
		log.Error(err, "Cannot open shell stream")
		return
	}
	sctx, cancel := context.WithCancelCause(ctx)
	e.mu.Lock()
	if _, dup := e.sessions[o.GrantID]; dup {
		e.mu.Unlock()
		cancel(nil)
		log.Info("Refusing a second shell_open for a running grant")
		_ = s.Close(ctx)
		return
	}
	e.sessions[o.GrantID] = cancel
	e.mu.Unlock()

	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer func() {
			e.mu.Lock()
			delete(e.sessions, o.GrantID)
			e.mu.Unlock()
			cancel(nil)
		}()
		sess := &session{e: e, ctx: ctx, sctx: sctx, cancel: cancel, stream: s, open: o, log: log}
		sess.run()
	}()
}

// target is the pod and container a shell opens in.
type target struct {
	pod       *corev1.Pod
	container string
}

// resolve finds the Agent's pod and checks that it really is that Agent's
// pod: the platform passes user input, and the manager's identity may exec
// into more than agent pods, so a name alone must never be enough.
func (e *Executor) resolve(ctx context.Context, o protocol.Open) (target, *protocol.Error) {
	if o.Namespace == "" || o.Agent == "" {
		return target{}, &protocol.Error{Code: protocol.CodeInvalid, Message: "namespace and agent are required"}
	}
	gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pod, err := e.client.CoreV1().Pods(o.Namespace).Get(gctx, o.Agent, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return target{}, &protocol.Error{Code: protocol.CodeNotFound, Message: fmt.Sprintf("agent %s/%s has no pod", o.Namespace, o.Agent)}
	case apierrors.IsForbidden(err):
		return target{}, &protocol.Error{Code: protocol.CodeForbidden, Message: "the operator may not read the agent's pod"}
	case err != nil:
		return target{}, &protocol.Error{Code: protocol.CodeUnavailable, Message: "cannot read the agent's pod: " + err.Error()}
	}
	owner := metav1.GetControllerOf(pod)
	if owner == nil || owner.Kind != "Agent" || owner.Name != o.Agent || groupOf(owner.APIVersion) != agentGroup {
		return target{}, &protocol.Error{Code: protocol.CodeNotFound, Message: fmt.Sprintf("pod %s/%s does not belong to agent %s", o.Namespace, o.Agent, o.Agent)}
	}
	container := o.Container
	if container == "" {
		container = e.opts.Container
	}
	if !slices.ContainsFunc(pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == container }) {
		return target{}, &protocol.Error{Code: protocol.CodeNotFound, Message: fmt.Sprintf("agent pod has no container %q", container)}
	}
	if pod.Status.Phase != corev1.PodRunning {
		return target{}, &protocol.Error{Code: protocol.CodeUnavailable, Message: fmt.Sprintf("agent pod is %s, not Running", pod.Status.Phase)}
	}
	return target{pod: pod, container: container}, nil
}

// executor builds the pods/exec stream: WebSocket (v5 channel protocol)
// first, SPDY when the upgrade fails (older API servers, proxies that only
// pass SPDY), as kubectl does.
func (e *Executor) executor(t target) (remotecommand.Executor, error) {
	return newExecutor(e.opts.Config, e.execURL(t))
}

func newExecutor(cfg *rest.Config, u *url.URL) (remotecommand.Executor, error) {
	ws, err := remotecommand.NewWebSocketExecutor(cfg, "GET", u.String())
	if err != nil {
		return nil, fmt.Errorf("websocket executor: %w", err)
	}
	spdy, err := remotecommand.NewSPDYExecutor(cfg, "POST", u)
	if err != nil {
		return nil, fmt.Errorf("spdy executor: %w", err)
	}
	return remotecommand.NewFallbackExecutor(ws, spdy, fallBackToSPDY)
}

// fallBackToSPDY says whether the WebSocket attempt failed in a way SPDY
// may not: the upgrade was refused, or a proxy gorilla cannot dial. The
// error types are k8s.io/streaming's, which client-go's WebSocket transport
// returns; apimachinery's deprecated copies are different types and never
// match.
func fallBackToSPDY(err error) bool {
	return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
}

func (e *Executor) execURL(t target) *url.URL {
	return e.client.CoreV1().RESTClient().Post().
		Resource("pods").Namespace(t.pod.Namespace).Name(t.pod.Name).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: t.container,
			Command:   e.opts.Command,
			Stdin:     true,
			Stdout:    true,
			TTY:       true, // a TTY merges stderr into stdout
		}, scheme.ParameterCodec).URL()
}

func groupOf(apiVersion string) string {
	for i := range len(apiVersion) {
		if apiVersion[i] == '/' {
			return apiVersion[:i]
		}
	}
	return ""
}

// redact keeps enough of a grant id to correlate logs, never all of it.
func redact(grant string) string {
	if len(grant) <= 8 {
		return "…"
	}
	return grant[:8] + "…"
}
