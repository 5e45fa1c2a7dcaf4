package fakemodel

import (
	"encoding/json"
	"fmt"
	"strings"
)

// API is a model API the server speaks.
type API string

const (
	APIAnthropic API = "anthropic-messages"
	APIResponses API = "openai-responses"
	APIChat      API = "openai-chat-completions"
	APIGemini    API = "gemini"
)

// Conversation is what the server reads out of a request, whichever API it
// came in: enough to decide a deterministic reply.
type Conversation struct {
	API    API
	Model  string
	Stream bool
	// Prompt is the text of the last user message that carries text, without
	// the blocks the CLIs add around the user's words (see userText).
	Prompt string
	// Tools are the tools the request offers, with their parameter schemas.
	Tools []Tool
	// ToolResults counts the tool results in the conversation: how many
	// tool calls the agent has already executed.
	ToolResults int
	// ResponseSchema is set when the request asks for JSON output of that
	// schema (Gemini's structured output, which its CLI uses to route and to
	// decide who speaks next).
	ResponseSchema json.RawMessage
	// IncludeUsage: a Chat Completions stream asked for a usage chunk.
	IncludeUsage bool
}

// Tool is a tool a request offers.
type Tool struct {
	Name   string          `json:"name"`
	Schema json.RawMessage `json:"-"`
}

// userText joins the text parts of a user message that are the user's own
// words. The CLIs put their context into the same message as parts of its
// own, and those are skipped: parts that start with "<" (Claude Code's
// <system-reminder>, Codex's <environment_context>) and parts that start
// with "[SYSTEM]" (Cline's notes to the model).
func userText(parts []string) string {
	var kept []string
	for _, p := range parts {
		t := strings.TrimSpace(p)
		if t == "" || strings.HasPrefix(t, "<") || strings.HasPrefix(t, "[SYSTEM]") {
			continue
		}
		kept = append(kept, t)
	}
	return strings.Join(kept, "\n")
}

// textOrParts decodes a content field that is either a string or an array
// of typed parts, returning the texts of the parts whose type is one of
// textTypes and how many parts have one of resultTypes.
func textOrParts(raw json.RawMessage, textTypes, resultTypes []string) (texts []string, results int, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, 0, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []string{s}, 0, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, 0, fmt.Errorf("content is neither a string nor an array of parts: %w", err)
	}
	for _, p := range parts {
		switch {
		case contains(textTypes, p.Type):
			texts = append(texts, p.Text)
		case contains(resultTypes, p.Type):
			results++
		}
	}
	return texts, results, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// parseAnthropic reads a Messages API request.
