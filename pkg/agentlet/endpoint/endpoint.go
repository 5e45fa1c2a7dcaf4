// Package endpoint is how the manager finds an Agent's agentlet and talks to it: the
// address (pod IP and the port named "agentlet"), the bearer token (the Agent's token
// Secret), and the transport — plain HTTP, or TLS that verifies the Agent's own name
// against the agentlet CA bundle. The AgentRun controller, the aggregated API
// (invoke, log, attach) and the platform tunnel's run output all go through it.
//
// HTTP or HTTPS is decided from the pod's spec (the agentlet container is given a
// certificate or not), never from anything a user of the Agent could edit: the
// admission webhook lets only the manager change an agent pod's spec. A pod that
// serves TLS is only ever reached with a verified handshake: without a trust bundle
// the call fails, it is not downgraded.
package endpoint

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	agentletclient "github.com/exo-in-go/exo/pkg/agentlet/client"
	agentletconfig "github.com/exo-in-go/exo/pkg/agentlet/config"
	"github.com/exo-in-go/exo/pkg/controllers/ctrlutil"
)

// The agentlet's TLS contract between the Agent controller (which writes the pod),
// the agentlet (which serves) and this package (which verifies).
const (
	// Domain is the parent of every agentlet's certificate name.
	Domain = "agentlet.agentkube.io"
	// TLSVolume is the pod volume holding the agentlet's certificate Secret.
	TLSVolume = "agentlet-tls"
	// TLSMountPath is where the agentlet container mounts it (kubernetes.io/tls keys).
	TLSMountPath = "/var/run/agentkube/agentlet-tls"
)

// ServerName is the one DNS name in the certificate of the agentlet of Agent
// namespace/agent, and the name every client verifies. The pod IP is not known before
// scheduling and changes with every restart; the Agent's identity does not.
func ServerName(agent, namespace string) string {
	return agent + "." + namespace + "." + Domain
}

// ServesTLS reports whether the pod's agentlet serves TLS: its container is given a
// certificate (AGENTLET_TLS_CERT_FILE). Read from the spec, which only the manager
// may change.
func ServesTLS(pod *corev1.Pod) bool {
	for _, c := range pod.Spec.Containers {
		if !isAgentlet(c) {
			continue
		}
		for _, e := range c.Env {
			if e.Name == agentletconfig.EnvTLSCertFile && (e.Value != "" || e.ValueFrom != nil) {
				return true
			}
		}
	}
	return false
}

// isAgentlet: the container with the port named "agentlet".
func isAgentlet(c corev1.Container) bool {
	for _, p := range c.Ports {
		if p.Name == agentletconfig.PortName {
			return true
		}
	}
	return false
}

// Endpoint is one Agent's agentlet, ready to call.
type Endpoint struct {
	// URL is the base URL, http:// or https:// and the pod's address.
	URL string
	// Token is the bearer token the agentlet accepts.
	Token string
	// ServerName is the name the agentlet's certificate must carry; empty for plain
	// HTTP.
	ServerName string
	// Transport reaches an https agentlet and verifies ServerName against the
	// agentlet CA bundle (an *http.Transport, so that WebSocket proxies can take its
	// TLS configuration); nil for plain HTTP, where callers use their own.
	Transport *http.Transport
}

// HTTPClient returns the client to call the endpoint with: one on Transport for TLS,
// else plain (http.DefaultClient when nil). Neither sets a Timeout, which would cut
// followed output streams.
func (e Endpoint) HTTPClient(plain *http.Client) *http.Client {
	if e.Transport != nil {
		return &http.Client{Transport: e.Transport}
	}
	return plain
}

// RoundTripper is HTTPClient's transport, for proxies (attach).
func (e Endpoint) RoundTripper(plain http.RoundTripper) http.RoundTripper {
	if e.Transport != nil {
		return e.Transport
	}
	if plain == nil {
		return http.DefaultTransport
	}
	return plain
}

// Client returns an agentlet API client for the endpoint; plain is used for HTTP
// agentlets only.
func (e Endpoint) Client(plain *http.Client) (*agentletclient.Client, error) {
	return agentletclient.New(e.URL, e.Token, e.HTTPClient(plain))
}

// Addresser finds host:port of the agentlet in a pod. PodIP is production; a test
// harness without a kubelet maps pods to agentlets it started itself.
type Addresser interface {
	AgentletAddress(ctx context.Context, pod *corev1.Pod) (string, error)
}

// ErrNoPodIP means the pod has no IP yet.
var ErrNoPodIP = errors.New("pod has no IP yet")

// PodIP reaches the agentlet at the pod IP and the container port named "agentlet",
// the way a Service would.
type PodIP struct{}

// AgentletAddress implements Addresser.
func (PodIP) AgentletAddress(_ context.Context, pod *corev1.Pod) (string, error) {
	if pod.Status.PodIP == "" {
		return "", ErrNoPodIP
	}
	return net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(int(Port(pod)))), nil
}

// Port is the container port named "agentlet", or the agentlet's default.
func Port(pod *corev1.Pod) int32 {
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == agentletconfig.PortName {
				return p.ContainerPort
			}
		}
	}
	return agentletconfig.DefaultPort
}

// Resolver turns an Agent and its pod into an Endpoint. It is safe for concurrent
// use; share one per process part so that connections to an agentlet are reused.
type Resolver struct {
	// Addresser finds the agentlet's address; PodIP when nil.
	Addresser Addresser
	// Tokens reads the Agent's token.
	Tokens *Tokens
	// Bundle returns the PEM trust bundle of the agentlet CA (current, staged and
	// retired CAs). Nil, or an empty bundle, makes every TLS endpoint fail: a pod that
	// serves TLS is never called without verifying it.
	Bundle func() []byte

	mu         sync.Mutex
	transports map[string]*verifiedTransport // by server name
}

type verifiedTransport struct {
	bundle [sha256.Size]byte
	t      *http.Transport
}

// Resolve returns the endpoint of the agentlet of Agent namespace/agent running in
// pod (which the caller read as the Agent's pod). The certificate name verified is
// the Agent's, not anything taken from the pod.
func (r *Resolver) Resolve(ctx context.Context, agent string, pod *corev1.Pod) (Endpoint, error) {
	var addresser Addresser = PodIP{}
	if r.Addresser != nil {
		addresser = r.Addresser
	}
	addr, err := addresser.AgentletAddress(ctx, pod)
	if err != nil {
		return Endpoint{}, fmt.Errorf("find the agentlet of pod %s: %w", pod.Name, err)
	}
	var ep Endpoint
	if ServesTLS(pod) {
		ep.ServerName = ServerName(agent, pod.Namespace)
		if ep.Transport, err = r.transport(ep.ServerName); err != nil {
			return Endpoint{}, err
		}
		ep.URL = "https://" + addr
	} else {
		ep.URL = "http://" + addr
	}
	if r.Tokens == nil {
		return Endpoint{}, errors.New("agentlet resolver has no token source")
	}
	if ep.Token, err = r.Tokens.Token(ctx, pod.Namespace, agent); err != nil {
		return Endpoint{}, err
	}
	return ep, nil
}

// ErrNoTrustBundle means an agentlet serves TLS but there is no agentlet CA bundle to
// verify it with (yet): the call is refused rather than made unverified.
var ErrNoTrustBundle = errors.New("the agentlet serves TLS but there is no agentlet CA bundle to verify it yet")

// transport returns the verifying transport for serverName under the current bundle;
// a changed bundle (a CA rotation) replaces it.
func (r *Resolver) transport(serverName string) (*http.Transport, error) {
	var bundle []byte
	if r.Bundle != nil {
		bundle = r.Bundle()
	}
	if len(bundle) == 0 {
		return nil, ErrNoTrustBundle
	}
	sum := sha256.Sum256(bundle)
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur := r.transports[serverName]; cur != nil && cur.bundle == sum {
		return cur.t, nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		return nil, fmt.Errorf("%w: the bundle holds no certificate", ErrNoTrustBundle)
	}
	if r.transports == nil {
		r.transports = map[string]*verifiedTransport{}
	}
	if old := r.transports[serverName]; old != nil {
		old.t.CloseIdleConnections()
	}
	t := NewTransport(serverName, pool)
	r.transports[serverName] = &verifiedTransport{bundle: sum, t: t}
	return t, nil
}

// NewTransport returns a transport that speaks TLS 1.3 to an agentlet and accepts only
// a certificate for serverName that chains to roots. The handshake, and so the
// verification, completes before any request byte (the bearer token) is sent.
func NewTransport(serverName string, roots *x509.CertPool) *http.Transport {
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:       nil, // pod IPs: never through an HTTP(S)_PROXY
		DialContext: dialer.DialContext,
		TLSClientConfig: &tls.Config{
			ServerName: serverName,
			RootCAs:    roots,
			MinVersion: tls.VersionTLS13,
			// HTTP/1.1 only: attach upgrades to a WebSocket on the same configuration.
			NextProtos: []string{"http/1.1"},
		},
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// The per-Agent Secrets the Agent controller creates and every client reads,
// named here once so that the writer and the readers can never disagree
// (ChildName shortens long Agent names with a hash).
const (
	// TokenSecretKey is the key of the agentlet API token in its Secret.
	TokenSecretKey = "token"
)

// TokenSecretName is the Secret holding an Agent's agentlet API token.
func TokenSecretName(agent string) string { return ctrlutil.ChildName(agent, "agentlet", 253) }

// TLSSecretName is the Secret holding an Agent's agentlet certificate and key.
func TLSSecretName(agent string) string { return ctrlutil.ChildName(agent, "agentlet-tls", 253) }

// Tokens reads an Agent's agentlet token from its Secret. The Secret is immutable, so
// with UID set (a metadata cache) the token is read from the API server once per
// Secret; without, every call reads it (the aggregated API keeps Secret contents out
// of memory).
type Tokens struct {
	// Get reads a Secret from the API server.
	Get func(ctx context.Context, namespace, name string) (*corev1.Secret, error)
	// UID, optional, returns the Secret's UID from a metadata cache.
	UID func(ctx context.Context, namespace, name string) (types.UID, error)

	cache sync.Map // Secret UID → token
}

// Token returns the agentlet token of Agent namespace/agent.
func (t *Tokens) Token(ctx context.Context, namespace, agent string) (string, error) {
	name := TokenSecretName(agent)
	if t.UID != nil {
		uid, err := t.UID(ctx, namespace, name)
		if err != nil {
			return "", fmt.Errorf("agentlet token Secret %s/%s: %w", namespace, name, err)
		}
		if v, ok := t.cache.Load(uid); ok {
			return v.(string), nil
		}
	}
	s, err := t.Get(ctx, namespace, name)
	if err != nil {
		return "", fmt.Errorf("reading the agentlet token Secret %s/%s: %w", namespace, name, err)
	}
	token := string(s.Data[TokenSecretKey])
	if token == "" {
		return "", fmt.Errorf("the agentlet token Secret %s/%s has no key %q", namespace, name, TokenSecretKey)
	}
	if t.UID != nil {
		t.cache.Store(s.UID, token)
	}
	return token, nil
}
