package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AgentRun phases. Succeeded, Failed and TimedOut are terminal.
const (
	AgentRunPhasePending   = "Pending"
	AgentRunPhaseRunning   = "Running"
	AgentRunPhaseSucceeded = "Succeeded"
	AgentRunPhaseFailed    = "Failed"
	AgentRunPhaseTimedOut  = "TimedOut"
)

// RunTrigger says what started an AgentRun.
// +kubebuilder:validation:Enum=Manual;Schedule;Invoke;Platform
type RunTrigger string

const (
	// RunTriggerManual is a run created directly, for example with kubectl create.
	RunTriggerManual RunTrigger = "Manual"
	// RunTriggerSchedule is a run the Agent's schedule created.
	RunTriggerSchedule RunTrigger = "Schedule"
	// RunTriggerInvoke is a run created through the agents/invoke subresource.
	RunTriggerInvoke RunTrigger = "Invoke"
	// RunTriggerPlatform is a run the platform requested over the operator tunnel.
	RunTriggerPlatform RunTrigger = "Platform"
)

// MaxOutputTailBytes bounds status.outputTail so an AgentRun stays far below etcd's
// object size limit whatever the run prints.
const MaxOutputTailBytes = 16 * 1024

// Requester is the identity that asked for a run, as authenticated by kube-apiserver.
type Requester struct {
	// username of the caller.
	// +optional
	Username string `json:"username,omitempty"`
	// uid of the caller.
	// +optional
	UID string `json:"uid,omitempty"`
	// groups of the caller.
	// +optional
	// +listType=atomic
	Groups []string `json:"groups,omitempty"`
}

// AgentRunSpec is one run of an Agent. It is immutable once created.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable; create a new AgentRun"
type AgentRunSpec struct {
	// agentRef names the Agent (in this namespace) that executes the run.
	AgentRef LocalObjectReference `json:"agentRef"`
	// input is handed to the runtime as the run's prompt (and on stdin for Custom).
	// +optional
	// +kubebuilder:validation:MaxLength=262144
	Input string `json:"input,omitempty"`
	// args are extra arguments for this run only.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	Args []string `json:"args,omitempty"`
	// timeout bounds the run; when it passes the run's processes are killed and the
	// phase is TimedOut.
	// +optional
	// +kubebuilder:default="30m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="timeout must be positive"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// trigger says what started the run.
	// +optional
	// +kubebuilder:default=Manual
	Trigger RunTrigger `json:"trigger,omitempty"`
	// requester is who asked for the run. The agents/invoke subresource sets it from the
	// authenticated caller.
	// +optional
	Requester *Requester `json:"requester,omitempty"`
}

// AgentRunStatus is the observed state of an AgentRun.
type AgentRunStatus struct {
	CommonStatus `json:",inline"`
	// podName is the Agent pod the run executed in.
	// +optional
	PodName string `json:"podName,omitempty"`
	// runID is the agentlet's id of the run inside the pod.
	// +optional
	RunID string `json:"runID,omitempty"`
	// startTime is when the agentlet started the run.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// completionTime is when the run ended.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// exitCode of the runtime process, once it ended.
	// +optional
	ExitCode *int32 `json:"exitCode,omitempty"`
	// signal that ended the process, if any.
	// +optional
	Signal string `json:"signal,omitempty"`
	// outputTail is the last bytes of the run's output (at most 16 KiB).
	// +optional
	// +kubebuilder:validation:MaxLength=16384
	OutputTail string `json:"outputTail,omitempty"`
	// message explains the phase in a sentence.
	// +optional
	Message string `json:"message,omitempty"`
}

// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ar,categories=agentkube
// +kubebuilder:printcolumn:name="Agent",type=string,JSONPath=`.spec.agentRef.name`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Exit",type=integer,JSONPath=`.status.exitCode`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// AgentRun is one run of an Agent: created by the schedule, by agents/invoke, by the
// platform or by hand. The list of AgentRuns is the run history.
type AgentRun struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the run's request.
	Spec AgentRunSpec `json:"spec"`
	// status is the run's progress and result.
	// +optional
	Status AgentRunStatus `json:"status,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true

// AgentRunList is a list of AgentRuns.
type AgentRunList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AgentRun `json:"items"`
}
