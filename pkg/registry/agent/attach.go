package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/proxy"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"

	agentletapi "github.com/exo-in-go/exo/pkg/agentlet/api"
	"github.com/exo-in-go/exo/pkg/apis/subresources"
	"github.com/exo-in-go/exo/pkg/apis/subresources/validation"
)

// AttachREST is agents/attach: an interactive terminal in the Agent's runtime, over the
// Kubernetes remote-command WebSocket protocol (v5.channel.k8s.io), proxied byte for byte to
// the agentlet's /v1/attach. The agentlet pings every 20 s; its pings cross every hop
// (client, kube-apiserver, this server), so no idle timeout along the way closes a quiet
// session.
type AttachREST struct {
	agents     AgentReader
	locator    Locator
	streams    *StreamLimiter
	authorizer authorizer.Authorizer
	transport  http.RoundTripper
}

var (
	_ rest.Storage   = &AttachREST{}
	_ rest.Scoper    = &AttachREST{}
	_ rest.Connecter = &AttachREST{}
)

// NewAttachREST returns the agents/attach storage. authz is the server's (delegated)
// authorizer, used to require create on agents/attach for WebSocket upgrades. transport
// reaches agentlets (its TLS configuration is used for https agentlets); nil uses
// http.DefaultTransport.
func NewAttachREST(agents AgentReader, locator Locator, streams *StreamLimiter, authz authorizer.Authorizer, transport http.RoundTripper) *AttachREST {
	if transport == nil {
		transport = http.DefaultTransport
	}
	return &AttachREST{agents: agents, locator: locator, streams: streams, authorizer: authz, transport: transport}
}

// New implements rest.Storage.
func (r *AttachREST) New() runtime.Object { return &subresources.AgentAttachOptions{} }

// Destroy implements rest.Storage.
func (r *AttachREST) Destroy() {}

// NamespaceScoped implements rest.Scoper.
func (r *AttachREST) NamespaceScoped() bool { return true }

// NewConnectOptions implements rest.Connecter.
func (r *AttachREST) NewConnectOptions() (runtime.Object, bool, string) {
	return &subresources.AgentAttachOptions{}, false, ""
}

// ConnectMethods implements rest.Connecter. GET is what WebSocket clients send; POST is
// there for clients that negotiate the upgrade on a POST, as for pods/attach.
func (r *AttachREST) ConnectMethods() []string { return []string{http.MethodGet, http.MethodPost} }

// Connect implements rest.Connecter. The caller's rights, the Agent, a stream slot and the
// agentlet's address are all checked before the upgrade, so every refusal is a Status with
// a real code (≥400) that kube-apiserver passes through; after a 101 only logging is left.
func (r *AttachREST) Connect(ctx context.Context, name string, options runtime.Object, responder rest.Responder) (http.Handler, error) {
	opts, ok := options.(*subresources.AgentAttachOptions)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid options %T", options))
	}
	if errs := validation.ValidateAgentAttachOptions(opts); len(errs) > 0 {
		return nil, apierrors.NewInvalid(schema.GroupKind{Group: subresources.GroupName, Kind: "AgentAttachOptions"}, name, errs)
	}
	if err := r.authorizeCreate(ctx, name); err != nil {
		return nil, err
	}
	namespace := genericapirequest.NamespaceValue(ctx)
	agent, err := getAgent(ctx, r.agents, namespace, name)
	if err != nil {
		return nil, err
	}
	if agent.Spec.Paused {
		return nil, apierrors.NewConflict(subresources.Resource("agents"), name,
			errors.New("the Agent is paused and has no pod to attach to; set spec.paused to false on agents.agentkube.io first"))
	}
	if err := checkReady(agent); err != nil {
		return nil, err
	}
	release, err := r.streams.TryAcquire()
	if err != nil {
		return nil, err
	}
	ep, err := r.locator.Locate(ctx, agent)
	if err != nil {
		release()
		return nil, err
	}
	token := ep.Token
	location, err := url.Parse(ep.URL)
	if err != nil {
		release()
		return nil, apierrors.NewInternalError(fmt.Errorf("agentlet base URL %q: %w", ep.URL, err))
	}
	// path.Join, not URL.JoinPath: the latter leaves "v1/attach" without its leading slash
	// for a base URL without a path, and the request line would be malformed.
	location.Path = path.Join("/", location.Path, agentletapi.PathAttach)

	handler := &proxy.UpgradeAwareHandler{
		Location: location,
		// An https agentlet is dialed with the endpoint's transport: TLS 1.3, the
		// Agent's certificate name verified against the agentlet CA before the
		// handshake carrying the token is written.
		Transport: ep.RoundTripper(r.transport),
		// Only an upgrade makes sense here; a plain GET is refused with 400.
		UpgradeRequired: true,
		// Redirects from a backend must never reach kube-apiserver (CVE-2018-1002105 lineage).
		RejectForwardingRedirects: true,
		Responder:                 upgradeErrorResponder{responder: responder, agent: name},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		defer release()
		handler.ServeHTTP(w, agentletRequest(req, token))
	}), nil
}

