package agentkube_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/exo-in-go/exo/pkg/platform/platformtest"
	"github.com/exo-in-go/exo/pkg/tunnel"
)

// invokeNDJSON posts a streamed invocation and returns the answer's status
// and its lines.
func (e *env) invokeNDJSON(token, path string) (int, []map[string]any) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", e.url+path, strings.NewReader(`{"input":"hi","timeout_seconds":30}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/x-ndjson, application/json;q=0.5")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return res.StatusCode, nil
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		e.t.Fatalf("Content-Type %q", ct)
	}
	return res.StatusCode, platformtest.InvokeLines(e.t, res.Body)
}

// The streamed answer: output lines, then the result or an error line; an
// operator that cannot stream (older) still answers with its result.
func TestInvokeStreamed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	u := e.signup("a@example.com")
	id, token := e.createDeployment(u, "prod")
	path := "/api/v1/deployments/" + id + "/agents/team/"

	if code, _ := e.invokeNDJSON(u.Token, path+"bot/invoke"); code != http.StatusServiceUnavailable {
		t.Fatalf("streamed invoke while offline: %d, want 503", code)
	}
	o := e.connect(token)
	go func() {
		for _, mode := range []string{"stream", "older", "fail"} {
			f := o.expect(tunnel.TypeInvokeAgent)
			var req tunnel.InvokeAgent
			_ = f.Unmarshal(&req)
			if req.OutputStream == 0 || req.OutputStream%2 != 1 {
				t.Errorf("invoke_agent output stream %d, want an odd id", req.OutputStream)
				return
			}
			res := tunnel.InvokeAgentResult{RunName: req.Name + "-run", Phase: "Succeeded", Output: "tail"}
			if mode != "older" {
				s, err := o.conn.OpenStream(req.OutputStream)
				if err != nil {
					t.Error(err)
					return
				}
				ctx := context.Background()
				for _, chunk := range []string{"one ", "two"} {
					if err := s.Send(ctx, tunnel.TypeInvokeAgentOutput, "", tunnel.InvokeAgentOutput{Data: chunk}); err != nil {
						t.Error(err)
					}
				}
				_ = s.Send(ctx, tunnel.TypeInvokeAgentOutputEnd, "", tunnel.InvokeAgentOutputEnd{})
				res.OutputStreamed = true
			}
			if mode == "fail" {
				res = tunnel.InvokeAgentResult{RunName: req.Name + "-run", OutputStreamed: true,
					Error: &tunnel.Error{Code: tunnel.CodeTimeout, Message: "run did not finish within 30s"}}
			}
			o.send(tunnel.TypeInvokeAgentResult, f.ID, res)
		}
	}()

	_, lines := e.invokeNDJSON(u.Token, path+"bot/invoke")
	out, last := platformtest.StreamedOutput(t, lines)
	if out != "one two" || last["type"] != "result" || last["phase"] != "Succeeded" || last["run_name"] != "bot-run" {
		t.Fatalf("streamed answer %v", lines)
	}

	_, lines = e.invokeNDJSON(u.Token, path+"old/invoke")
	if len(lines) != 1 || lines[0]["type"] != "result" || lines[0]["output"] != "tail" {
		t.Fatalf("answer of an operator that does not stream: %v", lines)
	}

	_, lines = e.invokeNDJSON(u.Token, path+"slow/invoke")
	_, last = platformtest.StreamedOutput(t, lines)
	if errObj, _ := last["error"].(map[string]any); last["type"] != "error" || errObj["code"] != tunnel.CodeTimeout {
		t.Fatalf("a run failing after its output: %v", lines)
	}
}
