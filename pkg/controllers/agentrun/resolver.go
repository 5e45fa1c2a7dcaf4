package agentrun

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	corev1 "k8s.io/api/core/v1"

	agentletconfig "github.com/exo-in-go/exo/pkg/agentlet/config"
)

// AgentletResolver finds the base URL of the agentlet in an Agent's pod.
// Production uses PodIPResolver; a test harness without a kubelet can map
// pods to agentlets it started itself.
type AgentletResolver interface {
	AgentletURL(ctx context.Context, pod *corev1.Pod) (string, error)
}

// ErrNoPodIP means the pod has no IP yet.
var ErrNoPodIP = errors.New("pod has no IP yet")

// PodIPResolver reaches the agentlet at the pod IP and the container port
// named "agentlet", the way a Service would.
type PodIPResolver struct{}

// AgentletURL implements AgentletResolver.
func (PodIPResolver) AgentletURL(_ context.Context, pod *corev1.Pod) (string, error) {
	if pod.Status.PodIP == "" {
		return "", ErrNoPodIP
	}
	port := int32(agentletconfig.DefaultPort)
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == agentletconfig.PortName {
				port = p.ContainerPort
			}
		}
	}
	return fmt.Sprintf("http://%s", net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(int(port)))), nil
}
