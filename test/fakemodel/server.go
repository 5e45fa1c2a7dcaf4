// Package fakemodel is a model API server for tests: it speaks Anthropic
// Messages, OpenAI Responses and Chat Completions, and Gemini's
// generateContent and streamGenerateContent, streaming (SSE) and not, well
// enough that the real coding-agent CLIs run against it offline.
//
// Its answers are deterministic: ReplyText of the prompt, a value of the
// schema when JSON output is asked for, a shell tool call when the prompt
// scripts one (ShellDirective), and a call of a finish tool (Cline's
// submit_and_exit) whenever one is offered, so an agent that only stops on
// such a call finishes. Faults can be injected one request at a time (429
// with Retry-After, 500, a connection cut mid-stream, a slow first token),
// and every request is logged (Requests) for tests to assert on.
//
// Any path prefix is accepted: ANTHROPIC_BASE_URL=http://host:port,
// base_url = "http://host:port/v1", GOOGLE_GEMINI_BASE_URL=http://host:port
// all reach it. The same log and faults are served under ControlPrefix for
// tests that run it as a process (cmd/fakemodel).
package fakemodel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// ControlPrefix is where the server answers about itself: GET
// ControlPrefix+"/requests" is the log (DELETE clears it), POST
// ControlPrefix+"/faults" with {"faults":["rate-limit:2s", …]} queues faults.
const ControlPrefix = "/_fakemodel"

// maxBody bounds a request body; the CLIs send 30–90 KB.
const maxBody = 32 << 20

// Options configure a Server; the zero value serves with the defaults.
type Options struct {
	// FinishTools are called whenever offered; default DefaultFinishTools.
	FinishTools []string
	// ShellTools answer ShellDirective; default DefaultShellTools.
	ShellTools []string
	// BodyDir, when set, receives every request body as NNNN.json.
	BodyDir string
	// Log gets one line per request; nil logs nothing.
	Log *slog.Logger
}

