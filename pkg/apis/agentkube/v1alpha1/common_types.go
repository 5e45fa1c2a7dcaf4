package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SecretKeyRef selects one key of a Secret in the object's own namespace.
type SecretKeyRef struct {
	// name of the Secret, in the same namespace as the referring object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// key within the Secret's data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// ConfigMapKeyRef selects one key of a ConfigMap in the object's own namespace.
type ConfigMapKeyRef struct {
	// name of the ConfigMap, in the same namespace as the referring object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// key within the ConfigMap's data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// LocalObjectReference names another object in the same namespace.
type LocalObjectReference struct {
	// name of the referenced object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// CommonStatus is the part of the status every agentkube kind reports: a phase for
// humans, conditions for machines, and the generation the status describes.
type CommonStatus struct {
	// phase is a one-word summary of the object's state, for humans and printer columns.
	// +optional
	Phase string `json:"phase,omitempty"`
	// conditions are the latest observations of the object's state (types Ready,
	// Reconciled, and kind-specific ones such as Scheduled or Probed).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
	// observedGeneration is the metadata.generation this status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}
