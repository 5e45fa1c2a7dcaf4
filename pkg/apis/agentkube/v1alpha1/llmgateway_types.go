package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LLMUpstream is one model provider behind the gateway.
type LLMUpstream struct {
	// name of the upstream, unique in the gateway.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// provider of the models.
	// +kubebuilder:validation:Enum=openai;anthropic;bedrock;vertex;azure-openai;ollama;vllm
	Provider string `json:"provider"`
	// credentialsRef holds the provider's API key.
	// +optional
	CredentialsRef *SecretKeyRef `json:"credentialsRef,omitempty"`
	// endpoint overrides the provider's default URL.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	// models served by this upstream.
	// +optional
	// +listType=set
	Models []string `json:"models,omitempty"`
	// priority orders upstreams serving the same model; lower first.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Priority int32 `json:"priority,omitempty"`
}

// ModelMapping maps a model alias to a concrete model on an upstream.
type ModelMapping struct {
	// from is the alias clients ask for.
	From string `json:"from"`
	// to is the concrete model.
	To string `json:"to"`
	// upstream serving it.
	// +optional
	Upstream string `json:"upstream,omitempty"`
}

// LLMRouting decides which upstream serves a request.
type LLMRouting struct {
	// defaultModel is used when a request names none.
	// +optional
	DefaultModel string `json:"defaultModel,omitempty"`
	// modelMap maps aliases to concrete models.
	// +optional
	// +listType=atomic
	ModelMap []ModelMapping `json:"modelMap,omitempty"`
}

// LLMRateLimit bounds request rates.
type LLMRateLimit struct {
	// requestsPerMinute allowed in the scope.
	// +kubebuilder:validation:Minimum=1
	RequestsPerMinute int32 `json:"requestsPerMinute"`
	// scope of the limit.
	// +optional
	// +kubebuilder:default=perClient
	// +kubebuilder:validation:Enum=perClient;global
	Scope string `json:"scope,omitempty"`
}

// LLMGatewaySpec is the desired state of an LLMGateway.
type LLMGatewaySpec struct {
	// replicas of the gateway.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	Replicas *int32 `json:"replicas,omitempty"`
	// port the gateway serves on.
	// +optional
	// +kubebuilder:default=8080
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`
	// image overrides the gateway image.
	// +optional
	Image string `json:"image,omitempty"`
	// upstreams are the providers behind the gateway.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	Upstreams []LLMUpstream `json:"upstreams"`
	// routing decides which upstream serves a request.
	// +optional
	Routing *LLMRouting `json:"routing,omitempty"`
	// rateLimit bounds request rates.
	// +optional
	RateLimit *LLMRateLimit `json:"rateLimit,omitempty"`
}

// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=agentkube
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// LLMGateway terminates model traffic and routes it to providers, so credentials and
// policy live in one place. It runs as a Deployment and a Service.
type LLMGateway struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state of the gateway.
	Spec LLMGatewaySpec `json:"spec"`
	// status is the observed state of the gateway.
	// +optional
	Status WorkloadStatus `json:"status,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true

// LLMGatewayList is a list of LLMGateways.
type LLMGatewayList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LLMGateway `json:"items"`
}
