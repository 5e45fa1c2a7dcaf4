// Package protocol holds the payloads of the browser-shell frames that flow
// over the operator tunnel (pkg/tunnel). It has no dependencies so that both
// exo-app (pkg/platform/shell) and the operator (pkg/shellexec) can import
// it without pulling the other's world in.
//
// A shell session, keyed by its grant id:
//
//	platform → operator  control stream  shell_open   {grant_id, stream, namespace, agent, cols, rows, ...}
//	platform → operator  stream N        shell_input  {data}       keystrokes
//	platform → operator  stream N        shell_resize {cols, rows}
//	operator → platform  stream N        shell_started {pod, container}
//	operator → platform  stream N        shell_output {data}       terminal bytes
//	operator → platform  stream N        shell_close  {exit_code, error}
//	platform → operator  control stream  shell_close  {reason}    (frame id = grant_id)
//
// The platform registers stream N before it sends shell_open; the operator
// registers it while handling shell_open (before the next frame is read), so
// no stream frame can arrive for an unknown stream.
//
// The operator always ends a session with shell_close on the stream, with the
// exit code or the error; the platform answers it by resetting the stream.
// Resetting only after the final frame matters: a reset drops frames still
// queued on the stream. To end a session early (the browser went away) the
// platform sends shell_close on the control stream, so the request is never
// stuck behind input that the shell is not reading, and then waits for the
// operator's shell_close as usual.
package protocol

// TypeShellStarted is sent by the operator on the shell's stream once the
// exec stream is up, so the platform can tell a slow start from a lost
// shell_open. The other shell frame types are constants of pkg/tunnel.
const TypeShellStarted = "shell_started"

// Started is the payload of shell_started.
type Started struct {
	Pod       string `json:"pod"`
	Container string `json:"container"`
}

// MaxChunk is the largest data payload in one shell_input or shell_output
// frame, before base64. Small enough that one frame never approaches a
// stream's credit window (256 KiB by default) or the tunnel's read limit,
// large enough that bulk output costs few frames.
const MaxChunk = 32 << 10

// Open is the payload of shell_open, sent on the control stream with the
// grant id as the frame id.
type Open struct {
	GrantID string `json:"grant_id"`
	// Stream is the tunnel stream the session's frames use.
	Stream    uint32 `json:"stream"`
	Namespace string `json:"namespace"`
	// Agent names the Agent; its pod has the same name.
	Agent string `json:"agent"`
	// Container overrides the container to open the shell in; empty means
	// the Agent's runtime container.
	Container string `json:"container,omitempty"`
	Cols      uint16 `json:"cols"`
	Rows      uint16 `json:"rows"`
	// RequestedBy names the platform user, for the operator's logs.
	RequestedBy string `json:"requested_by,omitempty"`
}

// Data is the payload of shell_input and shell_output. encoding/json carries
// []byte as base64, so arbitrary terminal bytes survive the JSON envelope.
type Data struct {
	Data []byte `json:"data"`
}

// Resize is the payload of shell_resize.
type Resize struct {
	Cols uint16 `json:"cols"`
	Rows uint16 `json:"rows"`
}

// Close is the payload of shell_close. From the operator it reports how the
// shell ended: ExitCode is set when the process exited, Error when it could
// not be started or the exec stream failed. From the platform it is empty
// (the browser went away) or carries a Reason.
type Close struct {
	ExitCode *int   `json:"exit_code,omitempty"`
	Error    *Error `json:"error,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// Error codes in Close.Error.
const (
	CodeNotFound    = "not_found"   // no such Agent pod or container
	CodeForbidden   = "forbidden"   // pods/exec refused (RBAC, admission)
	CodeUnavailable = "unavailable" // the pod is not running, exec stream broke
	CodeInvalid     = "invalid"     // malformed shell_open
	CodeInternal    = "internal"
)

// Error is a failure reported to the browser.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }
