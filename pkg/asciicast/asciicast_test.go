package asciicast

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// fakeClock advances by a millisecond on every reading so event times are
// deterministic.
func fakeClock() func() time.Time {
	t := time.Unix(1700000000, 0)
	return func() time.Time {
		t = t.Add(time.Millisecond)
		return t
	}
}

func readAll(t *testing.T, data []byte) (Header, []Event) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("NewReader: %v\n%s", err, data)
	}
	var events []Event
	for {
		ev, err := r.Next()
		if err == io.EOF {
			return r.Header(), events
		}
		if err != nil {
			t.Fatalf("Next: %v\n%s", err, data)
		}
		events = append(events, ev)
	}
}

func TestWriterRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{Width: 80, Height: 24, Env: map[string]string{"TERM": "xterm-256color"}},
		WriterOptions{RecordInput: true, Now: fakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	mustNoErr(t, w.WriteOutput([]byte("hello <world> & \x1b[31mred\x1b[0m\n")))
	mustNoErr(t, w.Resize(120, 40))
	mustNoErr(t, w.WriteInput([]byte("ls\r")))
	mustNoErr(t, w.Marker("done"))
	mustNoErr(t, w.Close())
	if err := w.WriteOutput([]byte("late")); err != ErrClosed {
		t.Errorf("write after close: got %v, want ErrClosed", err)
	}

	h, events := readAll(t, buf.Bytes())
	if h.Version != 2 || h.Width != 80 || h.Height != 24 || h.Timestamp != 1700000000 || h.Env["TERM"] != "xterm-256color" {
		t.Errorf("unexpected header %+v", h)
	}
	want := []Event{
		{Code: "o", Data: "hello <world> & \x1b[31mred\x1b[0m\n"},
		{Code: "r", Data: "120x40"},
		{Code: "i", Data: "ls\r"},
		{Code: "m", Data: "done"},
	}
	if len(events) != len(want) {
		t.Fatalf("got %d events, want %d: %+v", len(events), len(want), events)
	}
	for i := range want {
		if events[i].Code != want[i].Code || events[i].Data != want[i].Data {
			t.Errorf("event %d: got %+v, want %+v", i, events[i], want[i])
		}
	}
	if !strings.Contains(buf.String(), "<world> &") {
		t.Errorf("output was HTML-escaped: %s", buf.String())
	}
}

