// Package asciicast writes and validates terminal recordings in the asciicast
// v2 format (https://docs.asciinema.org/manual/asciicast/v2/).
//
// A recording is newline-delimited JSON: a header object on the first line,
// then one event per line, [time, code, data], where time is seconds since the
// start of the recording. The agentlet records every run and attach session
// with Writer; the platform checks uploaded recordings with Reader and
// Validate before replaying them.
package asciicast

// Version is the only asciicast format version this package reads and writes.
const Version = 2

// Event codes defined by asciicast v2.
const (
	CodeOutput = "o" // data written to the terminal
	CodeInput  = "i" // keystrokes typed into the terminal
	CodeResize = "r" // terminal resized; data is "COLSxROWS"
	CodeMarker = "m" // a labelled point in the recording
)

// Header is the first line of a recording.
type Header struct {
	Version       int               `json:"version"`
	Width         int               `json:"width"`
	Height        int               `json:"height"`
	Timestamp     int64             `json:"timestamp,omitempty"`
	Duration      float64           `json:"duration,omitempty"`
	IdleTimeLimit float64           `json:"idle_time_limit,omitempty"`
	Command       string            `json:"command,omitempty"`
	Title         string            `json:"title,omitempty"`
	Env           map[string]string `json:"env,omitempty"`
}

// Event is one line after the header.
type Event struct {
	// Time is seconds since the start of the recording.
	Time float64
	Code string
	Data string
}
