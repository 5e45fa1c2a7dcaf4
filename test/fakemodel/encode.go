package fakemodel

import (
	"encoding/json"
	"time"
)

// event is one server-sent event of a streamed reply.
type event struct {
	// name is the SSE event name; empty for the data-only streams of Chat
	// Completions and Gemini.
	name string
	// data is marshalled to JSON; a string is written as it is ("[DONE]").
	data any
}

// meta is what every encoding of a reply carries besides the reply.
type meta struct {
	id           string
	model        string
	created      time.Time
	inputTokens  int
	outputTokens int
	// includeUsage: Chat Completions' stream_options.include_usage.
	includeUsage bool
}

type obj = map[string]any

// chunks splits text into pieces of a few characters, so a stream has
// several deltas as a real model's has.
func chunks(text string) []string {
	const size = 16
	var out []string
	r := []rune(text)
	for len(r) > size {
		out = append(out, string(r[:size]))
		r = r[size:]
	}
	if len(r) > 0 {
		out = append(out, string(r))
	}
	return out
}

func argsObject(c Call) any {
	var v any = obj{}
	_ = json.Unmarshal(c.Args, &v) // Args is built by marshalObject: always an object
	return v
}

// Anthropic Messages.

func anthropicStop(r Reply) string {
	if len(r.Calls) > 0 {
		return "tool_use"
	}
	return "end_turn"
}

