package asciicast

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
)

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("asciicast: writer closed")

// WriterOptions tune a Writer. The zero value records output and resizes,
// drops input, and has no size limit.
type WriterOptions struct {
	// RecordInput enables "i" events. Input holds whatever the user typed,
	// passwords and tokens included, so it is off unless policy allows it.
	RecordInput bool
	// MaxBytes bounds the recording's size on disk; 0 means unbounded. Once
	// an event would cross it, a single "m" marker notes the truncation and
	// later events are dropped, so a runaway process cannot fill the disk.
	MaxBytes int64
	// Now replaces time.Now in tests.
	Now func() time.Time
}

// Writer appends asciicast v2 events to an io.Writer. It is safe for
// concurrent use, so output, input and resize events from different
// goroutines land in one ordered file.
type Writer struct {
	mu        sync.Mutex
	w         io.Writer
	opts      WriterOptions
	start     time.Time
	last      float64
	written   int64
	truncated bool
	closed    bool
	output    utf8Decoder
	input     utf8Decoder
	line      bytes.Buffer
}

// NewWriter writes the header and returns a Writer for the events. When
// header.Version is zero it is set to 2; when header.Timestamp is zero it is
// set to the current time.
func NewWriter(w io.Writer, header Header, opts WriterOptions) (*Writer, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if header.Version == 0 {
		header.Version = Version
	}
	if err := validateHeader(header); err != nil {
		return nil, err
	}
	start := opts.Now()
	if header.Timestamp == 0 {
		header.Timestamp = start.Unix()
	}
	cw := &Writer{w: w, opts: opts, start: start}
	line, err := json.Marshal(header)
	if err != nil {
		return nil, fmt.Errorf("asciicast: encode header: %w", err)
	}
	if err := cw.writeLine(append(line, '\n')); err != nil {
		return nil, err
	}
	return cw, nil
}

// WriteOutput records bytes written to the terminal as an "o" event.
func (w *Writer) WriteOutput(p []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.event(CodeOutput, w.output.decode(p))
}

// WriteInput records keystrokes as an "i" event when input recording is on;
// otherwise it does nothing.
func (w *Writer) WriteInput(p []byte) error {
	if !w.opts.RecordInput {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.event(CodeInput, w.input.decode(p))
}

// Resize records a terminal size change as an "r" event.
func (w *Writer) Resize(cols, rows int) error {
	if cols <= 0 || rows <= 0 {
		return fmt.Errorf("asciicast: invalid terminal size %dx%d", cols, rows)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.event(CodeResize, strconv.Itoa(cols)+"x"+strconv.Itoa(rows))
}

// Marker records a labelled "m" event.
func (w *Writer) Marker(label string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.event(CodeMarker, label)
}

// OutputWriter adapts WriteOutput to io.Writer, for io.Copy and MultiWriter.
func (w *Writer) OutputWriter() io.Writer { return writerFunc(w.WriteOutput) }

// InputWriter adapts WriteInput to io.Writer.
func (w *Writer) InputWriter() io.Writer { return writerFunc(w.WriteInput) }

// Close emits whatever incomplete UTF-8 sequence is still held back (as
// U+FFFD) and stops accepting events. It does not close the underlying
// io.Writer, which belongs to the caller.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	err := errors.Join(
		w.event(CodeOutput, w.output.flush()),
		w.event(CodeInput, w.input.flush()),
	)
	w.closed = true
	return err
}

// event encodes and writes one event line. The caller holds w.mu. Empty data
// is skipped: it happens whenever a read ended in the middle of a character.
func (w *Writer) event(code, data string) error {
	if w.closed {
		return ErrClosed
	}
	if data == "" && code != CodeMarker {
		return nil
	}
	if w.truncated {
		return nil
	}
	// The monotonic clock cannot go backwards, but rounding to microseconds
	// could make two close events look unordered; clamp to be sure.
	t := w.opts.Now().Sub(w.start).Seconds()
	if t < w.last {
		t = w.last
	}
	w.last = t

	w.line.Reset()
	if err := encodeEvent(&w.line, t, code, data); err != nil {
		return err
	}
	if w.opts.MaxBytes > 0 && w.written+int64(w.line.Len()) > w.opts.MaxBytes {
		w.truncated = true
		w.line.Reset()
		if err := encodeEvent(&w.line, t, CodeMarker, "recording truncated: size limit reached"); err != nil {
			return err
		}
	}
	return w.writeLine(w.line.Bytes())
}

func (w *Writer) writeLine(line []byte) error {
	n, err := w.w.Write(line)
	w.written += int64(n)
	if err != nil {
		return fmt.Errorf("asciicast: write: %w", err)
	}
	return nil
}

func encodeEvent(buf *bytes.Buffer, t float64, code, data string) error {
	buf.WriteByte('[')
	buf.WriteString(strconv.FormatFloat(t, 'f', 6, 64))
	buf.WriteString(`,"`)
	buf.WriteString(code)
	buf.WriteString(`",`)
	enc := json.NewEncoder(buf)
	// Terminal output is full of '<' and '&'; escaping them for HTML would
	// only make recordings bigger and harder to read.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(data); err != nil { // Encode appends '\n'
		return fmt.Errorf("asciicast: encode event: %w", err)
	}
	buf.Truncate(buf.Len() - 1)
	buf.WriteString("]\n")
	return nil
}

type writerFunc func([]byte) error

func (f writerFunc) Write(p []byte) (int, error) {
	if err := f(p); err != nil {
		return 0, err
	}
	return len(p), nil
}
