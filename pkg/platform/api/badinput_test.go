package api_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/exo-in-go/exo/pkg/platform/store"
)

func TestBadInput(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		e := newEnv(t, backend)
		s := e.signup("input@example.com", "Input")

		cases := []struct {
			name   string
			body   any
			status int
			code   string
		}{
			{"malformed", `{"name": "x"`, 400, "invalid_json"},
			{"syntax", `{name: x}`, 400, "invalid_json"},
			{"empty", ``, 400, "invalid_json"},
			{"unknown field", `{"name":"x","admin":true}`, 400, "unknown_field"},
			{"wrong type", `{"name": 42}`, 400, "invalid_json"},
			{"trailing data", `{"name":"x"} {"name":"y"}`, 400, "invalid_json"},
			{"missing name", `{}`, 400, "invalid_name"},
			{"control chars", `{"name":"a\u0000b"}`, 400, "invalid_name"},
			{"too long", `{"name":"` + strings.Repeat("x", 101) + `"}`, 400, "invalid_name"},
		}
		for _, c := range cases {
			r := e.req("POST", "/api/v1/deployments", s.Token, c.body)
			if r.Status != c.status {
				t.Errorf("%s: status %d, want %d: %s", c.name, r.Status, c.status, r.Body)
				continue
			}
			if code := r.errCode(t); code != c.code {
				t.Errorf("%s: code %q, want %q", c.name, code, c.code)
			}
		}
		r := e.req("POST", "/api/v1/deployments", s.Token, `{"name":"x","admin":true}`)
		if !strings.Contains(string(r.Body), "admin") {
			t.Errorf("unknown-field message does not name the field: %s", r.Body)
		}

		// Wrong content type (e.g. a cross-site form post).
		e.expect(e.req("POST", "/api/v1/deployments", s.Token, nil, "Content-Type", "application/x-www-form-urlencoded"), 415)

		// 10 MB body -> 413, declared and streamed (chunked, no Content-Length).
		big := bytes.Repeat([]byte("a"), 10<<20+1)
		if code := e.expect(e.req("POST", "/api/v1/deployments", s.Token, big), 413).errCode(t); code != "payload_too_large" {
			t.Fatal(code)
		}
		req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/deployments", struct{ *bytes.Reader }{bytes.NewReader(append([]byte(`{"name":"`), big...))})
		req.Header.Set("Authorization", "Bearer "+s.Token)
		req.Header.Set("Content-Type", "application/json")
		res, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 413 || req.ContentLength > 0 {
			t.Fatalf("streamed oversize body: %d (content-length %d)", res.StatusCode, req.ContentLength)
		}
		// The server is still fine afterwards.
		e.expect(e.req("GET", "/api/v1/deployments", s.Token, nil), 200)

		// SQL metacharacters are stored and returned verbatim.
		for _, name := range []string{
			`Robert'); DROP TABLE deployments;--`,
			`" OR 1=1 --`,
			`%_\ ?$1 ;`,
			`ünïcødé ☃ 名前`,
		} {
			d := e.createDeployment(s, name)
			var got store.Deployment
			e.expect(e.req("GET", "/api/v1/deployments/"+d.Deployment.ID, s.Token, nil), 200).json(t, &got)
			if got.Name != name {
				t.Errorf("stored %q, got back %q", name, got.Name)
			}
		}
		var list struct{ Items []store.Deployment }
		e.expect(e.req("GET", "/api/v1/deployments", s.Token, nil), 200).json(t, &list)
		if len(list.Items) != 4 {
			t.Fatalf("deployments after injection attempts: %d", len(list.Items))
		}
		var role store.Role
		e.expect(e.req("POST", "/api/v1/roles", s.Token, map[string]any{"name": `x'; DELETE FROM roles; --`, "permissions": []string{}}), 201).json(t, &role)
		if role.Name != `x'; DELETE FROM roles; --` {
			t.Fatalf("role name %q", role.Name)
		}
		// Path ids with metacharacters are just unknown ids.
		e.expect(e.req("GET", "/api/v1/deployments/1'%20OR%20'1'='1", s.Token, nil), 404)
	})
}

func TestCORS(t *testing.T) {
	e := newEnv(t, "sqlite")
	s := e.signup("cors@example.com", "CORS")
	pre := e.expect(e.req("OPTIONS", "/api/v1/deployments", "", nil,
		"Origin", "https://elsewhere.example", "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "authorization,x-tenant-id,content-type"), 204)
	checkCORS(t, pre.Header)
	get := e.expect(e.req("GET", "/api/v1/deployments", s.Token, nil, "Origin", "https://elsewhere.example"), 200)
	checkCORS(t, get.Header)
	checkCORS(t, e.expect(e.req("GET", "/api/v1/deployments", "", nil, "Origin", "https://elsewhere.example"), 401).Header)
	checkCORS(t, e.expect(e.req("GET", "/api/health", "", nil), 200).Header)

	off := newEnv(t, "sqlite", withEnv("EXO_CORS_ENABLED", "false"))
	r := off.req("GET", "/api/health", "", nil, "Origin", "https://elsewhere.example")
	for k := range r.Header {
		if strings.HasPrefix(k, "Access-Control-") {
			t.Fatalf("CORS header %s present with EXO_CORS_ENABLED=false", k)
		}
	}
	if r := off.req("OPTIONS", "/api/v1/deployments", "", nil, "Origin", "https://x.example", "Access-Control-Request-Method", "POST"); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("preflight answered with CORS disabled")
	}
}

func checkCORS(t *testing.T, h http.Header) {
	t.Helper()
	want := map[string]string{
		"Access-Control-Allow-Origin":  "*",
		"Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
	}
	for k, v := range want {
		if got := h.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want exactly [%q]", k, got, v)
		}
	}
	hdrs := h.Values("Access-Control-Allow-Headers")
	if len(hdrs) != 1 || !strings.Contains(hdrs[0], "Authorization") || !strings.Contains(hdrs[0], "X-Tenant-ID") {
		t.Errorf("Access-Control-Allow-Headers = %q", hdrs)
	}
}
