package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Runtime names the coding-agent CLI that an Agent's pod runs.
// +kubebuilder:validation:Enum=ClaudeCode;Codex;OpenCode;Gemini;Aider;Cline;Goose;Cursor;Custom
type Runtime string

// The runtimes of the runtime image matrix.
const (
	RuntimeClaudeCode Runtime = "ClaudeCode"
	RuntimeCodex      Runtime = "Codex"
	RuntimeOpenCode   Runtime = "OpenCode"
	RuntimeGemini     Runtime = "Gemini"
	RuntimeAider      Runtime = "Aider"
	RuntimeCline      Runtime = "Cline"
	RuntimeGoose      Runtime = "Goose"
	RuntimeCursor     Runtime = "Cursor"
	RuntimeCustom     Runtime = "Custom"
)

// AgentMode says how an Agent chooses its steps.
// +kubebuilder:validation:Enum=supervised;system
type AgentMode string

const (
	// AgentModeSupervised lets the agent pick its own steps (exploratory work).
	AgentModeSupervised AgentMode = "supervised"
	// AgentModeSystem runs a deterministic playbook; platform invocations dispatch these.
	AgentModeSystem AgentMode = "system"
)

// Agent phases.
const (
	AgentPhasePending = "Pending"
	AgentPhaseReady   = "Ready"
	AgentPhaseRunning = "Running"
	AgentPhasePaused  = "Paused"
	AgentPhaseFailed  = "Failed"
)

// AgentGoal is the task text, inline or from a ConfigMap key. Exactly one is set.
// +kubebuilder:validation:XValidation:rule="has(self.inline) != has(self.configMapKeyRef)",message="exactly one of goal.inline and goal.configMapKeyRef must be set"
type AgentGoal struct {
	// inline is the goal text itself.
	// +optional
	// +kubebuilder:validation:MaxLength=65536
	Inline string `json:"inline,omitempty"`
	// configMapKeyRef reads the goal text from a ConfigMap key in the Agent's namespace.
	// +optional
	ConfigMapKeyRef *ConfigMapKeyRef `json:"configMapKeyRef,omitempty"`
}

// ModelSpec selects the model the runtime talks to.
type ModelSpec struct {
	// name of the model, for example claude-opus-4-7.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// provider of the model, for example anthropic or openai. When empty the tenant's
	// default provider for the model family is used.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Provider string `json:"provider,omitempty"`
	// baseURL is where the model API is, when it is not the provider's own: an LLM gateway,
	// a self-hosted model server, a proxy. It is the root URL the runtime's API paths go
	// under (a trailing /v1 is accepted), for example http://llm-gateway.ai.svc:8080; the
	// runtime must speak that server's API: ClaudeCode Anthropic Messages, Codex OpenAI
	// Responses, OpenCode and Cline OpenAI Chat Completions, Gemini the Gemini API. The agent
	// pod gets it in its runtime's own variables and configuration files. (A reference to an
	// LLMGateway will sit beside it, exclusive with it.)
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (self.startsWith('http://') || self.startsWith('https://')) && !self.contains('?') && !self.contains('#')",message="baseURL must be an http or https URL without query or fragment"
	BaseURL string `json:"baseURL,omitempty"`
}

// AgentToken points at the runtime's API key.
type AgentToken struct {
	// secretRef is the Secret key holding the API key. Its value is put into the
	// runtime's token variable (ANTHROPIC_API_KEY, OPENAI_API_KEY, ...).
	SecretRef SecretKeyRef `json:"secretRef"`
}

