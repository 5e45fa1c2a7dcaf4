// Package subresources is the internal version of the subresources.agentkube.io API:
// the verbs that CRDs cannot have (invoke, log, attach), served by agentkube-manager as
// an aggregated API. Handlers work on these types; v1alpha1 is the wire version.
//
// +k8s:deepcopy-gen=package
// +groupName=subresources.agentkube.io
package subresources
