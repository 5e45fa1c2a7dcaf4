package fakemodel

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// Requests in each API's shape, as small as the API allows, offering a
// shell tool and a finish tool.
var minimal = map[API]struct {
	path string
	body string
}{
	APIAnthropic: {"/v1/messages?beta=true", `{"model":"m","stream":%v,"messages":[{"role":"user","content":[{"type":"text","text":"<system-reminder>x</system-reminder>"},{"type":"text","text":%q}]}],
		"tools":[{"name":"Bash","input_schema":{"type":"object","properties":{"command":{"type":"string"},"timeout":{"type":"number"}},"required":["command"]}}]}`},
	APIResponses: {"/v1/responses", `{"model":"m","stream":%v,"input":[{"type":"message","role":"developer","content":[{"type":"input_text","text":"be good"}]},{"type":"message","role":"user","content":[{"type":"input_text","text":%q}]}],
		"tools":[{"type":"function","name":"exec_command","parameters":{"type":"object","properties":{"cmd":{"type":"string"}},"required":["cmd"]}},{"type":"web_search"}]}`},
	APIChat: {"/v1/chat/completions", `{"model":"m","stream":%v,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":"s"},{"role":"user","content":%q}],
		"tools":[{"type":"function","function":{"name":"run_commands","parameters":{"type":"object","properties":{"commands":{"type":"array","items":{"type":"string"}}},"required":["commands"]}}},
		{"type":"function","function":{"name":"submit_and_exit","parameters":{"type":"object","properties":{"summary":{"type":"string"},"verified":{"type":"boolean"}},"required":["summary","verified"]}}}]}`},
	APIGemini: {"/v1beta/models/gemini-x:%s", `{"contents":[{"role":"user","parts":[{"text":%q}]}],
		"tools":[{"functionDeclarations":[{"name":"run_shell_command","parametersJsonSchema":{"type":"object","properties":{"command":{"type":"string"}},"required":["command"]}}]}]}`},
}

func post(t *testing.T, srv *httptest.Server, api API, stream bool, prompt string) *http.Response {
	t.Helper()
	m := minimal[api]
	path, body := m.path, ""
	if api == APIGemini {
		method := "generateContent"
		if stream {
			method = "streamGenerateContent"
		}
		path = fmt.Sprintf(path, method)
		if stream {
			path += "?alt=sse"
		}
		body = fmt.Sprintf(m.body, prompt)
	} else {
		body = fmt.Sprintf(m.body, stream, prompt)
	}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer k")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// sse reads a stream of server-sent events into (name, data) pairs.
func sse(r io.Reader) ([][2]string, error) {
	var out [][2]string
	var name string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			out = append(out, [2]string{name, strings.TrimPrefix(line, "data: ")})
			name = ""
		}
	}
	return out, sc.Err()
}

// assembled is what a client makes of a reply: its text and its tool calls
// ("name args").
type assembled struct {
	text  string
	calls []string
	// done: the stream ended the way the API ends one.
	done bool
}