// Request is one entry of the log.
type Request struct {
	Seq    int       `json:"seq"`
	Time   time.Time `json:"time"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Query  string    `json:"query,omitempty"`
	// API is empty for requests that are not model calls (model lists, token
	// counts, unknown paths).
	API API `json:"api,omitempty"`
	// Auth names where the key came: "x-api-key", "authorization",
	// "x-goog-api-key", "key" (Gemini's query parameter), or "".
	Auth      string   `json:"auth,omitempty"`
	UserAgent string   `json:"userAgent,omitempty"`
	Headers   []string `json:"headers,omitempty"`
	Model     string   `json:"model,omitempty"`
	Stream    bool     `json:"stream,omitempty"`
	Prompt    string   `json:"prompt,omitempty"`
	// Tools are the names of the tools offered.
	Tools       []string `json:"tools,omitempty"`
	ToolResults int      `json:"toolResults,omitempty"`
	// JSONOutput: the request asked for JSON of a schema.
	JSONOutput bool      `json:"jsonOutput,omitempty"`
	Reply      string    `json:"reply,omitempty"`
	ToolCalls  []string  `json:"toolCalls,omitempty"`
	Fault      FaultKind `json:"fault,omitempty"`
	Status     int       `json:"status"`
}

// Server is the fake model API; it is an http.Handler.
type Server struct {
	opts Options

	mu       sync.Mutex
	seq      int
	requests []Request
	faults   []Fault
}

// New returns a server with opts.
func New(opts Options) *Server {
	if opts.FinishTools == nil {
		opts.FinishTools = DefaultFinishTools
	}
	if opts.ShellTools == nil {
		opts.ShellTools = DefaultShellTools
	}
	return &Server{opts: opts}
}

// Requests returns a copy of the log, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Reset clears the log and the queued faults.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests, s.faults = nil, nil
}

// Inject queues faults: each model request takes the next one, until none
// is left.
func (s *Server) Inject(faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, faults...)
}

func (s *Server) nextFault() Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.faults) == 0 {
		return Fault{}
	}
	f := s.faults[0]
	s.faults = s.faults[1:]
	return f
}

// ServeHTTP routes by the end of the path, so that any prefix works.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, ControlPrefix+"/") {
		s.serveControl(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	rec := s.begin(r, body)
	sw := &statusWriter{ResponseWriter: w}
	// Recorded however the handler ends, a cut stream's abort included.
	defer func() { s.record(rec, sw.status) }()
	if err != nil {
		writeError(sw, "", http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	path := r.URL.Path
	post := r.Method == http.MethodPost
	switch {
	case post && strings.HasSuffix(path, "/messages/count_tokens"):
		writeJSON(sw, obj{"input_tokens": len(body) / 4})
	case post && strings.HasSuffix(path, "/messages"):
		s.serveModel(sw, r, rec, body, APIAnthropic, parseAnthropic)
	case post && strings.HasSuffix(path, "/chat/completions"):
		s.serveModel(sw, r, rec, body, APIChat, parseChat)
	case post && strings.HasSuffix(path, "/responses"):
		s.serveModel(sw, r, rec, body, APIResponses, parseResponses)
	case post && strings.Contains(path, "/models/"):
		s.serveGemini(sw, r, rec, body)
	case r.Method == http.MethodGet && strings.HasSuffix(path, "/models"):
		writeJSON(sw, obj{"object": "list",
			"data":   []any{obj{"id": "fake-model", "object": "model", "type": "model", "created": 0, "owned_by": "fakemodel", "display_name": "Fake Model"}},
			"models": []any{obj{"name": "models/fake-model", "displayName": "Fake Model"}}})
	default:
		writeError(sw, "", http.StatusNotFound, fmt.Sprintf("fakemodel serves no %s %s", r.Method, path))
	}
}

// serveGemini answers POST …/models/{model}:{method}.
func (s *Server) serveGemini(w http.ResponseWriter, r *http.Request, rec *Request, body []byte) {
	rest := r.URL.Path[strings.LastIndex(r.URL.Path, "/models/")+len("/models/"):]
	model, method, _ := strings.Cut(rest, ":")
	switch method {
	case "countTokens":
		writeJSON(w, obj{"totalTokens": len(body) / 4})
	case "generateContent", "streamGenerateContent":
		stream := method == "streamGenerateContent"
		s.serveModel(w, r, rec, body, APIGemini, func(b []byte) (Conversation, error) { return parseGemini(b, model, stream) })
	default:
		writeError(w, APIGemini, http.StatusNotFound, fmt.Sprintf("fakemodel serves no Gemini method %q", method))
	}
}

// serveModel answers one model call: it parses the conversation, applies the
// next fault, decides the reply and writes it in the request's API.
func (s *Server) serveModel(w http.ResponseWriter, r *http.Request, rec *Request, body []byte, api API, parse func([]byte) (Conversation, error)) {
	rec.API = api
	c, err := parse(body)
	if err != nil {
		writeError(w, api, http.StatusBadRequest, "fakemodel could not read the request: "+err.Error())
		return
	}
	rec.Model, rec.Stream, rec.Prompt, rec.ToolResults = c.Model, c.Stream, c.Prompt, c.ToolResults
	rec.JSONOutput = len(c.ResponseSchema) > 0
	for _, t := range c.Tools {
		rec.Tools = append(rec.Tools, t.Name)
	}
	f := s.nextFault()
	rec.Fault = f.Kind
	switch f.Kind {
	case FaultRateLimit:
		w.Header().Set("Retry-After", fmt.Sprint(int((f.Duration+time.Second-1)/time.Second)))
		writeError(w, c.API, http.StatusTooManyRequests, "fakemodel: rate limited (injected)")
		return
	case FaultServerError:
		writeError(w, c.API, http.StatusInternalServerError, "fakemodel: internal error (injected)")
		return
	}
	id := fmt.Sprintf("fake%06d", rec.Seq)
	reply := decide(c, s.opts.FinishTools, s.opts.ShellTools, "call_"+id)
	rec.Reply = reply.Text
	for _, call := range reply.Calls {
		rec.ToolCalls = append(rec.ToolCalls, call.Name)
	}
	m := meta{id: id, model: c.Model, created: rec.Time, inputTokens: len(body)/4 + 1,
		outputTokens: len(reply.Text)/4 + 1, includeUsage: c.IncludeUsage}
	sse := c.Stream && (c.API != APIGemini || r.URL.Query().Get("alt") == "sse")
	if sse {
		stream(w, r, encodeEvents(c.API, reply, m), f)
		return
	}
	if !sleep(r, f) {
		return
	}
	if c.Stream { // Gemini's streamGenerateContent without alt=sse: a JSON array of chunks
		var all []any
		for _, e := range geminiEvents(reply, m) {
			all = append(all, e.data)
		}
		writeJSON(w, all)
		return
	}
	writeJSON(w, encodeBody(c.API, reply, m))
}

func encodeEvents(api API, r Reply, m meta) []event {
	switch api {
	case APIAnthropic:
		return anthropicEvents(r, m)
	case APIChat:
		return chatEvents(r, m)
	case APIResponses:
		return responsesEvents(r, m)
	default:
		return geminiEvents(r, m)
	}
}

func encodeBody(api API, r Reply, m meta) any {
	switch api {
	case APIAnthropic:
		return anthropicMessage(r, m)
	case APIChat:
		return chatCompletion(r, m)
	case APIResponses:
		return responsesObject(m, "completed", responsesItems(r, m, "completed"))
	default:
		return geminiResponse(r, m)
	}
}

// stream writes evs as server-sent events, flushing each. A slow first
// token waits after the headers; a cut stream aborts the connection after
// half the events, without the end of the chunked body.
func stream(w http.ResponseWriter, r *http.Request, evs []event, f Fault) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush() // the headers go now: the client sees a stream that has not started
	if !sleep(r, f) {
		return
	}
	n := len(evs)
	if f.Kind == FaultCutStream {
		n = max(1, n/2)
	}
	for _, e := range evs[:n] {
		var data []byte
		if s, ok := e.data.(string); ok {
			data = []byte(s)
		} else {
			data, _ = json.Marshal(e.data) // maps of JSON values: always marshal
		}
		var b bytes.Buffer
		if e.name != "" {
			fmt.Fprintf(&b, "event: %s\n", e.name)
		}
		fmt.Fprintf(&b, "data: %s\n\n", data)
		if _, err := w.Write(b.Bytes()); err != nil {
			return
		}
		_ = rc.Flush()
	}
	if f.Kind == FaultCutStream {
		// net/http closes the connection at once, without the chunked body's
		// terminator: the client sees the stream break.
		panic(http.ErrAbortHandler)
	}
}

// sleep waits out a slow first token; false when the client went away.
func sleep(r *http.Request, f Fault) bool {
	if f.Kind != FaultSlowFirstToken {
		return true
	}
	t := time.NewTimer(f.Duration)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// begin starts the log entry of a request and saves its body.
func (s *Server) begin(r *http.Request, body []byte) *Request {
	s.mu.Lock()
	s.seq++
	seq := s.seq
	s.mu.Unlock()
	rec := &Request{Seq: seq, Time: time.Now(), Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
		UserAgent: r.Header.Get("User-Agent")}
	for name := range r.Header {
		rec.Headers = append(rec.Headers, name)
	}
	slices.Sort(rec.Headers)
	switch {
	case r.Header.Get("X-Api-Key") != "":
		rec.Auth = "x-api-key"
	case r.Header.Get("X-Goog-Api-Key") != "":
		rec.Auth = "x-goog-api-key"
	case r.Header.Get("Authorization") != "":
		rec.Auth = "authorization"
	case r.URL.Query().Get("key") != "":
		rec.Auth = "key"
	}
	if s.opts.BodyDir != "" && len(body) > 0 {
		path := filepath.Join(s.opts.BodyDir, fmt.Sprintf("%04d.json", seq))
		if err := os.WriteFile(path, body, 0o600); err != nil && s.opts.Log != nil {
			s.opts.Log.Warn("Could not save a request body", "path", path, "err", err)
		}
	}
	return rec
}

func (s *Server) record(rec *Request, status int) {
	if status == 0 {
		status = http.StatusOK
	}
	rec.Status = status
	s.mu.Lock()
	s.requests = append(s.requests, *rec)
	s.mu.Unlock()
	if s.opts.Log != nil {
		s.opts.Log.Info("Request", "seq", rec.Seq, "method", rec.Method, "path", rec.Path, "api", rec.API,
			"model", rec.Model, "status", status, "fault", rec.Fault, "toolCalls", rec.ToolCalls, "reply", rec.Reply)
	}
}

// serveControl answers the log and fault endpoints.
func (s *Server) serveControl(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == ControlPrefix+"/requests" && r.Method == http.MethodGet:
		writeJSON(w, s.Requests())
	case r.URL.Path == ControlPrefix+"/requests" && r.Method == http.MethodDelete:
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	case r.URL.Path == ControlPrefix+"/faults" && r.Method == http.MethodPost:
		var req struct {
			Faults []string `json:"faults"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
			writeError(w, "", http.StatusBadRequest, "want {\"faults\":[…]}: "+err.Error())
			return
		}
		faults, err := ParseFaults(req.Faults)
		if err != nil {
			writeError(w, "", http.StatusBadRequest, err.Error())
			return
		}
		s.Inject(faults...)
		w.WriteHeader(http.StatusNoContent)
	default:
		writeError(w, "", http.StatusNotFound, "unknown control endpoint")
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v) // a write error means the client left
}

// writeError answers in the error shape of api, which the CLIs parse to
// decide whether to retry.
func writeError(w http.ResponseWriter, api API, status int, message string) {
	var body obj
	switch api {
	case APIAnthropic:
		kind := map[int]string{http.StatusTooManyRequests: "rate_limit_error", http.StatusBadRequest: "invalid_request_error",
			http.StatusNotFound: "not_found_error"}[status]
		if kind == "" {
			kind = "api_error"
		}
		body = obj{"type": "error", "error": obj{"type": kind, "message": message}}
	case APIGemini:
		st := map[int]string{http.StatusTooManyRequests: "RESOURCE_EXHAUSTED", http.StatusBadRequest: "INVALID_ARGUMENT",
			http.StatusNotFound: "NOT_FOUND"}[status]
		if st == "" {
			st = "INTERNAL"
		}
		body = obj{"error": obj{"code": status, "message": message, "status": st}}
	default:
		body = obj{"error": obj{"message": message, "type": http.StatusText(status), "code": status}}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body) // a write error means the client left
}

// statusWriter remembers the status for the log; Unwrap lets
// http.ResponseController reach the connection's Flush.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
