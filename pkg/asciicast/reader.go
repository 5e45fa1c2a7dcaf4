package asciicast

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"unicode/utf8"
)

// MaxLineBytes bounds a single line of a recording; longer lines are
// rejected rather than buffered without limit.
const MaxLineBytes = 8 << 20

var resizeData = regexp.MustCompile(`^[1-9][0-9]*x[1-9][0-9]*$`)

// Reader reads and validates a recording one event at a time, so the
// platform can check a large upload without holding it in memory.
type Reader struct {
	r      *bufio.Reader
	header Header
	line   int
	last   float64
}

// NewReader reads and validates the header line.
func NewReader(r io.Reader) (*Reader, error) {
	cr := &Reader{r: bufio.NewReaderSize(r, 64<<10)}
	line, err := cr.next()
	if err == io.EOF {
		return nil, errors.New("asciicast: empty recording, missing header")
	}
	if err != nil {
		return nil, err
	}
	h, err := parseHeader(line)
	if err != nil {
		return nil, fmt.Errorf("asciicast: line 1: %w", err)
	}
	cr.header = h
	return cr, nil
}

// Header returns the recording's header.
func (r *Reader) Header() Header { return r.header }

// Next returns the next event, or io.EOF after the last one. It fails on the
// first line that is not a valid, ordered asciicast v2 event.
func (r *Reader) Next() (Event, error) {
	line, err := r.next()
	if err != nil {
		return Event{}, err
	}
	ev, err := parseEvent(line)
	if err != nil {
		return Event{}, fmt.Errorf("asciicast: line %d: %w", r.line, err)
	}
	if ev.Time < r.last {
		return Event{}, fmt.Errorf("asciicast: line %d: time %v is before the previous event's %v", r.line, ev.Time, r.last)
	}
	r.last = ev.Time
	return ev, nil
}

// next returns the next non-empty line without its newline.
func (r *Reader) next() ([]byte, error) {
	for {
		line, err := r.readLine()
		if err != nil {
			return nil, err
		}
		r.line++
		if len(bytes.TrimSpace(line)) == 0 {
			continue // a trailing blank line is harmless
		}
		// encoding/json silently replaces invalid UTF-8 with U+FFFD, so the
		// raw bytes have to be checked before decoding.
		if !utf8.Valid(line) {
			return nil, fmt.Errorf("asciicast: line %d: invalid UTF-8", r.line)
		}
		return line, nil
	}
}

func (r *Reader) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, isPrefix, err := r.r.ReadLine()
		if err != nil {
			if err == io.EOF && len(line) > 0 {
				return line, nil
			}
			return nil, err
		}
		line = append(line, chunk...)
		if len(line) > MaxLineBytes {
			return nil, fmt.Errorf("asciicast: line %d longer than %d bytes", r.line+1, MaxLineBytes)
		}
		if !isPrefix {
			return line, nil
		}
	}
}

// Validate reads a whole recording and reports the first problem: a missing
// or invalid header, a malformed event, an unknown event code, times going
// backwards, or data that is not valid UTF-8.
func Validate(r io.Reader) (Header, int, error) {
	cr, err := NewReader(r)
	if err != nil {
		return Header{}, 0, err
	}
	events := 0
	for {
		_, err := cr.Next()
		if err == io.EOF {
			return cr.Header(), events, nil
		}
		if err != nil {
			return cr.Header(), events, err
		}
		events++
	}
}

func parseHeader(line []byte) (Header, error) {
	// Decode into raw fields first so "width": 80.5 or "version": "2" are
	// rejected instead of silently truncated or zeroed.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(line, &raw); err != nil {
		return Header{}, fmt.Errorf("header is not a JSON object: %w", err)
	}
	for _, field := range []string{"version", "width", "height"} {
		v, ok := raw[field]
		if !ok {
			return Header{}, fmt.Errorf("header lacks required field %q", field)
		}
		var n int
		if err := json.Unmarshal(v, &n); err != nil {
			return Header{}, fmt.Errorf("header field %q must be an integer: %w", field, err)
		}
	}
	var h Header
	if err := json.Unmarshal(line, &h); err != nil {
		return Header{}, fmt.Errorf("decode header: %w", err)
	}
	return h, validateHeader(h)
}

func validateHeader(h Header) error {
	if h.Version != Version {
		return fmt.Errorf("asciicast: unsupported version %d, want %d", h.Version, Version)
	}
	if h.Width <= 0 || h.Height <= 0 {
		return fmt.Errorf("asciicast: invalid terminal size %dx%d", h.Width, h.Height)
	}
	return nil
}

func parseEvent(line []byte) (Event, error) {
	var fields []json.RawMessage
	if err := json.Unmarshal(line, &fields); err != nil {
		return Event{}, fmt.Errorf("event is not a JSON array: %w", err)
	}
	if len(fields) != 3 {
		return Event{}, fmt.Errorf("event has %d elements, want 3", len(fields))
	}
	var ev Event
	if err := json.Unmarshal(fields[0], &ev.Time); err != nil {
		return Event{}, fmt.Errorf("event time must be a number: %w", err)
	}
	if ev.Time < 0 || math.IsInf(ev.Time, 0) {
		return Event{}, fmt.Errorf("event time %v out of range", ev.Time)
	}
	if err := json.Unmarshal(fields[1], &ev.Code); err != nil {
		return Event{}, fmt.Errorf("event code must be a string: %w", err)
	}
	if err := json.Unmarshal(fields[2], &ev.Data); err != nil {
		return Event{}, fmt.Errorf("event data must be a string: %w", err)
	}
	switch ev.Code {
	case CodeOutput, CodeInput, CodeMarker:
	case CodeResize:
		if !resizeData.MatchString(ev.Data) {
			return Event{}, fmt.Errorf("resize data %q is not COLSxROWS", ev.Data)
		}
	default:
		return Event{}, fmt.Errorf("unknown event code %q", ev.Code)
	}
	return ev, nil
}
