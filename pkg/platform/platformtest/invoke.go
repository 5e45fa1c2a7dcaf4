package platformtest

import (
	"bufio"
	"encoding/json"
	"io"
	"strings"
	"testing"
)

// InvokeLines reads a streamed invocation's answer (application/x-ndjson):
// one JSON object per line, in order. A line that is not JSON fails the test.
func InvokeLines(tb testing.TB, body io.Reader) []map[string]any {
	tb.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			tb.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if err := sc.Err(); err != nil {
		tb.Fatalf("reading the streamed answer: %v", err)
	}
	return lines
}

// StreamedOutput splits a streamed answer into the output its "output"
// lines carry, joined, and its last line (the result or the error). Any
// other line before the last fails the test, as does an empty answer.
func StreamedOutput(tb testing.TB, lines []map[string]any) (output string, last map[string]any) {
	tb.Helper()
	if len(lines) == 0 {
		tb.Fatal("streamed answer has no lines")
	}
	var out strings.Builder
	for _, l := range lines[:len(lines)-1] {
		text, ok := l["output"].(string)
		if l["type"] != "output" || !ok {
			tb.Fatalf("line %v before the last, want only output lines:\n%v", l, lines)
		}
		out.WriteString(text)
	}
	return out.String(), lines[len(lines)-1]
}
