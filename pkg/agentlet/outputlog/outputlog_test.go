package outputlog

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"testing"
)

func TestLogKeepsTheNewestBytesWithinTheBound(t *testing.T) {
	dir := t.TempDir()
	l, err := New(dir, 400, 16)
	if err != nil {
		t.Fatal(err)
	}
	var all bytes.Buffer
	for i := range 100 {
		line := fmt.Sprintf("line %03d\n", i) // 9 bytes
		all.WriteString(line)
		if _, err := l.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	if l.Size() != int64(all.Len()) {
		t.Errorf("size %d, want %d", l.Size(), all.Len())
	}
	kept := l.Size() - l.Start()
	if kept > 400 || kept < 300 {
		t.Errorf("kept %d bytes, want between 300 and 400", kept)
	}
	r, off := l.NewReader(context.Background(), 0, false)
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if off != l.Start() || !bytes.Equal(got, all.Bytes()[off:]) {
		t.Errorf("read from %d: got %q, want the last %d bytes", off, got, kept)
	}
	if want := all.Bytes()[all.Len()-16:]; !bytes.Equal(l.Tail(), want) {
		t.Errorf("tail %q, want %q", l.Tail(), want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) > segments {
		t.Errorf("%d segment files on disk, want at most %d", len(entries), segments)
	}
}

func TestFollowingReaderSeesEverythingUntilClose(t *testing.T) {
	l, err := New(t.TempDir(), 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := l.NewReader(context.Background(), 0, true)
	defer r.Close()
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		done <- b
	}()
	var want bytes.Buffer
	for i := range 50 {
		chunk := fmt.Sprintf("chunk %d;", i)
		want.WriteString(chunk)
		if _, err := l.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := <-done; !bytes.Equal(got, want.Bytes()) {
		t.Errorf("follower got %q, want %q", got, want.Bytes())
	}
}

func TestFollowingReaderStopsWithContext(t *testing.T) {
	l, err := New(t.TempDir(), 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	r, _ := l.NewReader(ctx, 0, true)
	defer r.Close()
	cancel()
	if _, err := io.ReadAll(r); err != context.Canceled {
		t.Errorf("got %v, want context.Canceled", err)
	}
}
