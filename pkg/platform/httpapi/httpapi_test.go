package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/exo-in-go/exo/pkg/platform/httpapi"
)

func TestDecodeJSON(t *testing.T) {
	type body struct {
		Name string `json:"name"`
	}
	big := `{"name":"` + strings.Repeat("x", 100) + `"}`
	for _, tc := range []struct {
		name, ct, body string
		limit          int64
		status         int
		code           string
	}{
		{"ok", "application/json", `{"name":"a"}`, 0, 200, ""},
		{"+json", "application/merge-patch+json", `{"name":"a"}`, 0, 200, ""},
		{"form", "application/x-www-form-urlencoded", `name=a`, 0, 415, "unsupported_media_type"},
		{"unknown field", "", `{"nom":"a"}`, 0, 400, "unknown_field"},
		{"two objects", "", `{"name":"a"}{"name":"b"}`, 0, 400, "invalid_json"},
		{"empty", "", ``, 0, 400, "invalid_json"},
		{"malformed", "", `{"name":`, 0, 400, "invalid_json"},
		{"over the limit is 413, not truncated", "", big, 64, 413, "payload_too_large"},
		{"under the limit", "", big, 1 << 10, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, chunked := range []bool{false, true} {
				r := httptest.NewRequest("POST", "/", strings.NewReader(tc.body))
				if chunked {
					r.ContentLength = -1
				}
				if tc.ct != "" {
					r.Header.Set("Content-Type", tc.ct)
				}
				w := httptest.NewRecorder()
				var dst body
				if httpapi.DecodeJSONLimit(w, r, &dst, tc.limit) {
					httpapi.WriteJSON(w, http.StatusOK, dst)
				}
				if w.Code != tc.status {
					t.Fatalf("chunked=%v: status %d, want %d: %s", chunked, w.Code, tc.status, w.Body)
				}
				if tc.code == "" {
					continue
				}
				var e httpapi.Error
				if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Code != tc.code {
					t.Fatalf("chunked=%v: body %s, want code %q", chunked, w.Body, tc.code)
				}
			}
		})
	}
}

func TestWriteAuthError(t *testing.T) {
	for status, code := range map[int]string{401: "unauthorized", 403: "forbidden", 500: "internal"} {
		w := httptest.NewRecorder()
		httpapi.WriteAuthError(w, status, "no")
		var e httpapi.Error
		_ = json.Unmarshal(w.Body.Bytes(), &e)
		if w.Code != status || e.Error.Code != code || (status == 401) != (w.Header().Get("WWW-Authenticate") != "") {
			t.Fatalf("%d: %d %s %v", status, w.Code, w.Body, w.Header())
		}
	}
}
