package agent

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	agentletconfig "github.com/exo-in-go/exo/pkg/agentlet/config"
	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
)

// Locator finds the agentlet serving an Agent: the base URL of its HTTP API and the bearer
// token it accepts. Errors are apierrors, answered to the caller as they are.
type Locator interface {
	Locate(ctx context.Context, agent *agentkubev1alpha1.Agent) (baseURL, token string, err error)
}

// The per-Agent Secret holding the agentlet's API token, as the manager's Agent controller
// creates it.
const (
	// TokenSecretSuffix is appended to the Agent's name to name the Secret.
	TokenSecretSuffix = "-agentlet"
	// TokenSecretKey is the Secret's key holding the token.
	TokenSecretKey = "token"
)

// DefaultTokenSecretName names an Agent's token Secret.
func DefaultTokenSecretName(agentName string) string { return agentName + TokenSecretSuffix }

// locateTimeout bounds the two reads a Locate makes.
const locateTimeout = 10 * time.Second

// PodLocator reaches the agentlet the way a Service would: the Agent pod's IP and its
// container port named "agentlet", with the token read from the Agent's Secret. Pod and
// Secret are read live rather than cached: a pod IP changes on restart, and Secret contents
// are kept out of the manager's memory.
type PodLocator struct {
	Client kubernetes.Interface
	// SecretName names an Agent's token Secret; DefaultTokenSecretName when nil.
	SecretName func(agentName string) string
	// Scheme of the agentlet's API, "http" when empty ("https" when the agentlet serves TLS).
	Scheme string
}

var _ Locator = &PodLocator{}

// Locate implements Locator.
func (l *PodLocator) Locate(ctx context.Context, agent *agentkubev1alpha1.Agent) (string, string, error) {
	ctx, cancel := context.WithTimeout(ctx, locateTimeout)
	defer cancel()
	podName := agent.Status.PodName
	if podName == "" {
		return "", "", serviceUnavailable(agent.Name, "the Agent has no pod yet; retry shortly")
	}
	pod, err := l.Client.CoreV1().Pods(agent.Namespace).Get(ctx, podName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", "", serviceUnavailable(agent.Name, fmt.Sprintf("the Agent's pod %s does not exist (it is being recreated); retry shortly", podName))
	}
	if err != nil {
		return "", "", apierrors.NewInternalError(fmt.Errorf("reading pod %s/%s: %w", agent.Namespace, podName, err))
	}
	if pod.Status.PodIP == "" || pod.Status.Phase != corev1.PodRunning {
		return "", "", serviceUnavailable(agent.Name, fmt.Sprintf("the Agent's pod %s is not running yet (phase %s); retry shortly", podName, pod.Status.Phase))
	}
	secretName := DefaultTokenSecretName
	if l.SecretName != nil {
		secretName = l.SecretName
	}
	name := secretName(agent.Name)
	secret, err := l.Client.CoreV1().Secrets(agent.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", "", apierrors.NewInternalError(fmt.Errorf("reading the agentlet token Secret %s/%s: %w", agent.Namespace, name, err))
	}
	token := string(secret.Data[TokenSecretKey])
	if token == "" {
		return "", "", apierrors.NewInternalError(fmt.Errorf("the agentlet token Secret %s/%s has no key %q", agent.Namespace, name, TokenSecretKey))
	}
	scheme := l.Scheme
	if scheme == "" {
		scheme = "http"
	}
	return fmt.Sprintf("%s://%s", scheme, net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(int(agentletPort(pod))))), token, nil
}

// agentletPort is the container port named "agentlet", or the agentlet's default.
func agentletPort(pod *corev1.Pod) int32 {
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == agentletconfig.PortName {
				return p.ContainerPort
			}
		}
	}
	return agentletconfig.DefaultPort
}
