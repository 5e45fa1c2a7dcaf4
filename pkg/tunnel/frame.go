// Package tunnel is the wire protocol between the agentkube operator and the
// Exo platform: JSON frames in a versioned envelope over one WebSocket, a
// control stream (0) for snapshots, deltas, heartbeats and requests, and
// credit-based flow-controlled streams (1, 2, ...) for byte streams such as
// browser shells, so one stalled stream never delays another or the control
// stream. Both exo-app (pkg/platform/agentkube) and the operator
// (pkg/connect) use it; docs/tunnel.md is the human-readable specification.
package tunnel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Version is the envelope version this package speaks. A peer sending another
// version is speaking a protocol we cannot interpret safely, so it is a
// protocol error rather than an ignorable frame.
const Version = 1

// Frame types. A receiver ignores types it does not know, so either side can
// add frame types without a version bump.
const (
	// Operator → platform, control stream.
	TypeHello             = "hello"
	TypeSnapshot          = "snapshot"
	TypeDelta             = "delta"
	TypeHeartbeat         = "heartbeat"
	TypeInvokeAgentResult = "invoke_agent_result"
	TypeEnsurePodResult   = "ensure_pod_result"

	// Platform → operator, control stream.
	TypeWelcome     = "welcome"
	TypeInvokeAgent = "invoke_agent"
	TypeEnsurePod   = "ensure_pod"
	// TypeViewOverBudget tells the operator that the platform refused part
	// of its cluster view (ViewOverBudget); older operators ignore it.
	TypeViewOverBudget = "view_over_budget"

	// Streamed invoke output: invoke_agent may name a stream the platform
	// has registered (InvokeAgent.OutputStream); the operator then sends the
	// run's output on it as it is produced and ends it with
	// invoke_agent_output_end, under the stream's own credit window.
	TypeInvokeAgentOutput    = "invoke_agent_output"
	TypeInvokeAgentOutputEnd = "invoke_agent_output_end"

	// Browser shells: shell_open on the control stream names a
	// grant_id and the stream it will use; input, output and resize then flow
	// on that stream under its own credit window.
	TypeShellOpen   = "shell_open"
	TypeShellInput  = "shell_input"
	TypeShellOutput = "shell_output"
	TypeShellResize = "shell_resize"
	TypeShellClose  = "shell_close"

	// Flow control, either direction. They name the stream they concern in
	// the envelope's stream field, are handled by Conn itself, never consume
	// credit and are written with control priority.
	TypeWindowUpdate = "window_update"
	TypeStreamReset  = "stream_reset"
)

const (
	maxTypeLen = 64
	maxIDLen   = 128
)

// Frame is the envelope of every WebSocket message:
//
//	{"v":1,"type":"delta","id":"...","stream":0,"payload":{...}}
//
// ID correlates a request with its result (the result carries the request's
// ID). Stream 0 is the control stream; any other stream is flow controlled.
type Frame struct {
	V       int             `json:"v"`
	Type    string          `json:"type"`
	ID      string          `json:"id,omitempty"`
	Stream  uint32          `json:"stream,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// ErrInvalidFrame reports a message that is not a valid envelope.
var ErrInvalidFrame = errors.New("tunnel: invalid frame")

// ErrUnsupportedVersion reports an envelope of another protocol version.
var ErrUnsupportedVersion = errors.New("tunnel: unsupported protocol version")

// Decode parses and validates one message. It never panics on any input
// (FuzzDecode) and rejects anything a handler should not have to defend
// against: wrong version, missing or oversized type, a payload that is not a
// JSON object.
func Decode(b []byte) (Frame, error) {
	var f Frame
	if err := json.Unmarshal(b, &f); err != nil {
		return Frame{}, fmt.Errorf("%w: %v", ErrInvalidFrame, err)
	}
	if f.V != Version {
		return Frame{}, fmt.Errorf("%w: v=%d, want %d", ErrUnsupportedVersion, f.V, Version)
	}
	if f.Type == "" || len(f.Type) > maxTypeLen {
		return Frame{}, fmt.Errorf("%w: type must be 1-%d bytes", ErrInvalidFrame, maxTypeLen)
	}
	if len(f.ID) > maxIDLen {
		return Frame{}, fmt.Errorf("%w: id longer than %d bytes", ErrInvalidFrame, maxIDLen)
	}
	if len(f.Payload) > 0 {
		p := bytes.TrimSpace(f.Payload)
		if bytes.Equal(p, []byte("null")) {
			f.Payload = nil
		} else if p[0] != '{' {
			return Frame{}, fmt.Errorf("%w: payload must be a JSON object", ErrInvalidFrame)
		}
	}
	return f, nil
}

// NewFrame builds a frame with payload marshalled to JSON.
func NewFrame(typ, id string, stream uint32, payload any) (Frame, error) {
	f := Frame{V: Version, Type: typ, ID: id, Stream: stream}
	if payload != nil {
		b, err := marshal(payload)
		if err != nil {
			return Frame{}, fmt.Errorf("tunnel: encode %s payload: %w", typ, err)
		}
		f.Payload = b
	}
	return f, nil
}

// Encode marshals the envelope.
func (f Frame) Encode() ([]byte, error) {
	if f.V == 0 {
		f.V = Version
	}
	b, err := marshal(f)
	if err != nil {
		return nil, fmt.Errorf("tunnel: encode %s frame: %w", f.Type, err)
	}
	return b, nil
}

// marshal is json.Marshal without HTML escaping: frames are never embedded in HTML,
// and escaping would rewrite a payload's bytes ("&" → "\u0026") on every hop.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Unmarshal decodes the payload into v.
func (f Frame) Unmarshal(v any) error {
	if len(f.Payload) == 0 {
		return fmt.Errorf("%w: %s frame without payload", ErrInvalidFrame, f.Type)
	}
	if err := json.Unmarshal(f.Payload, v); err != nil {
		return fmt.Errorf("%w: %s payload: %v", ErrInvalidFrame, f.Type, err)
	}
	return nil
}
