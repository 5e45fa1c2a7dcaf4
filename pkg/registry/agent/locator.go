package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/exo-in-go/exo/pkg/agentlet/endpoint"
	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
)

// Locator finds the agentlet serving an Agent: its address, the bearer token it accepts
// and, when it serves TLS, the verifying transport. Errors are apierrors, answered to the
// caller as they are.
type Locator interface {
	Locate(ctx context.Context, agent *agentkubev1alpha1.Agent) (endpoint.Endpoint, error)
}

// locateTimeout bounds the two reads a Locate makes.
const locateTimeout = 10 * time.Second

// PodLocator reaches the agentlet the way a Service would: the Agent pod's IP and its
// container port named "agentlet", with the token read from the Agent's Secret, over TLS
// verified against the agentlet CA bundle when the pod's spec says the agentlet serves
// it (pkg/agentlet/endpoint). Pod and Secret are read live rather than cached: a pod IP
// changes on restart, and Secret contents are kept out of the manager's memory.
type PodLocator struct {
	Client kubernetes.Interface
	// AgentletBundle returns the agentlet CA bundle (certs.Watcher.AgentletCA); agentlets
	// that serve TLS cannot be reached without one.
	AgentletBundle func() []byte

	once     sync.Once
	resolver *endpoint.Resolver
}

var _ Locator = &PodLocator{}

func (l *PodLocator) init() {
	l.once.Do(func() {
		l.resolver = &endpoint.Resolver{
			Bundle: l.AgentletBundle,
			Tokens: &endpoint.Tokens{
				Get: func(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
					return l.Client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
				},
			},
		}
	})
}

// Locate implements Locator.
func (l *PodLocator) Locate(ctx context.Context, agent *agentkubev1alpha1.Agent) (endpoint.Endpoint, error) {
	l.init()
	ctx, cancel := context.WithTimeout(ctx, locateTimeout)
	defer cancel()
	podName := agent.Status.PodName
	if podName == "" {
		return endpoint.Endpoint{}, serviceUnavailable(agent.Name, "the Agent has no pod yet; retry shortly")
	}
	pod, err := l.Client.CoreV1().Pods(agent.Namespace).Get(ctx, podName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return endpoint.Endpoint{}, serviceUnavailable(agent.Name, fmt.Sprintf("the Agent's pod %s does not exist (it is being recreated); retry shortly", podName))
	}
	if err != nil {
		return endpoint.Endpoint{}, apierrors.NewInternalError(fmt.Errorf("reading pod %s/%s: %w", agent.Namespace, podName, err))
	}
	if pod.Status.PodIP == "" || pod.Status.Phase != corev1.PodRunning {
		return endpoint.Endpoint{}, serviceUnavailable(agent.Name, fmt.Sprintf("the Agent's pod %s is not running yet (phase %s); retry shortly", podName, pod.Status.Phase))
	}
	ep, err := l.resolver.Resolve(ctx, agent.Name, pod)
	if errors.Is(err, endpoint.ErrNoTrustBundle) {
		return endpoint.Endpoint{}, serviceUnavailable(agent.Name, "the Agent's agentlet serves TLS and the manager has no agentlet CA bundle to verify it yet; retry shortly")
	}
	if err != nil {
		return endpoint.Endpoint{}, apierrors.NewInternalError(err)
	}
	return ep, nil
}
