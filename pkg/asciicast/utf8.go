package asciicast

import (
	"strings"
	"unicode/utf8"
)

// utf8Decoder turns a byte stream into valid UTF-8 strings chunk by chunk.
//
// Terminal output arrives in reads of arbitrary size, so a multi-byte
// character is often split between two reads. Encoding each read on its own
// would turn both halves into U+FFFD; instead the decoder holds back an
// incomplete trailing sequence until the next chunk completes it. Bytes that
// can never become valid UTF-8 are replaced with U+FFFD, because asciicast
// requires every event's data to be a valid UTF-8 string.
type utf8Decoder struct {
	pending []byte
}

// decode returns the longest valid prefix of the pending bytes plus p,
// keeping an incomplete trailing sequence for the next call.
func (d *utf8Decoder) decode(p []byte) string {
	data := p
	if len(d.pending) > 0 {
		data = append(d.pending, p...)
		d.pending = nil
	}
	cut := incompleteSuffixStart(data)
	if cut < len(data) {
		d.pending = append([]byte(nil), data[cut:]...)
	}
	return strings.ToValidUTF8(string(data[:cut]), string(utf8.RuneError))
}

// flush returns whatever is still held back, with the incomplete sequence
// replaced by U+FFFD; used when the stream ends.
func (d *utf8Decoder) flush() string {
	if len(d.pending) == 0 {
		return ""
	}
	d.pending = nil
	return string(utf8.RuneError)
}

// incompleteSuffixStart returns the index where a trailing, possibly valid but
// incomplete UTF-8 sequence starts, or len(b) when b does not end in one.
func incompleteSuffixStart(b []byte) int {
	// A UTF-8 sequence is at most utf8.UTFMax bytes long, so only the last
	// UTFMax-1 bytes can belong to an incomplete one.
	for i := len(b) - 1; i >= 0 && i >= len(b)-(utf8.UTFMax-1); i-- {
		if !utf8.RuneStart(b[i]) {
			continue // continuation byte: keep looking for the leading byte
		}
		// FullRune reports false only for a valid prefix that needs more
		// bytes; an invalid sequence counts as "full" and is replaced later.
		if !utf8.FullRune(b[i:]) {
			return i
		}
		break
	}
	return len(b)
}
