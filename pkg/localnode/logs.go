//go:build linux

package localnode

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/node/api"
)

// Container logs are kept per container and per restart in the CRI log format
// the kubelet reads ("<RFC3339Nano time> <stdout|stderr> <F|P> <text>\n", F for
// a full line and P for a partial one), so timestamps, sinceTime, tailLines and
// previous work as on a kubelet. Output is written as it arrives (a prompt with
// no newline shows up in `kubectl logs -f` at once). A file larger than maxSize
// is rotated once to <file>.1.

const logTimeFormat = time.RFC3339Nano

type logFile struct {
	path    string
	maxSize int64

	mu      sync.Mutex
	f       *os.File
	size    int64
	gen     int
	closed  bool
	changed chan struct{}
}

func createLogFile(path string, maxSize int64) (*logFile, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return nil, err
	}
	_ = os.Remove(path + ".1")
	return &logFile{path: path, maxSize: maxSize, f: f, changed: make(chan struct{})}, nil
}

func (l *logFile) wake() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// write appends data from stream ("stdout" or "stderr") as log entries.
func (l *logFile) write(stream string, data []byte) {
	if len(data) == 0 {
		return
	}
	ts := time.Now().UTC().Format(logTimeFormat)
	var buf bytes.Buffer
	for len(data) > 0 {
		line, rest, full := bytes.Cut(data, []byte{'\n'})
		tag := " F "
		if !full {
			tag = " P "
		}
		buf.WriteString(ts)
		buf.WriteByte(' ')
		buf.WriteString(stream)
		buf.WriteString(tag)
		buf.Write(line)
		buf.WriteByte('\n')
		data = rest
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	if l.maxSize > 0 && l.size+int64(buf.Len()) > l.maxSize && l.size > 0 {
		l.f.Close()
		_ = os.Rename(l.path, l.path+".1")
		if f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640); err == nil {
			l.f, l.size = f, 0
			l.gen++
		} else {
			l.closed = true
			l.wake()
			return
		}
	}
	n, _ := l.f.Write(buf.Bytes())
	l.size += int64(n)
	l.wake()
}

// close marks the end of the container instance: followers stop at the end.
func (l *logFile) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		l.f.Close()
		l.wake()
	}
}

// openAfter opens, consistently with rotation, the current file and — when
// the caller's file (generation gen) is two rotations old — the rotated file
// that came between.
func (l *logFile) openAfter(gen int) (older, current *os.File, curGen int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gen-gen >= 2 {
		older, _ = os.Open(l.path + ".1")
	}
	current, err = os.Open(l.path)
	if err != nil {
		if older != nil {
			older.Close()
		}
		return nil, nil, 0, err
	}
	return older, current, l.gen, nil
}

func (l *logFile) state() (gen int, closed bool, changed <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.gen, l.closed, l.changed
}

// logEntry is one parsed log line.
type logEntry struct {
	ts      time.Time
	stream  string
	partial bool
	text    []byte
}

func parseLogLine(line []byte) (logEntry, bool) {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	tsEnd := bytes.IndexByte(line, ' ')
	if tsEnd < 0 {
		return logEntry{}, false
	}
	ts, err := time.Parse(logTimeFormat, string(line[:tsEnd]))
	if err != nil {
		return logEntry{}, false
	}
	rest := line[tsEnd+1:]
	stream, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return logEntry{}, false
	}
	tag, text, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return logEntry{}, false
	}
	return logEntry{ts: ts, stream: string(stream), partial: string(tag) == "P", text: text}, true
}

// logOutput renders entries for the kubelet's containerLogs endpoint.
type logOutput struct {
	w          io.Writer
	timestamps bool
	since      time.Time
	limit      int64 // bytes left; <0 unlimited
	atLineHead bool
}

var errLimitReached = errors.New("limitBytes reached")

func (o *logOutput) emit(e logEntry) error {
	if !o.since.IsZero() && e.ts.Before(o.since) {
		return nil
	}
	var buf bytes.Buffer
	if o.timestamps && o.atLineHead {
		buf.WriteString(e.ts.Format(logTimeFormat))
		buf.WriteByte(' ')
	}
	buf.Write(e.text)
	if !e.partial {
		buf.WriteByte('\n')
	}
	o.atLineHead = !e.partial
	b := buf.Bytes()
	if o.limit >= 0 {
		if int64(len(b)) >= o.limit {
			_, err := o.w.Write(b[:o.limit])
			o.limit = 0
			if err != nil {
				return err
			}
			return errLimitReached
		}
		o.limit -= int64(len(b))
	}
	_, err := o.w.Write(b)
	return err
}