func TestWriterDropsInputUnlessEnabled(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{Width: 80, Height: 24}, WriterOptions{Now: fakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	mustNoErr(t, w.WriteInput([]byte("secret-password\r")))
	mustNoErr(t, w.WriteOutput([]byte("ok")))
	mustNoErr(t, w.Close())
	if strings.Contains(buf.String(), "secret") {
		t.Fatalf("input recorded although RecordInput is off:\n%s", buf.String())
	}
}

func TestWriterKeepsSplitCharactersWhole(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{Width: 80, Height: 24}, WriterOptions{Now: fakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	text := []byte("a€b😀c")
	for i := range text { // one byte per read: every character is split
		mustNoErr(t, w.WriteOutput(text[i:i+1]))
	}
	mustNoErr(t, w.Close())
	_, events := readAll(t, buf.Bytes())
	var got strings.Builder
	for _, ev := range events {
		got.WriteString(ev.Data)
	}
	if got.String() != string(text) {
		t.Fatalf("got %q, want %q", got.String(), text)
	}
}

func TestWriterReplacesInvalidBytes(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{Width: 80, Height: 24}, WriterOptions{Now: fakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	mustNoErr(t, w.WriteOutput([]byte{'x', 0xff, 'y', 0xe2, 0x82})) // ends in an incomplete "€"
	mustNoErr(t, w.Close())
	_, events := readAll(t, buf.Bytes())
	var got strings.Builder
	for _, ev := range events {
		got.WriteString(ev.Data)
	}
	if want := "x\uFFFDy\uFFFD"; got.String() != want {
		t.Fatalf("got %q, want %q", got.String(), want)
	}
}

func TestWriterSizeLimit(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{Width: 80, Height: 24}, WriterOptions{MaxBytes: 200, Now: fakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		mustNoErr(t, w.WriteOutput([]byte("0123456789")))
	}
	mustNoErr(t, w.Close())
	_, events := readAll(t, buf.Bytes())
	last := events[len(events)-1]
	if last.Code != CodeMarker || !strings.Contains(last.Data, "truncated") {
		t.Errorf("last event %+v is not a truncation marker", last)
	}
	if buf.Len() > 200+100 {
		t.Errorf("recording is %d bytes, limit 200 (plus one marker)", buf.Len())
	}
}

func TestReaderRejects(t *testing.T) {
	header := `{"version":2,"width":80,"height":24}` + "\n"
	cases := map[string]string{
		"empty":            "",
		"header not json":  "hello\n",
		"wrong version":    `{"version":1,"width":80,"height":24}` + "\n",
		"missing width":    `{"version":2,"height":24}` + "\n",
		"float width":      `{"version":2,"width":80.5,"height":24}` + "\n",
		"zero height":      `{"version":2,"width":80,"height":0}` + "\n",
		"event not array":  header + `{"t":1}` + "\n",
		"two elements":     header + `[1.0,"o"]` + "\n",
		"time not number":  header + `["1","o","x"]` + "\n",
		"negative time":    header + `[-1,"o","x"]` + "\n",
		"time backwards":   header + `[2.0,"o","x"]` + "\n" + `[1.0,"o","y"]` + "\n",
		"unknown code":     header + `[1.0,"z","x"]` + "\n",
		"bad resize":       header + `[1.0,"r","80 by 24"]` + "\n",
		"data not string":  header + `[1.0,"o",5]` + "\n",
		"invalid utf8 raw": header + "[1.0,\"o\",\"\xff\"]\n",
	}
	for name, input := range cases {
		t.Run(name, func(t *testing.T) {
			if _, _, err := Validate(strings.NewReader(input)); err == nil {
				t.Fatalf("Validate accepted %q", input)
			}
		})
	}
}

func TestReaderAcceptsUpstreamExample(t *testing.T) {
	// The example from the asciicast v2 specification.
	input := `{"version": 2, "width": 80, "height": 24, "timestamp": 1504467315, "title": "Demo", "env": {"TERM": "xterm-256color", "SHELL": "/bin/zsh"}}
[0.248848, "o", "\u001b[1;31mHello \u001b[32mWorld!\u001b[0m\n"]
[1.001376, "o", "That was ok\rThis is better."]
[2.143733, "o", " "]
[6.541828, "o", "Bye!"]
`
	h, n, err := Validate(strings.NewReader(input))
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 || h.Title != "Demo" {
		t.Errorf("got %d events and header %+v", n, h)
	}
}

// FuzzWriterSplitsUTF8 feeds arbitrary bytes split at arbitrary points and
// checks that the recording is always valid and, for valid UTF-8 input,
// reproduces the input exactly. The seed corpus runs in every `go test`.
func FuzzWriterSplitsUTF8(f *testing.F) {
	f.Add([]byte("plain ascii"), uint8(1))
	f.Add([]byte("€uro 😀 emoji ü"), uint8(1))
	f.Add([]byte("€uro 😀 emoji ü"), uint8(2))
	f.Add([]byte("€uro 😀 emoji ü"), uint8(3))
	f.Add([]byte{0xf0, 0x9f, 0x98}, uint8(1))
	f.Add([]byte{0xff, 0xfe, 0xe2, 0x82, 0xac, 0xc3}, uint8(2))
	f.Add([]byte("\x1b[0m\r\n\"quoted\" \\ <tag> \u2028"), uint8(5))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		size := int(chunk%8) + 1
		var buf bytes.Buffer
		w, err := NewWriter(&buf, Header{Width: 80, Height: 24}, WriterOptions{Now: fakeClock()})
		if err != nil {
			t.Fatal(err)
		}
		for start := 0; start < len(data); start += size {
			end := min(start+size, len(data))
			if err := w.WriteOutput(data[start:end]); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		_, events := readAll(t, buf.Bytes())
		var got strings.Builder
		for _, ev := range events {
			if !utf8.ValidString(ev.Data) {
				t.Fatalf("event data %q is not valid UTF-8", ev.Data)
			}
			got.WriteString(ev.Data)
		}
		if utf8.Valid(data) && got.String() != string(data) {
			t.Fatalf("got %q, want %q", got.String(), data)
		}
		if want := strings.ToValidUTF8(string(data), "\uFFFD"); !utf8.Valid(data) && countRunes(got.String()) < countRunes(want) {
			t.Fatalf("lost characters: got %q from %q", got.String(), data)
		}
	})
}

func countRunes(s string) int { return utf8.RuneCountInString(s) }

func mustNoErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
