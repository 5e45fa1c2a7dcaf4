package fakemodel

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The files in testdata are request bodies the real CLIs sent to this server
// (the versions of hack/agent-clis.txt), with every string cut to 120
// characters to keep them small; their shape is untouched. The first request
// of each scripted a shell command, the second carried its result.
func TestRecordedRequests(t *testing.T) {
	const scripted = "Please write the file\nfakemodel-run: echo %s > out.txt"
	for _, tc := range []struct {
		file  string
		parse func([]byte) (Conversation, error)
		// want
		api         API
		stream      bool
		prompt      string
		toolResults int
		tools       int
		// reply: the tool the reply calls ("" for none) and whether it has text.
		call     string
		callArgs string
		text     bool
		json     bool
	}{
		{file: "claude-code-2.1.332-messages.json", parse: parseAnthropic, api: APIAnthropic, stream: true,
			prompt: "tool-ran", tools: 12, call: "Bash", callArgs: `"command":"echo tool-ran \u003e out.txt"`},
		{file: "claude-code-2.1.332-messages-tool-result.json", parse: parseAnthropic, api: APIAnthropic, stream: true,
			prompt: "tool-ran", toolResults: 1, tools: 12, text: true},
		{file: "codex-0.171.0-responses.json", parse: parseResponses, api: APIResponses, stream: true,
			prompt: "codex-ran", tools: 8, call: "exec_command", callArgs: `"cmd":"echo codex-ran \u003e out.txt"`},
		{file: "codex-0.171.0-responses-tool-result.json", parse: parseResponses, api: APIResponses, stream: true,
			prompt: "codex-ran", toolResults: 1, tools: 8, text: true},
		// OpenCode's first request names the session: no tools, and the prompt.
		{file: "opencode-1.18.33-chat-title.json", parse: parseChat, api: APIChat, stream: true,
			prompt: "oc-ran", text: true},
		{file: "opencode-1.18.33-chat-tool-result.json", parse: parseChat, api: APIChat, stream: true,
			prompt: "oc-ran", toolResults: 1, tools: 10, text: true},
		{file: "gemini-cli-0.61.0-stream.json", parse: geminiParser("fake-model", true), api: APIGemini, stream: true,
			prompt: "gem-ran", tools: 15, call: "run_shell_command", callArgs: `"command":"echo gem-ran \u003e out.txt"`},
		{file: "gemini-cli-0.61.0-stream-tool-result.json", parse: geminiParser("fake-model", true), api: APIGemini, stream: true,
			prompt: "gem-ran", toolResults: 1, tools: 15, text: true},
		// Without --model, Gemini CLI first asks a small model to rate the task, in JSON.
		{file: "gemini-cli-0.61.0-routing.json", parse: geminiParser("gemini-3.5-flash-lite", false), api: APIGemini,
			prompt: "Say hello to the routing test please", json: true},
		// Cline's yolo mode offers submit_and_exit and adds a "[SYSTEM]" user message after the prompt.
		{file: "cline-3.0.65-chat-yolo.json", parse: parseChat, api: APIChat, stream: true,
			prompt: "cline-ran", tools: 4, call: "run_commands", callArgs: `"commands":["echo cline-ran \u003e out.txt"]`},
		{file: "cline-3.0.65-chat-yolo-tool-result.json", parse: parseChat, api: APIChat, stream: true,
			prompt: "cline-ran", toolResults: 1, tools: 4, text: true, call: "submit_and_exit", callArgs: `"verified":false`},
	} {
		t.Run(tc.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			c, err := tc.parse(body)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			prompt := tc.prompt
			if !strings.Contains(prompt, " ") {
				prompt = strings.Replace(scripted, "%s", prompt, 1)
			}
			if c.API != tc.api || c.Stream != tc.stream || c.Prompt != prompt || c.ToolResults != tc.toolResults || len(c.Tools) != tc.tools {
				t.Errorf("conversation: api %s stream %v prompt %q toolResults %d tools %d;\nwant api %s stream %v prompt %q toolResults %d tools %d",
					c.API, c.Stream, c.Prompt, c.ToolResults, len(c.Tools), tc.api, tc.stream, prompt, tc.toolResults, tc.tools)
			}
			if (len(c.ResponseSchema) > 0) != tc.json {
				t.Errorf("JSON output asked: %v, want %v", len(c.ResponseSchema) > 0, tc.json)
			}
			r := decide(c, DefaultFinishTools, DefaultShellTools, "call_1")
			if tc.json {
				var v struct {
					Reasoning string `json:"complexity_reasoning"`
					Score     *int   `json:"complexity_score"`
				}
				if err := json.Unmarshal([]byte(r.Text), &v); err != nil || v.Reasoning == "" || v.Score == nil {
					t.Errorf("JSON reply %q does not fill the routing schema (%v)", r.Text, err)
				}
				return
			}
			if got := r.Text != ""; got != tc.text {
				t.Errorf("reply text %q, want text: %v", r.Text, tc.text)
			}
			if tc.text && r.Text != ReplyText(prompt) {
				t.Errorf("reply text %q, want ReplyText(prompt) = %q", r.Text, ReplyText(prompt))
			}
			var calls []string
			for _, call := range r.Calls {
				calls = append(calls, call.Name)
			}
			if tc.call == "" && len(calls) > 0 || tc.call != "" && !slices.Equal(calls, []string{tc.call}) {
				t.Fatalf("reply calls %v, want [%s]", calls, tc.call)
			}
			if tc.call != "" && !strings.Contains(string(r.Calls[0].Args), tc.callArgs) {
				t.Errorf("call arguments %s, want them to hold %s", r.Calls[0].Args, tc.callArgs)
			}
		})
	}
}

func geminiParser(model string, stream bool) func([]byte) (Conversation, error) {
	return func(b []byte) (Conversation, error) { return parseGemini(b, model, stream) }
}
