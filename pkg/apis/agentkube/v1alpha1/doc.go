// Package v1alpha1 holds the agentkube.io/v1alpha1 custom resources: Agent, AgentRun,
// Tool, MCP, LLMGateway and Claw. The CRD manifests in artifacts/crds are generated from
// these types by hack/update-codegen.sh; edit the types, never the YAML.
//
// +k8s:deepcopy-gen=package
// +kubebuilder:object:generate=true
// +groupName=agentkube.io
package v1alpha1
