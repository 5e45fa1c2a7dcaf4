package fakemodel

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// ReplyPrefix starts every text reply.
const ReplyPrefix = "FAKE-MODEL-REPLY"

// ShellDirective, on a line of the prompt, scripts a tool call: the rest of
// the line is a shell command the model asks the agent to run with its shell
// tool (Bash, exec_command, bash, run_shell_command, run_commands…) before it
// answers. "fakemodel-run: echo done > out.txt" makes the agent write
// out.txt in its working directory.
const ShellDirective = "fakemodel-run:"

var directive = regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(ShellDirective) + `[ \t]*(\S.*?)\s*$`)

// ReplyText is the model's deterministic answer to a prompt: the prefix, the
// first 8 hex digits of the prompt's SHA-256 (so that a test can tell the
// model's answer from an echo of the prompt), and the prompt's first 40
// characters on one line.
func ReplyText(prompt string) string {
	prompt = strings.TrimSpace(prompt)
	sum := sha256.Sum256([]byte(prompt))
	excerpt := []rune(strings.Join(strings.Fields(prompt), " "))
	if len(excerpt) > 40 {
		excerpt = excerpt[:40]
	}
	return fmt.Sprintf("%s %x: %s", ReplyPrefix, sum[:4], string(excerpt))
}

// ShellCommand returns the command a prompt scripts with ShellDirective.
func ShellCommand(prompt string) (string, bool) {
	m := directive.FindStringSubmatch(prompt)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// Reply is what the model answers one request with.
type Reply struct {
	Text  string
	Calls []Call
}

// Call is a tool call in a reply.
type Call struct {
	ID   string
	Name string
	// Args is a JSON object.
	Args json.RawMessage
}

// DefaultFinishTools are the tools that end an agent's run when called:
// Cline's yolo mode loops until the model calls submit_and_exit, and its act
// mode (like Roo and Kilo) offers attempt_completion.
var DefaultFinishTools = []string{"submit_and_exit", "attempt_completion"}

// DefaultShellTools are the shell tools of the CLIs, in the order they are
// looked for: Claude Code's Bash, Codex's exec_command and shell, OpenCode's
// bash, Gemini CLI's run_shell_command, Cline's run_commands and
// execute_command.
var DefaultShellTools = []string{"Bash", "exec_command", "shell", "bash", "run_shell_command", "run_commands", "execute_command"}

// decide answers a conversation, deterministically:
//  1. a request for JSON output gets a value of its schema;
//  2. a prompt with ShellDirective gets a call of the first shell tool the
//     request offers, until the conversation holds a tool result;
//  3. anything else gets ReplyText(prompt), plus a call of a finish tool
//     when the request offers one, with the text in its string arguments.
func decide(c Conversation, finishTools, shellTools []string, callID string) Reply {
	if len(c.ResponseSchema) > 0 {
		v := valueOf(c.ResponseSchema, func(string) string { return ReplyText(c.Prompt) })
		b, _ := json.Marshal(v) // built from decoded JSON: always marshals
		return Reply{Text: string(b)}
	}
	if cmd, ok := ShellCommand(c.Prompt); ok && c.ToolResults == 0 {
		if tool, ok := offered(c.Tools, shellTools); ok {
			args := valueOf(tool.Schema, func(name string) string {
				if isCommandField(name) {
					return cmd
				}
				return "run the command the user asked for"
			})
			return Reply{Calls: []Call{{ID: callID, Name: tool.Name, Args: marshalObject(args)}}}
		}
	}
	text := ReplyText(c.Prompt)
	r := Reply{Text: text}
	if tool, ok := offered(c.Tools, finishTools); ok {
		args := valueOf(tool.Schema, func(string) string { return text })
		r.Calls = []Call{{ID: callID, Name: tool.Name, Args: marshalObject(args)}}
	}
	return r
}

func offered(tools []Tool, wanted []string) (Tool, bool) {
	for _, name := range wanted {
		for _, t := range tools {
			if t.Name == name {
				return t, true
			}
		}
	}
	return Tool{}, false
}

func isCommandField(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "command") || n == "cmd"
}

func marshalObject(v any) json.RawMessage {
	if _, ok := v.(map[string]any); !ok {
		v = map[string]any{}
	}
	b, _ := json.Marshal(v) // built from decoded JSON: always marshals
	return b
}

// schemaNode is the part of a JSON schema (or of Gemini's OpenAPI subset,
// whose type names are upper case) that valueOf reads.
type schemaNode struct {
	Type       json.RawMessage       `json:"type"`
	Properties map[string]schemaNode `json:"properties"`
	Required   []string              `json:"required"`
	Items      *schemaNode           `json:"items"`
	Enum       []any                 `json:"enum"`
	Minimum    *float64              `json:"minimum"`
	MinItems   int                   `json:"minItems"`
	AnyOf      []schemaNode          `json:"anyOf"`
}

// typeName is the node's type in lower case; for a list of types the first
// that is not null.
func (n schemaNode) typeName() string {
	var one string
	if json.Unmarshal(n.Type, &one) == nil {
		return strings.ToLower(one)
	}
	var many []string
	if json.Unmarshal(n.Type, &many) == nil {
		for _, t := range many {
			if t != "null" {
				return strings.ToLower(t)
			}
		}
	}
	if len(n.AnyOf) > 0 {
		return n.AnyOf[0].typeName()
	}
	if len(n.Properties) > 0 {
		return "object"
	}
	return ""
}

// valueOf builds a value that satisfies schema, filling only required
// properties; text gives the value of a string property by name.
func valueOf(schema json.RawMessage, text func(name string) string) any {
	var n schemaNode
	if err := json.Unmarshal(schema, &n); err != nil {
		return map[string]any{}
	}
	return n.value("", text)
}

func (n schemaNode) value(name string, text func(string) string) any {
	if len(n.Enum) > 0 {
		// "user" ends Gemini CLI's next-speaker check; otherwise the first value.
		for _, e := range n.Enum {
			if e == "user" {
				return e
			}
		}
		return n.Enum[0]
	}
	if len(n.AnyOf) > 0 && len(n.Type) == 0 {
		return n.AnyOf[0].value(name, text)
	}
	switch n.typeName() {
	case "object":
		obj := map[string]any{}
		for _, req := range n.Required {
			if p, ok := n.Properties[req]; ok {
				obj[req] = p.value(req, text)
			}
		}
		return obj
	case "array":
		if n.Items == nil {
			return []any{}
		}
		if isCommandField(name) || n.MinItems > 0 {
			return []any{n.Items.value(name, text)}
		}
		return []any{}
	case "string":
		return text(name)
	case "integer", "number":
		if n.Minimum != nil {
			return *n.Minimum
		}
		return 1
	case "boolean":
		return false
	default:
		return text(name)
	}
}