func parseAnthropic(body []byte) (Conversation, error) {
	var req struct {
		Model    string `json:"model"`
		Stream   bool   `json:"stream"`
		Messages []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
		Tools []struct {
			Name        string          `json:"name"`
			InputSchema json.RawMessage `json:"input_schema"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return Conversation{}, err
	}
	c := Conversation{API: APIAnthropic, Model: req.Model, Stream: req.Stream}
	for _, t := range req.Tools {
		c.Tools = append(c.Tools, Tool{Name: t.Name, Schema: t.InputSchema})
	}
	for _, m := range req.Messages {
		if m.Role != "user" {
			continue // assistant turns, and the role:"system" entry Claude Code appends
		}
		texts, results, err := textOrParts(m.Content, []string{"text"}, []string{"tool_result"})
		if err != nil {
			return Conversation{}, err
		}
		c.ToolResults += results
		if t := userText(texts); t != "" {
			c.Prompt = t
		}
	}
	return c, nil
}

// parseChat reads a Chat Completions request.
func parseChat(body []byte) (Conversation, error) {
	var req struct {
		Model         string `json:"model"`
		Stream        bool   `json:"stream"`
		StreamOptions struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
		Messages []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
		Tools []struct {
			Function struct {
				Name       string          `json:"name"`
				Parameters json.RawMessage `json:"parameters"`
			} `json:"function"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return Conversation{}, err
	}
	c := Conversation{API: APIChat, Model: req.Model, Stream: req.Stream, IncludeUsage: req.StreamOptions.IncludeUsage}
	for _, t := range req.Tools {
		c.Tools = append(c.Tools, Tool{Name: t.Function.Name, Schema: t.Function.Parameters})
	}
	for _, m := range req.Messages {
		switch m.Role {
		case "tool":
			c.ToolResults++
		case "user":
			texts, _, err := textOrParts(m.Content, []string{"text"}, nil)
			if err != nil {
				return Conversation{}, err
			}
			if t := userText(texts); t != "" {
				c.Prompt = t
			}
		}
	}
	return c, nil
}

// parseResponses reads a Responses API request.
func parseResponses(body []byte) (Conversation, error) {
	var req struct {
		Model  string          `json:"model"`
		Stream bool            `json:"stream"`
		Input  json.RawMessage `json:"input"`
		Tools  []struct {
			Type       string          `json:"type"`
			Name       string          `json:"name"`
			Parameters json.RawMessage `json:"parameters"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return Conversation{}, err
	}
	c := Conversation{API: APIResponses, Model: req.Model, Stream: req.Stream}
	for _, t := range req.Tools {
		if t.Name != "" { // built-in tools such as web_search have no name
			c.Tools = append(c.Tools, Tool{Name: t.Name, Schema: t.Parameters})
		}
	}
	var s string
	if json.Unmarshal(req.Input, &s) == nil {
		c.Prompt = userText([]string{s})
		return c, nil
	}
	var items []struct {
		Type    string          `json:"type"`
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(req.Input, &items); err != nil {
		return Conversation{}, fmt.Errorf("input: %w", err)
	}
	for _, it := range items {
		switch {
		case strings.HasSuffix(it.Type, "_call_output"): // function_call_output, custom_tool_call_output
			c.ToolResults++
		case it.Role == "user":
			texts, _, err := textOrParts(it.Content, []string{"input_text"}, nil)
			if err != nil {
				return Conversation{}, err
			}
			if t := userText(texts); t != "" {
				c.Prompt = t
			}
		}
	}
	return c, nil
}

// parseGemini reads a generateContent or streamGenerateContent request; the
// model and streaming come from the URL.
func parseGemini(body []byte, model string, stream bool) (Conversation, error) {
	var req struct {
		Contents []struct {
			Role  string `json:"role"`
			Parts []struct {
				Text             *string         `json:"text"`
				FunctionResponse json.RawMessage `json:"functionResponse"`
			} `json:"parts"`
		} `json:"contents"`
		Tools []struct {
			FunctionDeclarations []struct {
				Name                 string          `json:"name"`
				Parameters           json.RawMessage `json:"parameters"`
				ParametersJSONSchema json.RawMessage `json:"parametersJsonSchema"`
			} `json:"functionDeclarations"`
		} `json:"tools"`
		GenerationConfig struct {
			ResponseMimeType   string          `json:"responseMimeType"`
			ResponseSchema     json.RawMessage `json:"responseSchema"`
			ResponseJSONSchema json.RawMessage `json:"responseJsonSchema"`
		} `json:"generationConfig"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return Conversation{}, err
	}
	c := Conversation{API: APIGemini, Model: model, Stream: stream}
	for _, t := range req.Tools {
		for _, f := range t.FunctionDeclarations {
			schema := f.ParametersJSONSchema
			if len(schema) == 0 {
				schema = f.Parameters
			}
			c.Tools = append(c.Tools, Tool{Name: f.Name, Schema: schema})
		}
	}
	for _, m := range req.Contents {
		if m.Role != "user" && m.Role != "" {
			continue
		}
		var texts []string
		for _, p := range m.Parts {
			if len(p.FunctionResponse) > 0 {
				c.ToolResults++
			}
			if p.Text != nil {
				texts = append(texts, *p.Text)
			}
		}
		if t := userText(texts); t != "" {
			c.Prompt = t
		}
	}
	gc := req.GenerationConfig
	switch {
	case len(gc.ResponseJSONSchema) > 0:
		c.ResponseSchema = gc.ResponseJSONSchema
	case len(gc.ResponseSchema) > 0:
		c.ResponseSchema = gc.ResponseSchema
	case gc.ResponseMimeType == "application/json":
		c.ResponseSchema = json.RawMessage(`{"type":"object"}`)
	}
	return c, nil
}
