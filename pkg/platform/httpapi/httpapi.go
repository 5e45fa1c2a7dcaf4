// Package httpapi is the one way exo-app's HTTP handlers read JSON requests
// and write JSON responses, in every package that mounts routes (api,
// agentkube, shell, live): the response headers, the one error shape
// {"error":{"code","message"}} and the rules for request bodies (one JSON
// object, no unknown fields, a size limit answered with 413, a JSON
// Content-Type).
package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// Error is the body of every error response.
type Error struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong: Code is a stable machine-readable
// word (snake_case), Message is for people.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// WriteJSON writes v as JSON with status; responses are never cached.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes {"error":{"code","message"}} with status.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	WriteJSON(w, status, Error{Error: ErrorDetail{Code: code, Message: message}})
}

// WriteAuthError answers a request whose caller could not be authenticated
// or authorised, with the status and message the authenticator returned
// (401, 403 or 500): the code follows the status, and a 401 carries the
// Bearer challenge.
func WriteAuthError(w http.ResponseWriter, status int, message string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="exo"`)
	}
	WriteError(w, status, CodeFor(status), message)
}

// CodeFor is the error code of a status when nothing more specific applies.
func CodeFor(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "bad_request"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusConflict:
		return "conflict"
	case http.StatusRequestEntityTooLarge:
		return "payload_too_large"
	case http.StatusTooManyRequests:
		return "too_many_requests"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	return "internal"
}

// DecodeJSON reads exactly one JSON object with no unknown fields into dst.
// A Content-Type, when sent, must be application/json or a +json type
// (which also stops cross-site HTML form posts). The body is bounded by the
// server-wide EXO_MAX_BODY_BYTES every request already has (api.Server's
// middleware); over it is 413 payload_too_large. On failure DecodeJSON has
// written the error response and returns false.
func DecodeJSON(w http.ResponseWriter, r *http.Request, dst any) bool {
	return DecodeJSONLimit(w, r, dst, 0)
}

// DecodeJSONLimit is DecodeJSON for an endpoint with a lower limit of its
// own: maxBytes > 0 bounds the body to that many bytes, and a body over it
// is 413 payload_too_large, never silently truncated.
func DecodeJSONLimit(w http.ResponseWriter, r *http.Request, dst any, maxBytes int64) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
			return false
		}
	}
	body := r.Body
	if maxBytes > 0 {
		if r.ContentLength > maxBytes {
			WriteError(w, http.StatusRequestEntityTooLarge, "payload_too_large", fmt.Sprintf("request body exceeds %d bytes", maxBytes))
			return false
		}
		body = http.MaxBytesReader(w, body, maxBytes)
	}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil {
		if err2 := dec.Decode(&struct{}{}); !errors.Is(err2, io.EOF) {
			var maxErr *http.MaxBytesError
			if errors.As(err2, &maxErr) {
				err = err2
			} else {
				err = errors.New("request body must contain a single JSON object")
			}
		}
	}
	if err == nil {
		return true
	}
	var maxErr *http.MaxBytesError
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &maxErr):
		WriteError(w, http.StatusRequestEntityTooLarge, "payload_too_large", fmt.Sprintf("request body exceeds %d bytes", maxErr.Limit))
	case errors.Is(err, io.EOF):
		WriteError(w, http.StatusBadRequest, "invalid_json", "request body is empty")
	case errors.As(err, &syntaxErr):
		WriteError(w, http.StatusBadRequest, "invalid_json", fmt.Sprintf("malformed JSON at byte %d: %v", syntaxErr.Offset, syntaxErr))
	case errors.Is(err, io.ErrUnexpectedEOF):
		WriteError(w, http.StatusBadRequest, "invalid_json", "malformed JSON: unexpected end of body")
	case errors.As(err, &typeErr):
		WriteError(w, http.StatusBadRequest, "invalid_json", fmt.Sprintf("field %q must be %s", typeErr.Field, typeErr.Type))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		WriteError(w, http.StatusBadRequest, "unknown_field", strings.TrimPrefix(err.Error(), "json: "))
	default:
		WriteError(w, http.StatusBadRequest, "invalid_json", err.Error())
	}
	return false
}