// streamLogs writes the log of one container instance to w. files are the
// instance's log files, oldest first (a rotated file, then the current one);
// live is the writer when the instance still runs (nil for a finished one).
func streamLogs(ctx context.Context, w io.Writer, live *logFile, files []string, opts api.ContainerLogOpts) error {
	out := &logOutput{w: w, timestamps: opts.Timestamps, limit: -1, atLineHead: true}
	if opts.LimitBytes > 0 {
		out.limit = int64(opts.LimitBytes)
	}
	if opts.SinceSeconds > 0 {
		out.since = time.Now().Add(-time.Duration(opts.SinceSeconds) * time.Second)
	} else if !opts.SinceTime.IsZero() {
		out.since = opts.SinceTime
	}

	// What is there now: read it all, keeping the last tailLines lines.
	var pending []logEntry
	// tailLines=0 cannot be told from an absent tailLines here: both show
	// everything.
	tail := -1
	if opts.Tail > 0 {
		tail = opts.Tail
	}
	var gen int
	var current *os.File
	var reader *bufio.Reader
	if live != nil {
		gen, _, _ = live.state()
	}
	for i, path := range files {
		f, err := os.Open(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return err
		}
		r := bufio.NewReaderSize(f, 64<<10)
		for {
			line, err := r.ReadBytes('\n')
			if len(line) > 0 && line[len(line)-1] == '\n' {
				if e, ok := parseLogLine(line); ok {
					pending = append(pending, e)
				}
			} else if len(line) > 0 && i == len(files)-1 && live != nil {
				// An entry being written: the follower reads it again.
				_, _ = f.Seek(-int64(len(line)), io.SeekCurrent)
			}
			if err != nil {
				break
			}
		}
		if i == len(files)-1 && live != nil && opts.Follow {
			current = f
			reader = bufio.NewReaderSize(f, 64<<10)
		} else {
			f.Close()
		}
	}
	if current != nil {
		defer func() { current.Close() }()
	}
	if tail >= 0 {
		pending = tailEntries(pending, tail)
	}
	for _, e := range pending {
		if err := out.emit(e); err != nil {
			if err == errLimitReached {
				return nil
			}
			return err
		}
	}
	if !opts.Follow || live == nil || current == nil {
		return nil
	}
	if f, ok := w.(interface{ Flush() }); ok {
		f.Flush()
	}

	// Follow until the instance ends and everything is read.
	var partialLine []byte
	for {
		gen2, closed, changed := live.state()
		for {
			line, err := reader.ReadBytes('\n')
			if len(line) > 0 {
				if line[len(line)-1] != '\n' {
					partialLine = append(partialLine, line...)
				} else {
					if len(partialLine) > 0 {
						line = append(partialLine, line...)
						partialLine = nil
					}
					if e, ok := parseLogLine(line); ok {
						if err := out.emit(e); err != nil {
							if err == errLimitReached {
								return nil
							}
							return err
						}
					}
				}
			}
			if err != nil {
				break
			}
		}
		if gen2 != gen {
			// The file we hold was rotated away and is complete; go on with
			// the rotated file after it (if we fell behind by two) and the
			// current one.
			current.Close()
			older, f, newGen, err := live.openAfter(gen)
			if err != nil {
				return err
			}
			if older != nil {
				r := bufio.NewReaderSize(older, 64<<10)
				for {
					line, err := r.ReadBytes('\n')
					if len(line) > 0 && line[len(line)-1] == '\n' {
						if e, ok := parseLogLine(line); ok {
							if err := out.emit(e); err != nil {
								older.Close()
								f.Close()
								if err == errLimitReached {
									return nil
								}
								return err
							}
						}
					}
					if err != nil {
						break
					}
				}
				older.Close()
			}
			current, gen, partialLine = f, newGen, nil
			reader = bufio.NewReaderSize(f, 64<<10)
			continue
		}
		if closed {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil
		}
	}
}

// tailEntries keeps the entries of the last n lines (a line may span partial
// entries).
func tailEntries(entries []logEntry, n int) []logEntry {
	lines := 0
	for i := len(entries) - 1; i >= 0; i-- {
		// A full entry ends a line; so does a trailing partial one.
		if !entries[i].partial || i == len(entries)-1 {
			lines++
			if lines > n {
				return entries[i+1:]
			}
		}
	}
	return entries
}
