package v1alpha1

// Phases of the kinds that reconcile into a Deployment and a Service (MCP,
// LLMGateway, Claw).
const (
	WorkloadPhaseProgressing = "Progressing"
	WorkloadPhaseReady       = "Ready"
	WorkloadPhaseFailed      = "Failed"
)

// WorkloadStatus is the status of a kind backed by a Deployment and a Service.
type WorkloadStatus struct {
	CommonStatus `json:",inline"`
	// replicas is the number of pods the Deployment runs.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// readyReplicas is the number of those pods that are ready.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
	// serviceName is the Service in front of the pods.
	// +optional
	ServiceName string `json:"serviceName,omitempty"`
}