// authorizeCreate requires create on agents/attach. A WebSocket upgrade is a GET, so
// kube-apiserver and the generic filters only checked get; a role meant to read (view) must
// not open a terminal, as with pods/attach since Kubernetes 1.35.
func (r *AttachREST) authorizeCreate(ctx context.Context, name string) error {
	info, ok := genericapirequest.RequestInfoFrom(ctx)
	if !ok {
		return apierrors.NewInternalError(errors.New("no request info in the request context"))
	}
	if info.Verb == "create" {
		return nil // a POST was authorized for create already
	}
	user, ok := genericapirequest.UserFrom(ctx)
	if !ok {
		return apierrors.NewInternalError(errors.New("no authenticated user in the request context"))
	}
	attrs := authorizer.AttributesRecord{
		User:            user,
		Verb:            "create",
		Namespace:       info.Namespace,
		APIGroup:        info.APIGroup,
		APIVersion:      info.APIVersion,
		Resource:        info.Resource,
		Subresource:     info.Subresource,
		Name:            name,
		ResourceRequest: true,
	}
	decision, reason, err := r.authorizer.Authorize(ctx, attrs)
	if decision == authorizer.DecisionAllow {
		return nil
	}
	msg := fmt.Sprintf("user %q cannot create agents/attach in namespace %q: attaching needs create, not only get", user.GetName(), info.Namespace)
	if reason != "" {
		msg += ": " + reason
	}
	if err != nil {
		msg += ": " + err.Error()
	}
	return apierrors.NewForbidden(subresources.Resource("agents/attach"), name, errors.New(msg))
}

// agentletRequest is the request sent on to the agentlet: the caller's WebSocket handshake
// with the caller's credentials and identity headers replaced by the agentlet's token. The
// agentlet trusts its token, never headers.
func agentletRequest(req *http.Request, token string) *http.Request {
	out := req.Clone(req.Context())
	for name := range out.Header {
		lower := strings.ToLower(name)
		if strings.HasPrefix(lower, "x-remote-") || strings.HasPrefix(lower, "impersonate-") {
			out.Header.Del(name)
		}
	}
	out.Header.Set("Authorization", "Bearer "+token)
	// The agentlet's attach takes no query options of ours (stdin, tty: the protocol
	// carries them); pass none so it does not mistake them for its own.
	out.URL.RawQuery = ""
	return out
}

// upgradeErrorResponder answers failures to reach the agentlet with 503 and Retry-After
// (the pod may be restarting), and anything else as the generic server would.
type upgradeErrorResponder struct {
	responder rest.Responder
	agent     string
}

func (e upgradeErrorResponder) Error(_ http.ResponseWriter, _ *http.Request, err error) {
	var netErr net.Error
	var opErr *net.OpError
	if errors.As(err, &netErr) || errors.As(err, &opErr) {
		e.responder.Error(serviceUnavailable(e.agent, fmt.Sprintf("cannot reach the Agent's agentlet: %v; retry shortly", err)))
		return
	}
	e.responder.Error(err)
}
