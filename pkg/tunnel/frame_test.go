package tunnel

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want error
	}{
		{"heartbeat", `{"v":1,"type":"heartbeat","payload":{"seq":1}}`, nil},
		{"no payload", `{"v":1,"type":"welcome"}`, nil},
		{"null payload", `{"v":1,"type":"welcome","payload":null}`, nil},
		{"unknown type is valid", `{"v":1,"type":"from_the_future","payload":{}}`, nil},
		{"unknown fields are ignored", `{"v":1,"type":"x","later":true}`, nil},
		{"version 2", `{"v":2,"type":"heartbeat"}`, ErrUnsupportedVersion},
		{"no version", `{"type":"heartbeat"}`, ErrUnsupportedVersion},
		{"no type", `{"v":1}`, ErrInvalidFrame},
		{"array payload", `{"v":1,"type":"x","payload":[1]}`, ErrInvalidFrame},
		{"string payload", `{"v":1,"type":"x","payload":"s"}`, ErrInvalidFrame},
		{"negative stream", `{"v":1,"type":"x","stream":-1}`, ErrInvalidFrame},
		{"not json", `hello`, ErrInvalidFrame},
		{"array", `[]`, ErrInvalidFrame},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.in))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode(%s) = %v, want %v", tc.in, err, tc.want)
			}
		})
	}
}

// FuzzDecode checks that no input panics the decoder and that whatever it
// accepts survives an encode/decode round trip unchanged. The seed corpus
// runs in every `go test`; `go test -fuzz=FuzzDecode ./pkg/tunnel` explores.
func FuzzDecode(f *testing.F) {
	seeds := []string{
		`{"v":1,"type":"heartbeat","payload":{"seq":1,"time":"2026-01-01T00:00:00Z"}}`,
		`{"v":1,"type":"snapshot","id":"a","payload":{"generation":3,"objects":[{"kind":"Agent","name":"a","object":{"x":1}}],"final":true}}`,
		`{"v":1,"type":"shell_output","stream":7,"payload":{"grant_id":"g","data":"aGk="}}`,
		`{"v":1,"type":"window_update","stream":4294967295,"payload":{"increment":4294967295}}`,
		`{"v":1,"type":"x","payload":null}`,
		`{"v":1,"type":"x","payload":   {}  }`,
		`{"v":2}`,
		`{"v":1e400,"type":"x"}`,
		`{"v":1,"type":"\u0000","id":"\ud800"}`,
		`{"v":1,"type":"x","payload":{"a":[[[[[[[[[[]]]]]]]]]]}}`,
		"\xff\xfe",
		``,
		`null`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := Decode(b)
		if err != nil {
			return
		}
		enc, err := fr.Encode()
		if err != nil {
			t.Fatalf("accepted frame does not encode: %v", err)
		}
		again, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-decode of %s: %v", enc, err)
		}
		// Payload bytes may differ in whitespace only; compare compacted.
		fr.Payload, again.Payload = compact(t, fr.Payload), compact(t, again.Payload)
		if !reflect.DeepEqual(fr, again) {
			t.Fatalf("round trip changed the frame: %+v != %+v", fr, again)
		}
	})
}

func compact(t *testing.T, b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("payload is not valid JSON: %v", err)
	}
	return buf.Bytes()
}
