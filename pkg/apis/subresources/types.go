package subresources

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MaxWaitSeconds bounds AgentInvocation.Spec.WaitSeconds: kube-apiserver ends
// non-long-running requests after 60 seconds, so a synchronous invoke must answer well
// before that.
const MaxWaitSeconds = 50

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// Agent is the read-only view of an agentkube.io Agent that parents the invoke, log and
// attach subresources.
type Agent struct {
	metav1.TypeMeta
	metav1.ObjectMeta

	Spec   AgentSpec
	Status AgentStatus
}

// AgentSpec is the part of the Agent's spec callers of the subresources need.
type AgentSpec struct {
	Runtime string
	Mode    string
	Paused  bool
}

// AgentStatus is the part of the Agent's status callers of the subresources need.
type AgentStatus struct {
	Phase   string
	Ready   string
	PodName string
	LastRun string
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// AgentList is a list of Agents.
type AgentList struct {
	metav1.TypeMeta
	metav1.ListMeta

	Items []Agent
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// AgentInvocation is the request and result of agents/invoke.
type AgentInvocation struct {
	metav1.TypeMeta
	metav1.ObjectMeta

	Spec   AgentInvocationSpec
	Status AgentInvocationStatus
}

// AgentInvocationSpec is what the caller asks for.
type AgentInvocationSpec struct {
	Input          string
	Args           []string
	WaitSeconds    int32
	TimeoutSeconds int64
}

// AgentInvocationStatus is the state of the run the invocation created.
type AgentInvocationStatus struct {
	RunName        string
	Phase          string
	OutputTail     string
	ExitCode       *int32
	StartTime      *metav1.Time
	CompletionTime *metav1.Time
	Message        string
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// AgentLogOptions are the query parameters of agents/log.
type AgentLogOptions struct {
	metav1.TypeMeta

	Run        string
	Follow     bool
	LimitBytes *int64
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// AgentAttachOptions are the query parameters of agents/attach.
type AgentAttachOptions struct {
	metav1.TypeMeta

	Stdin  bool
	Stdout bool
	Stderr bool
	TTY    bool
}