func anthropicUsage(m meta) obj {
	return obj{"input_tokens": m.inputTokens, "output_tokens": m.outputTokens,
		"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
}

func anthropicContent(r Reply) []any {
	content := []any{}
	if r.Text != "" {
		content = append(content, obj{"type": "text", "text": r.Text})
	}
	for _, c := range r.Calls {
		content = append(content, obj{"type": "tool_use", "id": c.ID, "name": c.Name, "input": argsObject(c)})
	}
	return content
}

func anthropicMessage(r Reply, m meta) obj {
	return obj{"id": m.id, "type": "message", "role": "assistant", "model": m.model,
		"content": anthropicContent(r), "stop_reason": anthropicStop(r), "stop_sequence": nil, "usage": anthropicUsage(m)}
}

func anthropicEvents(r Reply, m meta) []event {
	start := obj{"id": m.id, "type": "message", "role": "assistant", "model": m.model, "content": []any{},
		"stop_reason": nil, "stop_sequence": nil, "usage": obj{"input_tokens": m.inputTokens, "output_tokens": 1}}
	ev := []event{{"message_start", obj{"type": "message_start", "message": start}}}
	index := 0
	block := func(startBlock obj, deltas []obj) {
		ev = append(ev, event{"content_block_start", obj{"type": "content_block_start", "index": index, "content_block": startBlock}})
		if index == 0 {
			ev = append(ev, event{"ping", obj{"type": "ping"}})
		}
		for _, d := range deltas {
			ev = append(ev, event{"content_block_delta", obj{"type": "content_block_delta", "index": index, "delta": d}})
		}
		ev = append(ev, event{"content_block_stop", obj{"type": "content_block_stop", "index": index}})
		index++
	}
	if r.Text != "" {
		var deltas []obj
		for _, c := range chunks(r.Text) {
			deltas = append(deltas, obj{"type": "text_delta", "text": c})
		}
		block(obj{"type": "text", "text": ""}, deltas)
	}
	for _, c := range r.Calls {
		block(obj{"type": "tool_use", "id": c.ID, "name": c.Name, "input": obj{}},
			[]obj{{"type": "input_json_delta", "partial_json": string(c.Args)}})
	}
	return append(ev,
		event{"message_delta", obj{"type": "message_delta",
			"delta": obj{"stop_reason": anthropicStop(r), "stop_sequence": nil}, "usage": obj{"output_tokens": m.outputTokens}}},
		event{"message_stop", obj{"type": "message_stop"}})
}

// OpenAI Chat Completions.

func chatFinish(r Reply) string {
	if len(r.Calls) > 0 {
		return "tool_calls"
	}
	return "stop"
}

func chatUsage(m meta) obj {
	return obj{"prompt_tokens": m.inputTokens, "completion_tokens": m.outputTokens, "total_tokens": m.inputTokens + m.outputTokens}
}

func chatCompletion(r Reply, m meta) obj {
	msg := obj{"role": "assistant", "content": nil}
	if r.Text != "" {
		msg["content"] = r.Text
	}
	if len(r.Calls) > 0 {
		var calls []any
		for _, c := range r.Calls {
			calls = append(calls, obj{"id": c.ID, "type": "function", "function": obj{"name": c.Name, "arguments": string(c.Args)}})
		}
		msg["tool_calls"] = calls
	}
	return obj{"id": m.id, "object": "chat.completion", "created": m.created.Unix(), "model": m.model,
		"choices": []any{obj{"index": 0, "message": msg, "finish_reason": chatFinish(r)}}, "usage": chatUsage(m)}
}

func chatEvents(r Reply, m meta) []event {
	chunk := func(delta obj, finish any) event {
		return event{data: obj{"id": m.id, "object": "chat.completion.chunk", "created": m.created.Unix(), "model": m.model,
			"choices": []any{obj{"index": 0, "delta": delta, "finish_reason": finish}}}}
	}
	ev := []event{chunk(obj{"role": "assistant", "content": ""}, nil)}
	for _, c := range chunks(r.Text) {
		ev = append(ev, chunk(obj{"content": c}, nil))
	}
	for i, c := range r.Calls {
		ev = append(ev,
			chunk(obj{"tool_calls": []any{obj{"index": i, "id": c.ID, "type": "function", "function": obj{"name": c.Name, "arguments": ""}}}}, nil),
			chunk(obj{"tool_calls": []any{obj{"index": i, "function": obj{"arguments": string(c.Args)}}}}, nil))
	}
	ev = append(ev, chunk(obj{}, chatFinish(r)))
	if m.includeUsage {
		ev = append(ev, event{data: obj{"id": m.id, "object": "chat.completion.chunk", "created": m.created.Unix(), "model": m.model,
			"choices": []any{}, "usage": chatUsage(m)}})
	}
	return append(ev, event{data: "[DONE]"})
}

// OpenAI Responses.

func responsesItems(r Reply, m meta, status string) []any {
	var items []any
	if r.Text != "" {
		items = append(items, obj{"id": "msg_" + m.id, "type": "message", "status": status, "role": "assistant",
			"content": []any{obj{"type": "output_text", "text": r.Text, "annotations": []any{}}}})
	}
	for _, c := range r.Calls {
		items = append(items, obj{"id": "fc_" + c.ID, "type": "function_call", "status": status,
			"call_id": c.ID, "name": c.Name, "arguments": string(c.Args)})
	}
	return items
}

func responsesObject(m meta, status string, output []any) obj {
	o := obj{"id": "resp_" + m.id, "object": "response", "created_at": m.created.Unix(), "status": status,
		"model": m.model, "output": output}
	if status == "completed" {
		o["usage"] = obj{"input_tokens": m.inputTokens, "output_tokens": m.outputTokens,
			"total_tokens":         m.inputTokens + m.outputTokens,
			"input_tokens_details": obj{"cached_tokens": 0}, "output_tokens_details": obj{"reasoning_tokens": 0}}
	}
	return o
}

func responsesEvents(r Reply, m meta) []event {
	var ev []event
	add := func(name string, data obj) {
		data["type"] = name
		data["sequence_number"] = len(ev)
		ev = append(ev, event{name, data})
	}
	add("response.created", obj{"response": responsesObject(m, "in_progress", []any{})})
	add("response.in_progress", obj{"response": responsesObject(m, "in_progress", []any{})})
	done := responsesItems(r, m, "completed")
	for i, item := range responsesItems(r, m, "in_progress") {
		it := item.(obj)
		id := it["id"]
		add("response.output_item.added", obj{"output_index": i, "item": it})
		if it["type"] == "message" {
			part := obj{"type": "output_text", "text": "", "annotations": []any{}}
			add("response.content_part.added", obj{"item_id": id, "output_index": i, "content_index": 0, "part": part})
			for _, c := range chunks(r.Text) {
				add("response.output_text.delta", obj{"item_id": id, "output_index": i, "content_index": 0, "delta": c})
			}
			add("response.output_text.done", obj{"item_id": id, "output_index": i, "content_index": 0, "text": r.Text})
			add("response.content_part.done", obj{"item_id": id, "output_index": i, "content_index": 0,
				"part": obj{"type": "output_text", "text": r.Text, "annotations": []any{}}})
		} else {
			args := it["arguments"]
			it["arguments"] = ""
			add("response.function_call_arguments.delta", obj{"item_id": id, "output_index": i, "delta": args})
			add("response.function_call_arguments.done", obj{"item_id": id, "output_index": i, "arguments": args})
		}
		add("response.output_item.done", obj{"output_index": i, "item": done[i]})
	}
	add("response.completed", obj{"response": responsesObject(m, "completed", done)})
	return ev
}

// Gemini generateContent and streamGenerateContent.

func geminiChunk(parts []any, m meta, last bool) obj {
	cand := obj{"content": obj{"role": "model", "parts": parts}, "index": 0}
	usage := obj{"promptTokenCount": m.inputTokens}
	if last {
		cand["finishReason"] = "STOP"
		usage["candidatesTokenCount"] = m.outputTokens
		usage["totalTokenCount"] = m.inputTokens + m.outputTokens
	}
	return obj{"candidates": []any{cand}, "usageMetadata": usage, "modelVersion": m.model, "responseId": m.id}
}

func geminiParts(r Reply) []any {
	var parts []any
	for _, c := range chunks(r.Text) {
		parts = append(parts, obj{"text": c})
	}
	for _, c := range r.Calls {
		parts = append(parts, obj{"functionCall": obj{"id": c.ID, "name": c.Name, "args": argsObject(c)}})
	}
	return parts
}

func geminiResponse(r Reply, m meta) obj {
	parts := []any{}
	if r.Text != "" {
		parts = append(parts, obj{"text": r.Text})
	}
	parts = append(parts, geminiParts(Reply{Calls: r.Calls})...)
	return geminiChunk(parts, m, true)
}

// geminiEvents streams one part per chunk; the last chunk carries the
// finish reason, as Gemini's do.
func geminiEvents(r Reply, m meta) []event {
	parts := geminiParts(r)
	if len(parts) == 0 {
		parts = []any{obj{"text": ""}}
	}
	ev := make([]event, 0, len(parts))
	for i, p := range parts {
		ev = append(ev, event{data: geminiChunk([]any{p}, m, i == len(parts)-1)})
	}
	return ev
}
