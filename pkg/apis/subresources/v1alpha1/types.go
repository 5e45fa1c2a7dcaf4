package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// +genclient
// +genclient:onlyVerbs=get,list
// +genclient:method=Invoke,verb=create,subresource=invoke,input=AgentInvocation,result=AgentInvocation
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// Agent is the read-only view of an agentkube.io Agent that parents the invoke, log and
// attach subresources. Manage Agents through agentkube.io; this group only adds verbs.
type Agent struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the part of the Agent's spec that callers of the subresources need.
	// +optional
	Spec AgentSpec `json:"spec,omitempty"`
	// status is the part of the Agent's status that callers of the subresources need.
	// +optional
	Status AgentStatus `json:"status,omitempty"`
}

// AgentSpec is the part of the Agent's spec that callers of the subresources need.
type AgentSpec struct {
	// runtime of the Agent.
	// +optional
	Runtime string `json:"runtime,omitempty"`
	// mode of the Agent.
	// +optional
	Mode string `json:"mode,omitempty"`
	// paused Agents refuse invocations.
	// +optional
	Paused bool `json:"paused,omitempty"`
}

// AgentStatus is the part of the Agent's status that callers of the subresources need.
type AgentStatus struct {
	// phase of the Agent.
	// +optional
	Phase string `json:"phase,omitempty"`
	// ready is "ready/total" containers of the Agent's pod.
	// +optional
	Ready string `json:"ready,omitempty"`
	// podName is the Agent's pod.
	// +optional
	PodName string `json:"podName,omitempty"`
	// lastRun is the most recently started AgentRun.
	// +optional
	LastRun string `json:"lastRun,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// AgentList is a list of Agents.
type AgentList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []Agent `json:"items"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// AgentInvocation is the body and the answer of POST agents/{name}/invoke: the caller
// sends spec, the server creates an AgentRun, waits up to spec.waitSeconds for it to
// finish and answers with status.
type AgentInvocation struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the invocation request.
	// +optional
	Spec AgentInvocationSpec `json:"spec,omitempty"`
	// status is the state of the run the invocation created.
	// +optional
	Status AgentInvocationStatus `json:"status,omitempty"`
}

// AgentInvocationSpec is what the caller asks for.
type AgentInvocationSpec struct {
	// input is the run's prompt.
	// +optional
	Input string `json:"input,omitempty"`
	// args are extra arguments for this run.
	// +optional
	// +listType=atomic
	Args []string `json:"args,omitempty"`
	// waitSeconds is how long the call waits for the run to finish before answering
	// with its current state; at most 50 (kube-apiserver cuts requests at 60 s). 0
	// answers as soon as the run exists; follow it with agents/log.
	// +optional
	WaitSeconds int32 `json:"waitSeconds,omitempty"`
	// timeoutSeconds bounds the run itself; the Agent's default applies when 0.
	// +optional
	TimeoutSeconds int64 `json:"timeoutSeconds,omitempty"`
}

// AgentInvocationStatus is the state of the run the invocation created.
type AgentInvocationStatus struct {
	// runName is the AgentRun created for this invocation.
	// +optional
	RunName string `json:"runName,omitempty"`
	// phase of the run: Pending, Running, Succeeded, Failed or TimedOut.
	// +optional
	Phase string `json:"phase,omitempty"`
	// outputTail is the last bytes of the run's output.
	// +optional
	OutputTail string `json:"outputTail,omitempty"`
	// exitCode of the run, once it ended.
	// +optional
	ExitCode *int32 `json:"exitCode,omitempty"`
	// startTime of the run.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// completionTime of the run.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// message explains the phase.
	// +optional
	Message string `json:"message,omitempty"`
}

// +k8s:conversion-gen:explicit-from=net/url.Values
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// AgentLogOptions are the query parameters of GET agents/{name}/log.
type AgentLogOptions struct {
	metav1.TypeMeta `json:",inline"`

	// run is the AgentRun whose output to stream; the Agent's last run when empty.
	// +optional
	Run string `json:"run,omitempty"`
	// follow keeps the stream open until the run ends.
	// +optional
	Follow bool `json:"follow,omitempty"`
	// limitBytes stops the stream after this many bytes.
	// +optional
	LimitBytes *int64 `json:"limitBytes,omitempty"`
}

// +k8s:conversion-gen:explicit-from=net/url.Values
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// AgentAttachOptions are the query parameters of agents/{name}/attach, an interactive
// terminal into the Agent's runtime over the v5.channel.k8s.io WebSocket protocol.
type AgentAttachOptions struct {
	metav1.TypeMeta `json:",inline"`

	// stdin sends the caller's input to the terminal.
	// +optional
	Stdin bool `json:"stdin,omitempty"`
	// stdout streams the terminal's output.
	// +optional
	Stdout bool `json:"stdout,omitempty"`
	// stderr streams errors; with tty they arrive on stdout.
	// +optional
	Stderr bool `json:"stderr,omitempty"`
	// tty allocates a terminal.
	// +optional
	TTY bool `json:"tty,omitempty"`
}
