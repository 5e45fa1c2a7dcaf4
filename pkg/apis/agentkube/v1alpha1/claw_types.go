package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ClawRegistry is a package registry the host pulls from.
type ClawRegistry struct {
	// name of the registry, referenced by packages.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// url of the registry.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	URL string `json:"url"`
}

// ClawPackage is a package installed at start-up.
type ClawPackage struct {
	// name of the package.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// version of the package; latest when empty.
	// +optional
	Version string `json:"version,omitempty"`
	// registry to pull from; the first registry when empty.
	// +optional
	Registry string `json:"registry,omitempty"`
}

// ClawService shapes the Service in front of the host.
type ClawService struct {
	// type of the Service.
	// +optional
	// +kubebuilder:default=ClusterIP
	// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer
	Type corev1.ServiceType `json:"type,omitempty"`
	// port of the Service.
	// +optional
	// +kubebuilder:default=8080
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`
}

// ClawSpec is the desired state of a Claw.
type ClawSpec struct {
	// distribution is openclaw (full) or nanoclaw (slim single binary).
	// +optional
	// +kubebuilder:default=openclaw
	// +kubebuilder:validation:Enum=openclaw;nanoclaw
	Distribution string `json:"distribution,omitempty"`
	// image overrides the distribution's image.
	// +optional
	Image string `json:"image,omitempty"`
	// replicas of the host.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	Replicas *int32 `json:"replicas,omitempty"`
	// registries the host pulls packages from.
	// +optional
	// +listType=map
	// +listMapKey=name
	Registries []ClawRegistry `json:"registries,omitempty"`
	// packages installed at start-up.
	// +optional
	// +listType=atomic
	Packages []ClawPackage `json:"packages,omitempty"`
	// service shapes the Service in front of the host.
	// +optional
	Service ClawService `json:"service,omitempty"`
	// authSecretRef is a bearer token inbound calls must present.
	// +optional
	AuthSecretRef *SecretKeyRef `json:"authSecretRef,omitempty"`
}

// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=agentkube
// +kubebuilder:printcolumn:name="Distribution",type=string,JSONPath=`.spec.distribution`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// Claw runs a clawx package host as a small in-cluster service (Deployment + Service).
type Claw struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state of the host.
	Spec ClawSpec `json:"spec"`
	// status is the observed state of the host.
	// +optional
	Status WorkloadStatus `json:"status,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true

// ClawList is a list of Claws.
type ClawList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Claw `json:"items"`
}
