// Package api holds the agentlet's HTTP wire types, shared by the server in
// the Agent pod and the client in the manager.
package api

import "time"

// Paths served by the agentlet. {id} is a run ID.
const (
	PathHealthz   = "/healthz"
	PathRuns      = "/v1/runs"
	PathRun       = "/v1/runs/{id}"
	PathOutput    = "/v1/runs/{id}/output"
	PathCancel    = "/v1/runs/{id}/cancel"
	PathRecording = "/v1/runs/{id}/recording"
	PathAttach    = "/v1/attach"
	// PathSessionRecording serves the recording of an attach session; the
	// session ID comes back in HeaderSessionID on the WebSocket handshake.
	PathSessionRecording = "/v1/sessions/{id}/recording"
)

// Headers set by the agentlet.
const (
	// HeaderSessionID names the attach session in the 101 response.
	HeaderSessionID = "X-Agentlet-Session"
	// HeaderOutputOffset is the absolute byte offset where an output
	// response starts; older bytes were dropped by the output bound.
	HeaderOutputOffset = "X-Agentlet-Output-Offset"
)

// RecordingContentType is the media type of asciicast files.
const RecordingContentType = "application/x-asciicast"

// Phase is where a run is in its life.
type Phase string

const (
	PhasePending   Phase = "Pending"
	PhaseRunning   Phase = "Running"
	PhaseSucceeded Phase = "Succeeded"
	PhaseFailed    Phase = "Failed"
	PhaseTimedOut  Phase = "TimedOut"
	PhaseCanceled  Phase = "Canceled"
)

// Finished reports whether the phase is terminal.
func (p Phase) Finished() bool {
	switch p {
	case PhaseSucceeded, PhaseFailed, PhaseTimedOut, PhaseCanceled:
		return true
	}
	return false
}

// RunRequest is the body of POST /v1/runs.
type RunRequest struct {
	// ID optionally names the run (the manager uses the AgentRun's name).
	// Repeating a POST with the ID of an existing run returns that run with
	// 200 instead of starting another, so retries are safe.
	ID string `json:"id,omitempty"`
	// Input is the task for this run; the runtime gets it with the goal.
	Input string `json:"input,omitempty"`
	// Args are appended to the runtime's command line.
	Args []string `json:"args,omitempty"`
	// TimeoutSeconds bounds the run; 0 means the agentlet's default.
	TimeoutSeconds int64 `json:"timeoutSeconds,omitempty"`
}

// Run is the status of one run, returned by POST /v1/runs and
// GET /v1/runs/{id}.
type Run struct {
	ID             string     `json:"id"`
	Phase          Phase      `json:"phase"`
	Runtime        string     `json:"runtime"`
	Command        []string   `json:"command,omitempty"`
	PID            int        `json:"pid,omitempty"`
	ExitCode       *int       `json:"exitCode,omitempty"`
	Signal         string     `json:"signal,omitempty"`
	CreationTime   time.Time  `json:"creationTime"`
	StartTime      *time.Time `json:"startTime,omitempty"`
	CompletionTime *time.Time `json:"completionTime,omitempty"`
	TimeoutSeconds int64      `json:"timeoutSeconds"`
	Message        string     `json:"message,omitempty"`
	// OutputBytes counts every byte the run wrote, including bytes the
	// output bound has since dropped.
	OutputBytes int64 `json:"outputBytes"`
	// OutputTail is the last bytes of output (at most OutputTailBytes), as
	// text with invalid UTF-8 replaced.
	OutputTail string `json:"outputTail,omitempty"`
}

// OutputTailBytes bounds Run.OutputTail.
const OutputTailBytes = 16 << 10

// RunList is the body of GET /v1/runs, newest first.
type RunList struct {
	Items []Run `json:"items"`
}

// TerminalSize is the payload of the attach resize channel, as in
// Kubernetes' remotecommand protocol.
type TerminalSize struct {
	Width  uint16
	Height uint16
}
