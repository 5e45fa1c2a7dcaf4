package localup

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/exo-in-go/exo/pkg/platform/platformtest"
)

// dashboard is the platform's API as the seeded administrator sees it.
type dashboard struct {
	url, token, deployment string
}

// signIn signs in with the credentials local-up printed.
func signIn(tb testing.TB, u *localUp) *dashboard {
	tb.Helper()
	email := match(tb, u.welcome, `sign in\s+(\S+) / `)
	password := match(tb, u.welcome, `sign in\s+\S+ / (\S+)`)
	d := &dashboard{
		url:        match(tb, u.welcome, `UI\s+(http://\S+)`),
		deployment: match(tb, u.welcome, `/deployments/([^/\s]+)/agents/default/hello`),
	}
	var session struct {
		Token string `json:"token"`
	}
	d.call(tb, "POST", "/api/v1/auth/login", map[string]string{"email": email, "password": password}, &session)
	d.token = session.Token
	return d
}

func (d *dashboard) call(tb testing.TB, method, path string, body, out any) {
	tb.Helper()
	b, _ := json.Marshal(body)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, d.url+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if d.token != "" {
		req.Header.Set("Authorization", "Bearer "+d.token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		tb.Fatalf("%s %s: %s: %s", method, path, res.Status, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			tb.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

func (d *dashboard) invokePath() string {
	return fmt.Sprintf("/api/v1/deployments/%s/agents/default/hello/invoke", d.deployment)
}

// invoke runs the hello agent through the tunnel and waits for its result.
func (d *dashboard) invoke(tb testing.TB, input string) map[string]any {
	tb.Helper()
	var res map[string]any
	d.call(tb, "POST", d.invokePath(), map[string]any{"input": input, "timeout_seconds": 60}, &res)
	return res
}

// invokeStreamed runs the hello agent with its output streamed (NDJSON) and
// returns the lines.
func (d *dashboard) invokeStreamed(tb testing.TB, input string) []map[string]any {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, _ := json.Marshal(map[string]any{"input": input, "timeout_seconds": 60})
	req, _ := http.NewRequestWithContext(ctx, "POST", d.url+d.invokePath(), bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/x-ndjson")
	req.Header.Set("Authorization", "Bearer "+d.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/x-ndjson" {
		data, _ := io.ReadAll(res.Body)
		tb.Fatalf("streamed invoke: %s %q: %s", res.Status, res.Header.Get("Content-Type"), data)
	}
	return platformtest.InvokeLines(tb, res.Body)
}
