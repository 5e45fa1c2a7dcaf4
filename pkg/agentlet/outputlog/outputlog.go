// Package outputlog keeps a run's output on disk with a size bound and lets
// any number of readers follow it while it grows.
//
// Output is written to fixed-size segment files named by their index; when
// the log holds more than its bound, the oldest segment is deleted. Every
// byte has an absolute offset that never changes, so a follower can resume
// from where it stopped and learns when bytes it had not read yet were
// dropped. The log keeps between (segments-1)/segments of the bound and the
// whole bound, and always the most recent bytes ("tail" semantics).
package outputlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// segments is how many files the bound is split into. More segments drop
// less at a time but open more files.
const segments = 4

// Log is an append-only, size-bounded byte log. Write and Close must be
// called from one goroutine; readers may run concurrently.
type Log struct {
	dir         string
	segmentSize int64
	tailSize    int

	mu      sync.Mutex
	start   int64    // offset of the oldest byte still on disk
	end     int64    // offset after the newest byte
	current *os.File // segment being written
	closed  bool
	changed chan struct{} // closed and replaced on every Write and on Close
	tail    []byte        // last tailSize bytes, for status without disk reads
}

// New creates a log in dir (which must exist and be private to this log)
// keeping at most maxBytes on disk and the last tailBytes in memory.
func New(dir string, maxBytes int64, tailBytes int) (*Log, error) {
	seg := max(maxBytes/segments, 1)
	l := &Log{dir: dir, segmentSize: seg, tailSize: tailBytes, changed: make(chan struct{})}
	f, err := os.OpenFile(l.segmentPath(0), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create output segment: %w", err)
	}
	l.current = f
	return l, nil
}

// Write appends p, dropping the oldest segment when the bound is exceeded.
func (l *Log) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return written, os.ErrClosed
		}
		room := l.segmentSize - l.end%l.segmentSize
		chunk := p[:min(int64(len(p)), room)]
		n, err := l.current.Write(chunk)
		l.end += int64(n)
		l.appendTail(chunk[:n])
		if err == nil && l.end%l.segmentSize == 0 {
			err = l.rotate()
		}
		l.notify()
		l.mu.Unlock()
		written += n
		if err != nil {
			return written, fmt.Errorf("write output: %w", err)
		}
		p = p[n:]
	}
	return written, nil
}

// rotate starts the next segment and deletes the ones past the bound. The
// caller holds l.mu.
func (l *Log) rotate() error {
	if err := l.current.Close(); err != nil {
		return err
	}
	next := l.end / l.segmentSize
	f, err := os.OpenFile(l.segmentPath(next), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	l.current = f
	if oldest := next - (segments - 1); oldest > l.start/l.segmentSize {
		for i := l.start / l.segmentSize; i < oldest; i++ {
			// Readers that already opened the segment keep reading it:
			// an unlinked file lives until its last descriptor closes.
			if err := os.Remove(l.segmentPath(i)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		l.start = oldest * l.segmentSize
	}
	return nil
}

func (l *Log) appendTail(p []byte) {
	if l.tailSize <= 0 {
		return
	}
	if len(p) >= l.tailSize {
		l.tail = append(l.tail[:0], p[len(p)-l.tailSize:]...)
		return
	}
	if over := len(l.tail) + len(p) - l.tailSize; over > 0 {
		l.tail = append(l.tail[:0], l.tail[over:]...)
	}
	l.tail = append(l.tail, p...)
}

func (l *Log) notify() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// Close ends the log: followers read to the end and get io.EOF. The files
// stay on disk for later reads.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	l.notify()
	return l.current.Close()
}

// Tail returns a copy of the last bytes written.
func (l *Log) Tail() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.tail...)
}

// Size returns the number of bytes ever written.
func (l *Log) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.end
}

// Start returns the offset of the oldest byte still kept.
func (l *Log) Start() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.start
}

// NewReader reads from offset (clamped to the oldest byte kept). With follow
// it waits for more output until the log is closed or ctx ends; without, it
// stops at the current end. The returned offset is where reading starts.
func (l *Log) NewReader(ctx context.Context, offset int64, follow bool) (*Reader, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	offset = max(offset, l.start)
	r := &Reader{log: l, ctx: ctx, pos: offset, follow: follow, stop: l.end}
	return r, offset
}

func (l *Log) segmentPath(i int64) string {
	return filepath.Join(l.dir, fmt.Sprintf("output.%06d", i))
}

// Reader reads a Log from an offset; see Log.NewReader.
type Reader struct {
	log    *Log
	ctx    context.Context
	pos    int64
	follow bool
	stop   int64 // end of a non-following read
	file   *os.File
	fileNo int64
}

// Read implements io.Reader. Bytes dropped by the bound while the reader
// lagged behind are skipped.
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		r.log.mu.Lock()
		r.pos = max(r.pos, r.log.start)
		end, closed, changed := r.log.end, r.log.closed, r.log.changed
		if !r.follow {
			end = min(end, r.stop)
		}
		r.log.mu.Unlock()

		if r.pos < end {
			return r.readAt(p, end)
		}
		if !r.follow || closed {
			return 0, io.EOF
		}
		select {
		case <-changed:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
}

func (r *Reader) readAt(p []byte, end int64) (int, error) {
	seg := r.log.segmentSize
	no := r.pos / seg
	if r.file == nil || r.fileNo != no {
		if r.file != nil {
			r.file.Close()
			r.file = nil
		}
		f, err := os.Open(r.log.segmentPath(no))
		if errors.Is(err, os.ErrNotExist) {
			// Dropped between our check and the open; the next Read
			// skips to the new start.
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("open output segment: %w", err)
		}
		r.file, r.fileNo = f, no
	}
	limit := min(int64(len(p)), end-r.pos, (no+1)*seg-r.pos)
	n, err := r.file.ReadAt(p[:limit], r.pos%seg)
	r.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// Close releases the reader's open segment.
func (r *Reader) Close() error {
	if r.file != nil {
		err := r.file.Close()
		r.file = nil
		return err
	}
	return nil
}
