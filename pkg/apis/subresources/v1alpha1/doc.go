// Package v1alpha1 is the wire version of subresources.agentkube.io, the aggregated API
// that agentkube-manager serves on :8082 behind kube-apiserver.
//
// +k8s:deepcopy-gen=package
// +k8s:conversion-gen=github.com/exo-in-go/exo/pkg/apis/subresources
// +k8s:defaulter-gen=TypeMeta
// +k8s:openapi-gen=true
// +groupName=subresources.agentkube.io
package v1alpha1