// assemble follows each API's streaming protocol as its clients do.
func assemble(t *testing.T, api API, events [][2]string) assembled {
	t.Helper()
	var a assembled
	args := map[int]string{}
	names := map[int]string{}
	for _, e := range events {
		if e[1] == "[DONE]" {
			a.done = true
			continue
		}
		var d struct {
			Type  string `json:"type"`
			Index int    `json:"index"`
			// Delta is an object in Anthropic's events, a string in the Responses API's.
			Delta        json.RawMessage `json:"delta"`
			ContentBlock struct {
				Type string `json:"type"`
				Name string `json:"name"`
			} `json:"content_block"`
			Item struct {
				Type      string `json:"type"`
				Name      string `json:"name"`
				Arguments string `json:"arguments"`
			} `json:"item"`
			Choices []struct {
				Delta struct {
					Content   string `json:"content"`
					ToolCalls []struct {
						Index    int `json:"index"`
						Function struct {
							Name      string `json:"name"`
							Arguments string `json:"arguments"`
						} `json:"function"`
					} `json:"tool_calls"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Candidates []struct {
				Content struct {
					Parts []struct {
						Text         string `json:"text"`
						FunctionCall *struct {
							Name string          `json:"name"`
							Args json.RawMessage `json:"args"`
						} `json:"functionCall"`
					} `json:"parts"`
				} `json:"content"`
				FinishReason string `json:"finishReason"`
			} `json:"candidates"`
		}
		if err := json.Unmarshal([]byte(e[1]), &d); err != nil {
			t.Fatalf("event %s: %v: %s", e[0], err, e[1])
		}
		if api == APIAnthropic || api == APIResponses {
			if d.Type != e[0] {
				t.Errorf("event named %q carries type %q", e[0], d.Type)
			}
		}
		switch api {
		case APIAnthropic:
			switch e[0] {
			case "content_block_start":
				names[d.Index] = d.ContentBlock.Name
			case "content_block_delta":
				var delta struct {
					Text        string `json:"text"`
					PartialJSON string `json:"partial_json"`
				}
				_ = json.Unmarshal(d.Delta, &delta)
				a.text += delta.Text
				args[d.Index] += delta.PartialJSON
			case "message_stop":
				a.done = true
			}
		case APIResponses:
			switch e[0] {
			case "response.output_text.delta":
				var delta string
				_ = json.Unmarshal(d.Delta, &delta)
				a.text += delta
			case "response.output_item.done":
				if d.Item.Type == "function_call" {
					a.calls = append(a.calls, d.Item.Name+" "+d.Item.Arguments)
				}
			case "response.completed":
				a.done = true
			}
		case APIChat:
			for _, c := range d.Choices {
				a.text += c.Delta.Content
				for _, tc := range c.Delta.ToolCalls {
					if tc.Function.Name != "" {
						names[tc.Index] = tc.Function.Name
					}
					args[tc.Index] += tc.Function.Arguments
				}
			}
		case APIGemini:
			for _, c := range d.Candidates {
				for _, p := range c.Content.Parts {
					a.text += p.Text
					if p.FunctionCall != nil {
						a.calls = append(a.calls, p.FunctionCall.Name+" "+string(p.FunctionCall.Args))
					}
				}
				a.done = a.done || c.FinishReason == "STOP"
			}
		}
	}
	for i := 0; i < len(names); i++ {
		if names[i] != "" {
			a.calls = append(a.calls, names[i]+" "+args[i])
		}
	}
	return a
}

func TestStreamedReplies(t *testing.T) {
	srv := httptest.NewServer(New(Options{}))
	defer srv.Close()
	const prompt = "Say hello to the stream test, a prompt long enough to need several deltas"
	for _, tc := range []struct {
		api        API
		scriptCall string // the call a ShellDirective prompt gets
		textCall   string // the call a plain prompt gets besides its text
	}{
		{APIAnthropic, `Bash {"command":"touch x"}`, ""},
		{APIResponses, `exec_command {"cmd":"touch x"}`, ""},
		{APIChat, `run_commands {"commands":["touch x"]}`,
			`submit_and_exit {"summary":"` + ReplyText(prompt) + `","verified":false}`},
		{APIGemini, `run_shell_command {"command":"touch x"}`, ""},
	} {
		t.Run(string(tc.api), func(t *testing.T) {
			resp := post(t, srv, tc.api, true, prompt)
			if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
				t.Fatalf("status %d, content type %q", resp.StatusCode, ct)
			}
			events, err := sse(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			a := assemble(t, tc.api, events)
			if a.text != ReplyText(prompt) || !a.done {
				t.Errorf("streamed text %q (complete: %v), want %q", a.text, a.done, ReplyText(prompt))
			}
			if tc.textCall == "" && len(a.calls) > 0 || tc.textCall != "" && !slices.Equal(a.calls, []string{tc.textCall}) {
				t.Errorf("calls %q, want %q", a.calls, tc.textCall)
			}
			resp = post(t, srv, tc.api, true, "do it\n"+ShellDirective+" touch x")
			events, err = sse(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if a := assemble(t, tc.api, events); a.text != "" || !slices.Equal(a.calls, []string{tc.scriptCall}) || !a.done {
				t.Errorf("scripted: text %q calls %q complete %v, want only the call %q", a.text, a.calls, a.done, tc.scriptCall)
			}
		})
	}
}

func TestUnstreamedReplies(t *testing.T) {
	srv := httptest.NewServer(New(Options{}))
	defer srv.Close()
	const prompt = "Say hello without streaming"
	want := ReplyText(prompt)
	for api, path := range map[API]string{
		APIAnthropic: "content.0.text",
		APIResponses: "output.0.content.0.text",
		APIChat:      "choices.0.message.content",
		APIGemini:    "candidates.0.content.parts.0.text",
	} {
		t.Run(string(api), func(t *testing.T) {
			resp := post(t, srv, api, false, prompt)
			var v any
			if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %v", resp.StatusCode, err)
			}
			for _, key := range strings.Split(path, ".") {
				switch x := v.(type) {
				case map[string]any:
					v = x[key]
				case []any:
					var i int
					fmt.Sscan(key, &i)
					if i < len(x) {
						v = x[i]
					}
				}
			}
			if v != want {
				t.Errorf("%s = %v, want %q", path, v, want)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	s := New(Options{})
	srv := httptest.NewServer(s)
	defer srv.Close()

	t.Run("rate limit", func(t *testing.T) {
		s.Inject(Fault{Kind: FaultRateLimit, Duration: 1500 * time.Millisecond})
		resp := post(t, srv, APIAnthropic, true, "hello there")
		var body struct {
			Error struct{ Type string } `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" || body.Error.Type != "rate_limit_error" {
			t.Errorf("status %d, Retry-After %q, error type %q; want 429, 2, rate_limit_error",
				resp.StatusCode, resp.Header.Get("Retry-After"), body.Error.Type)
		}
		// One request took it: the next is answered.
		if resp := post(t, srv, APIAnthropic, false, "hello there"); resp.StatusCode != http.StatusOK {
			t.Errorf("the request after the fault: status %d", resp.StatusCode)
		}
	})
	t.Run("server error", func(t *testing.T) {
		s.Inject(Fault{Kind: FaultServerError})
		if resp := post(t, srv, APIGemini, true, "hello there"); resp.StatusCode != http.StatusInternalServerError {
			t.Errorf("status %d, want 500", resp.StatusCode)
		}
	})
	t.Run("connection cut mid-stream", func(t *testing.T) {
		s.Inject(Fault{Kind: FaultCutStream})
		resp := post(t, srv, APIResponses, true, "hello there")
		data, err := io.ReadAll(resp.Body)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("reading the cut stream: %v, want unexpected EOF", err)
		}
		if !strings.Contains(string(data), "response.created") || strings.Contains(string(data), "response.completed") {
			t.Errorf("the cut stream should hold its start and not its end: %s", data)
		}
	})
	t.Run("slow first token", func(t *testing.T) {
		const delay = 300 * time.Millisecond
		s.Inject(Fault{Kind: FaultSlowFirstToken, Duration: delay})
		start := time.Now()
		resp := post(t, srv, APIChat, true, "hello there")
		headers := time.Since(start)
		if _, err := resp.Body.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		first := time.Since(start)
		if headers >= delay || first < delay {
			t.Errorf("headers after %s, first byte after %s; want headers at once and the first byte after %s", headers, first, delay)
		}
		// The server logs a request when it has answered it all; the chunked
		// body's end comes after that.
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatal(err)
		}
	})
	log := s.Requests()
	var faults []FaultKind
	for _, r := range log {
		faults = append(faults, r.Fault)
	}
	want := []FaultKind{FaultRateLimit, "", FaultServerError, FaultCutStream, FaultSlowFirstToken}
	if !slices.Equal(faults, want) {
		t.Errorf("logged faults %v, want %v", faults, want)
	}
	if log[0].Status != http.StatusTooManyRequests || log[2].Status != http.StatusInternalServerError {
		t.Errorf("logged statuses %d and %d, want 429 and 500", log[0].Status, log[2].Status)
	}
}

