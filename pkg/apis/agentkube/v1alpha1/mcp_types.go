package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MCPUpstreamKind is how the proxy reaches an upstream MCP server.
// +kubebuilder:validation:Enum=http;mcpRef;stdio
type MCPUpstreamKind string

// MCPUpstreamAuth authenticates the proxy to an upstream.
type MCPUpstreamAuth struct {
	// mode of authentication.
	// +kubebuilder:validation:Enum=bearer
	Mode string `json:"mode"`
	// secretRef holds the credential.
	SecretRef SecretKeyRef `json:"secretRef"`
}

// MCPToolFilter limits which upstream tools are exposed.
type MCPToolFilter struct {
	// mode of the filter.
	// +kubebuilder:validation:Enum=allow
	Mode string `json:"mode"`
	// allow lists the tool names exposed.
	// +optional
	// +listType=set
	Allow []string `json:"allow,omitempty"`
}

// MCPUpstream is one MCP server behind the proxy.
// +kubebuilder:validation:XValidation:rule="self.kind != 'http' || (has(self.endpoint) && size(self.endpoint) > 0)",message="endpoint is required for http upstreams",fieldPath=".endpoint"
type MCPUpstream struct {
	// name of the upstream, unique in the proxy.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// kind is http, mcpRef (another MCP in this namespace) or stdio.
	Kind MCPUpstreamKind `json:"kind"`
	// endpoint URL, for http upstreams.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	Endpoint string `json:"endpoint,omitempty"`
	// mcpRef names another MCP, for mcpRef upstreams.
	// +optional
	MCPRef *LocalObjectReference `json:"mcpRef,omitempty"`
	// command runs a stdio upstream.
	// +optional
	Command []string `json:"command,omitempty"`
	// auth for the upstream.
	// +optional
	Auth *MCPUpstreamAuth `json:"auth,omitempty"`
	// tools filters the upstream's tools.
	// +optional
	Tools *MCPToolFilter `json:"tools,omitempty"`
}

// MCPSpec is the desired state of an MCP proxy.
type MCPSpec struct {
	// port the proxy serves on.
	// +optional
	// +kubebuilder:default=8080
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`
	// replicas of the proxy.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	Replicas *int32 `json:"replicas,omitempty"`
	// image overrides the proxy image.
	// +optional
	Image string `json:"image,omitempty"`
	// upstreams are the MCP servers behind the proxy.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	Upstreams []MCPUpstream `json:"upstreams"`
}

// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=agentkube
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// MCP is a proxy that fronts MCP servers and exposes a filtered tool surface. It runs
// as a Deployment and a Service; Agents bind to it through spec.mcpRefs.
type MCP struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state of the proxy.
	Spec MCPSpec `json:"spec"`
	// status is the observed state of the proxy.
	// +optional
	Status WorkloadStatus `json:"status,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true

// MCPList is a list of MCPs.
type MCPList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MCP `json:"items"`
}