// AgentSpec is the desired state of an Agent.
// +kubebuilder:validation:XValidation:rule="self.runtime != 'Custom' || (has(self.image) && size(self.image) > 0)",message="image is required when runtime is Custom",fieldPath=".image"
type AgentSpec struct {
	// runtime is the coding-agent CLI the Agent runs: ClaudeCode, Codex, OpenCode, Gemini,
	// Aider, Cline, Goose, Cursor, or Custom (bring your own image and command).
	Runtime Runtime `json:"runtime"`
	// mode is supervised (the agent picks its own steps) or system (a deterministic
	// playbook, what platform invocations dispatch).
	// +optional
	// +kubebuilder:default=supervised
	Mode AgentMode `json:"mode,omitempty"`
	// paused keeps the Agent from running anything: no scheduled and no invoked runs.
	// +optional
	Paused bool `json:"paused,omitempty"`
	// goal is the task the agent works on.
	// +optional
	Goal *AgentGoal `json:"goal,omitempty"`
	// model selects the model the runtime uses.
	// +optional
	Model *ModelSpec `json:"model,omitempty"`
	// agentToken is the runtime's API key, mapped into the runtime's token variable.
	// +optional
	AgentToken *AgentToken `json:"agentToken,omitempty"`
	// image overrides the runtime's default image. Required for the Custom runtime.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Image string `json:"image,omitempty"`
	// command is the entrypoint of the runtime container, for the Custom runtime. Each
	// run executes it with the run's input on stdin and in AGENT_INPUT.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Command []string `json:"command,omitempty"`
	// args are appended to command for every run.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	Args []string `json:"args,omitempty"`
	// env adds variables to the runtime container.
	// +optional
	// +kubebuilder:validation:MaxItems=128
	Env []corev1.EnvVar `json:"env,omitempty"`
	// resources of the runtime container.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`
	// tools are the Tools (in this namespace) the agent may use.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Tools []LocalObjectReference `json:"tools,omitempty"`
	// mcpRefs bind MCP proxies (in this namespace) to the agent.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	MCPRefs []LocalObjectReference `json:"mcpRefs,omitempty"`
	// schedule fires runs on a cron schedule in the standard five-field format
	// ("*/15 * * * *") or a descriptor such as @hourly or "@every 30m". A run is never
	// started while the previous one is still going, and missed runs are not replayed.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self.matches('^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|@every ([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+|[0-9A-Za-z*/,?#-]+( +[0-9A-Za-z*/,?#-]+){4})$')",message="schedule must be a five-field cron expression (minute hour day-of-month month day-of-week) or a descriptor such as @hourly or '@every 30m'"
	Schedule string `json:"schedule,omitempty"`
	// runHistoryLimit is how many finished AgentRuns of this Agent are kept.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	RunHistoryLimit *int32 `json:"runHistoryLimit,omitempty"`
}

// AgentStatus is the observed state of an Agent.
type AgentStatus struct {
	CommonStatus `json:",inline"`
	// ready is "ready/total" containers of the Agent's pod, for example 1/1.
	// +optional
	Ready string `json:"ready,omitempty"`
	// podName is the Agent's pod.
	// +optional
	PodName string `json:"podName,omitempty"`
	// image is the resolved runtime image.
	// +optional
	Image string `json:"image,omitempty"`
	// lastRun is the Agent's most recently created AgentRun, whatever started it.
	// +optional
	LastRun string `json:"lastRun,omitempty"`
	// lastScheduleTime is when the schedule last started a run.
	// +optional
	LastScheduleTime *metav1.Time `json:"lastScheduleTime,omitempty"`
	// nextScheduleTime is when the schedule fires next.
	// +optional
	NextScheduleTime *metav1.Time `json:"nextScheduleTime,omitempty"`
	// tools are the Tools the agent resolved to, after validation.
	// +optional
	Tools []string `json:"tools,omitempty"`
}

// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ag,categories=agentkube
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.ready`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Runtime",type=string,JSONPath=`.spec.runtime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// Agent is a coding or automation agent. It runs as exactly one pod, named after the
// Agent, holding the agentlet and the runtime CLI; runs are AgentRuns.
type Agent struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state of the Agent.
	Spec AgentSpec `json:"spec"`
	// status is the observed state of the Agent.
	// +optional
	Status AgentStatus `json:"status,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true

// AgentList is a list of Agents.
type AgentList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Agent `json:"items"`
}