func TestParseFault(t *testing.T) {
	for spec, want := range map[string]Fault{
		"rate-limit":            {Kind: FaultRateLimit, Duration: time.Second},
		"rate-limit:3s":         {Kind: FaultRateLimit, Duration: 3 * time.Second},
		"server-error":          {Kind: FaultServerError},
		"cut-stream":            {Kind: FaultCutStream},
		"slow-first-token:2.5s": {Kind: FaultSlowFirstToken, Duration: 2500 * time.Millisecond},
	} {
		if got, err := ParseFault(spec); err != nil || got != want {
			t.Errorf("ParseFault(%q) = %+v, %v; want %+v", spec, got, err, want)
		}
	}
	for _, bad := range []string{"", "teapot", "slow-first-token", "server-error:1s", "rate-limit:soon", "rate-limit:-1s"} {
		if _, err := ParseFault(bad); err == nil {
			t.Errorf("ParseFault(%q) accepted", bad)
		}
	}
}

// The log and the fault queue are served for tests that run the server as a
// process; every request is logged, those it does not serve included.
func TestControlEndpointsAndLog(t *testing.T) {
	srv := httptest.NewServer(New(Options{}))
	defer srv.Close()
	do := func(method, path, body string, header ...string) *http.Response {
		req, _ := http.NewRequestWithContext(context.Background(), method, srv.URL+path, strings.NewReader(body))
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	if resp := do(http.MethodPost, ControlPrefix+"/faults", `{"faults":["server-error"]}`); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("queueing a fault: %d", resp.StatusCode)
	}
	if resp := do(http.MethodPost, ControlPrefix+"/faults", `{"faults":["teapot"]}`); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("queueing an unknown fault: %d, want 400", resp.StatusCode)
	}
	chat := `{"model":"m","messages":[{"role":"user","content":"hi there"}]}`
	if resp := do(http.MethodPost, "/v1/chat/completions", chat, "Authorization", "Bearer k"); resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("the queued fault was not applied: %d", resp.StatusCode)
	}
	do(http.MethodPost, "/v1beta/models/g:generateContent", `{"contents":[{"parts":[{"text":"hi there"}]}]}`, "X-Goog-Api-Key", "k")
	do(http.MethodHead, "/api/hello", "")

	var log []Request
	if err := json.NewDecoder(do(http.MethodGet, ControlPrefix+"/requests", "").Body).Decode(&log); err != nil {
		t.Fatal(err)
	}
	got := make([]string, 0, len(log))
	for _, r := range log {
		got = append(got, fmt.Sprintf("%s %s %s %s %d %s", r.Method, r.Path, r.API, r.Auth, r.Status, r.Prompt))
	}
	want := []string{
		"POST /v1/chat/completions openai-chat-completions authorization 500 hi there",
		"POST /v1beta/models/g:generateContent gemini x-goog-api-key 200 hi there",
		"HEAD /api/hello   404 ",
	}
	if !slices.Equal(got, want) {
		t.Errorf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	do(http.MethodDelete, ControlPrefix+"/requests", "")
	if err := json.NewDecoder(do(http.MethodGet, ControlPrefix+"/requests", "").Body).Decode(&log); err != nil || len(log) != 0 {
		t.Errorf("after DELETE the log holds %d requests (%v)", len(log), err)
	}
}

func TestReplyText(t *testing.T) {
	a, b := ReplyText("Say  hello\nworld"), ReplyText("Say hello world")
	if !strings.HasPrefix(a, ReplyPrefix+" ") || !strings.HasSuffix(a, ": Say hello world") {
		t.Errorf("ReplyText = %q", a)
	}
	if a == b {
		t.Errorf("prompts that differ in whitespace got the same digest: %q", a)
	}
	if ReplyText(" x ") != ReplyText("x") {
		t.Errorf("surrounding space changes the reply")
	}
	if cmd, ok := ShellCommand("first line\n  " + ShellDirective + "  echo a > b  \nlast"); !ok || cmd != "echo a > b" {
		t.Errorf("ShellCommand = %q, %v", cmd, ok)
	}
	if _, ok := ShellCommand("mentions " + ShellDirective + " mid-line"); ok {
		t.Errorf("a directive in the middle of a line counted")
	}
}
