package tunnel

import (
	"encoding/json"
	"time"
)

// Hello is the operator's first frame after the WebSocket handshake.
type Hello struct {
	ClusterID         string `json:"cluster_id"`
	OperatorVersion   string `json:"operator_version,omitempty"`
	KubernetesVersion string `json:"kubernetes_version,omitempty"`
}

// Welcome is the platform's answer to Hello: the connection is bound to the
// deployment and the operator may start its snapshot.
type Welcome struct {
	DeploymentID string `json:"deployment_id"`
	// HeartbeatIntervalSeconds is the cadence the platform expects; the
	// operator uses the smaller of it and its own setting.
	HeartbeatIntervalSeconds float64 `json:"heartbeat_interval_seconds"`
}

// Heartbeat is the application-level keep-alive. It exists besides WebSocket
// pings because some L7 proxies (Istio, some load balancers) do not count
// control frames as activity.
type Heartbeat struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
}

// Object is one Kubernetes object of the cluster view.
type Object struct {
	Kind            string `json:"kind"`
	Namespace       string `json:"namespace,omitempty"`
	Name            string `json:"name"`
	UID             string `json:"uid,omitempty"`
	ResourceVersion string `json:"resource_version,omitempty"`
	// Object is the object as JSON, trimmed to what the dashboard shows
	// (Trim): never env values, run inputs, annotations or managedFields.
	Object json.RawMessage `json:"object,omitempty"`
}

// ViewOverBudget is the payload of view_over_budget: the platform stored
// only part of the operator's view because it would exceed the
// deployment's byte budget. Refused changes are dropped, not queued; the
// next snapshot (on reconnect) that fits the budget clears the state.
type ViewOverBudget struct {
	BudgetBytes    int64  `json:"budget_bytes"`
	ViewBytes      int64  `json:"view_bytes"`
	RefusedObjects int    `json:"refused_objects"`
	Message        string `json:"message"`
}

// Key identifies an object within a view.
func (o Object) Key() ObjectKey { return ObjectKey{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name} }

// ObjectKey identifies an object within a view.
type ObjectKey struct{ Kind, Namespace, Name string }

// Snapshot is one chunk of a full resync. The operator sends a snapshot on
// every connect, split into chunks that fit the read limit; the platform
// replaces its view atomically when the chunk with Final arrives, so objects
// deleted while disconnected disappear and a half-received snapshot is never
// visible.
type Snapshot struct {
	Generation uint64   `json:"generation"`
	Objects    []Object `json:"objects"`
	Final      bool     `json:"final"`
}

// Delta operations.
const (
	OpUpsert = "upsert"
	OpDelete = "delete"
)

// Change is one object's latest state (upsert) or its removal (delete).
type Change struct {
	Op     string `json:"op"`
	Object Object `json:"object"`
}

// Delta carries coalesced changes since the snapshot of the same generation.
// Each change is the object's state when it was sent, so applying deltas is
// idempotent and order within a generation is all that matters.
type Delta struct {
	Generation uint64   `json:"generation"`
	Changes    []Change `json:"changes"`
}

// Error is the error part of a result.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Error codes of results.
const (
	CodeNotFound    = "not_found"
	CodeTimeout     = "timeout"
	CodeInvalid     = "invalid"
	CodeInternal    = "internal"
	CodeUnavailable = "unavailable"
)

// InvokeAgent asks the operator to start an AgentRun of an Agent and report
// its result. The frame's ID is the request id.
type InvokeAgent struct {
	Namespace      string   `json:"namespace"`
	Name           string   `json:"name"`
	Input          string   `json:"input,omitempty"`
	Args           []string `json:"args,omitempty"`
	TimeoutSeconds int      `json:"timeout_seconds"`
	// RequestedBy is the platform user, recorded on the AgentRun.
	RequestedBy string `json:"requested_by,omitempty"`
	// OutputStream, when set, is a stream the platform has registered for
	// the run's output. Odd ids: the platform's shells use even ones.
	OutputStream uint32 `json:"output_stream,omitempty"`
}

// InvokeAgentOutput is a piece of a run's output on the request's output
// stream. Data is text cut at UTF-8 boundaries, at most MaxOutputChunk bytes.
type InvokeAgentOutput struct {
	Data string `json:"data"`
}

// MaxOutputChunk bounds InvokeAgentOutput.Data, far below a stream's credit
// window and the read limit.
const MaxOutputChunk = 16 << 10

// InvokeAgentOutputEnd is the last frame on an output stream: everything the
// run printed has been sent, or Error says why the rest cannot be. The
// platform resets the stream when it has read it (a reset drops frames still
// queued, so the operator never resets first).
type InvokeAgentOutputEnd struct {
	Error string `json:"error,omitempty"`
}

// InvokeAgentResult reports the terminal state of the run.
type InvokeAgentResult struct {
	RunName  string `json:"run_name,omitempty"`
	Phase    string `json:"phase,omitempty"`
	ExitCode *int32 `json:"exit_code,omitempty"`
	Output   string `json:"output,omitempty"`
	Message  string `json:"message,omitempty"`
	Error    *Error `json:"error,omitempty"`
	// OutputStreamed says the operator served the request's output stream:
	// it ends with invoke_agent_output_end, which may arrive after this
	// result (streams and the control stream are written independently).
	OutputStreamed bool `json:"output_streamed,omitempty"`
}

// EnsurePod asks the operator to make sure an Agent's pod exists.
type EnsurePod struct {
	Namespace      string `json:"namespace"`
	Name           string `json:"name"`
	TimeoutSeconds int    `json:"timeout_seconds"`
}

// EnsurePodResult reports the Agent's pod.
type EnsurePodResult struct {
	PodName string `json:"pod_name,omitempty"`
	Phase   string `json:"phase,omitempty"`
	Ready   bool   `json:"ready"`
	Error   *Error `json:"error,omitempty"`
}

// WindowUpdate grants the peer Increment more payload bytes on the frame's stream.
type WindowUpdate struct {
	Increment uint32 `json:"increment"`
}

// StreamReset abandons the frame's stream.
type StreamReset struct {
	Reason string `json:"reason,omitempty"`
}
