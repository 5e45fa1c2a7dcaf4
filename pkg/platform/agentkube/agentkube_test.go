package agentkube_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/exo-in-go/exo/pkg/platform/agentkube"
	"github.com/exo-in-go/exo/pkg/platform/store"
	"github.com/exo-in-go/exo/pkg/tunnel"
)

func TestAuthenticationRefusedBeforeUpgrade(t *testing.T) {
	t.Parallel()
	e := newEnv(t, map[string]string{"EXO_TUNNEL_HANDSHAKE_TIMEOUT": "200ms"})
	_, token := e.createDeployment(e.signup("a@example.com"), "prod")
	for name, tc := range map[string]struct {
		token  string
		header http.Header
		want   int
	}{
		"no token":      {"", nil, http.StatusUnauthorized},
		"malformed":     {"not-a-token", nil, http.StatusUnauthorized},
		"unknown token": {"exo_dpl_" + strings.Repeat("0", 32), nil, http.StatusUnauthorized},
		"browser":       {token, http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden},
	} {
		_, err := e.dial(tc.token, tc.header)
		if got := handshakeStatus(err); got != tc.want {
			t.Errorf("%s: handshake status %d (%v), want %d", name, got, err, tc.want)
		}
	}
	// A valid token that never says hello is closed at the handshake deadline.
	o, err := e.dial(token, nil)
	if err != nil {
		t.Fatal(err)
	}
	if code := o.closed(); code != tunnel.CloseHandshake {
		t.Fatalf("close code %d, want %d", code, tunnel.CloseHandshake)
	}
}

func TestOversizedFrameClosesWith1009(t *testing.T) {
	t.Parallel()
	// The limit and the frame are small enough that the frame leaves in one
	// write of the dialer's 1 KiB buffer: the server closes as soon as it reads
	// the oversized header, and a second write would race that close.
	e := newEnv(t, map[string]string{"EXO_TUNNEL_MAX_FRAME_BYTES": "256"})
	_, token := e.createDeployment(e.signup("a@example.com"), "prod")
	// tunnel.Conn refuses to send a frame over its own limit, so write past
	// it on the raw socket the way a broken operator would.
	big := tunnel.Snapshot{Final: true, Objects: []tunnel.Object{{Kind: "Agent", Name: strings.Repeat("x", 600)}}}
	f, _ := tunnel.NewFrame(tunnel.TypeSnapshot, "", 0, big)
	b, _ := f.Encode()
	raw := rawConn(t, e, token)
	if err := raw.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatal(err)
	}
	if code := readCloseCode(t, raw); code != tunnel.CloseMessageTooBig {
		t.Fatalf("close code %d, want %d", code, tunnel.CloseMessageTooBig)
	}
}

func TestGraceWindowRefusesSecondConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, map[string]string{"EXO_TUNNEL_GRACE_WINDOW": "1h"})
	u := e.signup("a@example.com")
	id, token := e.createDeployment(u, "prod")
	first := e.connect(token)
	_, err := e.dial(token, nil)
	var he *tunnel.HandshakeError
	if !asHandshake(err, &he) || he.StatusCode != http.StatusConflict || he.RetryAfter <= 0 {
		t.Fatalf("second connection inside the grace window: %v, want 409 with Retry-After", err)
	}
	// The first connection is untouched.
	first.send(tunnel.TypeHeartbeat, "", tunnel.Heartbeat{Seq: 1})
	first.send(tunnel.TypeSnapshot, "", tunnel.Snapshot{Generation: 1, Final: true, Objects: []tunnel.Object{{Kind: "Agent", Namespace: "ns", Name: "a"}}})
	e.waitObjects(u, id, "Agent/ns/a")
}

func TestNewerConnectionWinsAfterGraceWindow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, map[string]string{"EXO_TUNNEL_GRACE_WINDOW": "50ms"})
	u := e.signup("a@example.com")
	id, token := e.createDeployment(u, "prod")
	first := e.connect(token)
	first.send(tunnel.TypeSnapshot, "", tunnel.Snapshot{Generation: 1, Final: true, Objects: []tunnel.Object{{Kind: "Agent", Namespace: "ns", Name: "old"}}})
	e.waitObjects(u, id, "Agent/ns/old")

	second := e.reconnect(token)
	if code := first.closed(); code != tunnel.CloseSuperseded {
		t.Fatalf("superseded connection closed with %d, want %d", code, tunnel.CloseSuperseded)
	}
	second.send(tunnel.TypeSnapshot, "", tunnel.Snapshot{Generation: 1, Final: true, Objects: []tunnel.Object{{Kind: "Agent", Namespace: "ns", Name: "new"}}})
	e.waitObjects(u, id, "Agent/ns/new")
	var v agentkube.ClusterView
	e.do("GET", "/api/v1/deployments/"+id+"/cluster", u.Token, nil, &v)
	if !v.Connected || v.Status != store.StatusConnected {
		t.Fatalf("after takeover: connected=%v status=%s", v.Connected, v.Status)
	}
}

func TestHeartbeatsDriveStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t, map[string]string{
		"EXO_TUNNEL_HEARTBEAT_INTERVAL": "20ms",
		"EXO_TUNNEL_DEGRADED_AFTER":     "300ms",
		"EXO_TUNNEL_OFFLINE_AFTER":      "900ms",
	})
	u := e.signup("a@example.com")
	id, token := e.createDeployment(u, "prod")
	var d store.Deployment
	e.do("GET", "/api/v1/deployments/"+id, u.Token, nil, &d)
	if d.Status != store.StatusPending {
		t.Fatalf("new deployment status %q, want pending", d.Status)
	}
	o := e.connect(token)
	e.waitStatuses(id, store.StatusConnected)
	// The operator freezes: the socket stays open (WebSocket pings are
	// answered by the client library) but no frame arrives.
	e.waitStatuses(id, store.StatusConnected, store.StatusDegraded, store.StatusOffline)
	e.do("GET", "/api/v1/deployments/"+id, u.Token, nil, &d)
	if d.Status != store.StatusOffline || d.LastHeartbeatAt == nil {
		t.Fatalf("stored status %q, last heartbeat %v", d.Status, d.LastHeartbeatAt)
	}
	// It thaws.
	o.send(tunnel.TypeHeartbeat, "", tunnel.Heartbeat{Seq: 1})
	e.waitStatuses(id, store.StatusConnected, store.StatusDegraded, store.StatusOffline, store.StatusConnected)
	// It goes away: degraded at once, offline after the window.
	o.close()
	e.waitStatuses(id, store.StatusConnected, store.StatusDegraded, store.StatusOffline, store.StatusConnected,
		store.StatusDegraded, store.StatusOffline)
}

func TestRotatedTokenRefusedAndReconnectAudited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, map[string]string{"EXO_TUNNEL_GRACE_WINDOW": "50ms"})
	u := e.signup("a@example.com")
	id, oldToken := e.createDeployment(u, "prod")
	o := e.connect(oldToken)
	e.waitStatuses(id, store.StatusConnected)
	var rot struct{ Token string }
	if code := e.do("POST", "/api/v1/deployments/"+id+"/rotate", u.Token, nil, &rot); code != http.StatusOK {
		t.Fatalf("rotate: %d", code)
	}
	o.close()
	if _, err := e.dial(oldToken, nil); handshakeStatus(err) != http.StatusUnauthorized {
		t.Fatalf("old token after rotation: %v, want 401", err)
	}
	e.reconnect(rot.Token)
	// The audit event is written as the new session settles, just after the
	// handshake; wait for it, then require exactly one.
	var audit struct {
		Items []store.AuditEvent `json:"items"`
	}
	n := 0
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		e.do("GET", "/api/v1/audit", u.Token, nil, &audit)
		n = 0
		for _, a := range audit.Items {
			if a.Action == agentkube.AuditDeploymentReconnected && a.TargetID == id {
				n++
				if strings.Contains(a.Detail, strings.TrimPrefix(rot.Token, "exo_dpl_")) {
					t.Fatalf("audit detail leaks the token: %s", a.Detail)
				}
			}
		}
		if n > 0 || time.Now().After(deadline) {
			break
		}
	}
	if n != 1 {
		t.Fatalf("%d DeploymentReconnected events, want 1: %+v", n, audit.Items)
	}
}

func TestViewAndTenantScoping(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	u := e.signup("a@example.com")
	other := e.signup("b@example.com")
	id, token := e.createDeployment(u, "prod")
	o := e.connect(token)
	agent := func(name string) tunnel.Object {
		b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"name": name, "namespace": "team"},
			"spec": map[string]any{"runtime": "ClaudeCode"}, "status": map[string]any{"phase": "Ready", "podName": name}})
		return tunnel.Object{Kind: "Agent", Namespace: "team", Name: name, Object: b}
	}
	pod, _ := json.Marshal(map[string]any{"status": map[string]any{"phase": "Running"}})
	// A snapshot in two chunks, then deltas.
	o.send(tunnel.TypeSnapshot, "", tunnel.Snapshot{Generation: 7, Objects: []tunnel.Object{agent("a"), agent("gone")}})
	o.send(tunnel.TypeSnapshot, "", tunnel.Snapshot{Generation: 7, Final: true, Objects: []tunnel.Object{{Kind: "Pod", Namespace: "team", Name: "a", Object: pod}}})
	o.send(tunnel.TypeDelta, "", tunnel.Delta{Generation: 7, Changes: []tunnel.Change{
		{Op: tunnel.OpUpsert, Object: agent("b")}, {Op: tunnel.OpDelete, Object: tunnel.Object{Kind: "Agent", Namespace: "team", Name: "gone"}},
	}})
	// A delta of another generation is not applied.
	o.send(tunnel.TypeDelta, "", tunnel.Delta{Generation: 6, Changes: []tunnel.Change{{Op: tunnel.OpUpsert, Object: agent("stale")}}})
	o.send(tunnel.TypeSnapshot, "", tunnel.Snapshot{Generation: 8}) // an incomplete snapshot is never visible
	o.send(tunnel.TypeHeartbeat, "", tunnel.Heartbeat{Seq: 1})
	e.waitObjects(u, id, "Agent/team/a", "Agent/team/b", "Pod/team/a")

	var agents struct {
		Items []agentkube.AgentSummary `json:"items"`
	}
	if code := e.do("GET", "/api/v1/deployments/"+id+"/agents", u.Token, nil, &agents); code != 200 || len(agents.Items) != 2 {
		t.Fatalf("agents: %d %+v", code, agents)
	}
	if a := agents.Items[0]; a.Name != "a" || a.PodPhase != "Running" || a.Runtime != "ClaudeCode" {
		t.Fatalf("agent summary %+v", a)
	}
	for _, path := range []string{"/cluster", "/agents"} {
		if code := e.do("GET", "/api/v1/deployments/"+id+path, other.Token, nil, nil); code != http.StatusNotFound {
			t.Fatalf("other tenant GET %s: %d, want 404", path, code)
		}
	}
	if code := e.do("GET", "/api/v1/deployments/"+id+"/cluster", "", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("anonymous: %d", code)
	}
}

func TestInvokeAgent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	u := e.signup("a@example.com")
	id, token := e.createDeployment(u, "prod")
	path := "/api/v1/deployments/" + id + "/agents/team/bot/invoke"
	var errBody struct{ Error struct{ Code string } }
	if code := e.do("POST", path, u.Token, map[string]any{"input": "hi"}, &errBody); code != http.StatusServiceUnavailable || errBody.Error.Code != "operator_offline" {
		t.Fatalf("invoke while offline: %d %+v", code, errBody)
	}

	o := e.connect(token)
	// The simulated operator answers each invoke_agent like the real one.
	go func() {
		for range 2 {
			f := o.expect(tunnel.TypeInvokeAgent)
			var req tunnel.InvokeAgent
			_ = f.Unmarshal(&req)
			res := tunnel.InvokeAgentResult{RunName: req.Name + "-run", Phase: "Succeeded", Output: "echo: " + req.Input}
			if req.Name == "missing" {
				res = tunnel.InvokeAgentResult{Error: &tunnel.Error{Code: tunnel.CodeNotFound, Message: "agent team/missing not found"}}
			}
			o.send(tunnel.TypeInvokeAgentResult, f.ID, res)
		}
	}()
	var res tunnel.InvokeAgentResult
	if code := e.do("POST", path, u.Token, map[string]any{"input": "hi", "timeout_seconds": 30}, &res); code != http.StatusOK {
		t.Fatalf("invoke: %d", code)
	}
	if res.RunName != "bot-run" || res.Phase != "Succeeded" || res.Output != "echo: hi" {
		t.Fatalf("result %+v", res)
	}
	if code := e.do("POST", "/api/v1/deployments/"+id+"/agents/team/missing/invoke", u.Token, map[string]any{}, &errBody); code != http.StatusNotFound || errBody.Error.Code != tunnel.CodeNotFound {
		t.Fatalf("invoke missing agent: %d %+v", code, errBody)
	}
	if code := e.do("POST", path, u.Token, map[string]any{"timeout_seconds": 99999}, nil); code != http.StatusBadRequest {
		t.Fatalf("bad timeout: %d", code)
	}

	// The connection drops while a request waits: an offline error, not a hang.
	go func() {
		o.expect(tunnel.TypeEnsurePod)
		o.close()
	}()
	if code := e.do("POST", "/api/v1/deployments/"+id+"/agents/team/bot/ensure-pod", u.Token, nil, &errBody); code != http.StatusServiceUnavailable || errBody.Error.Code != "operator_offline" {
		t.Fatalf("ensure-pod on a dropped connection: %d %+v", code, errBody)
	}
}

// Behind two proxies that set X-Forwarded-For (EXO_TRUST_PROXY_HEADERS,
// EXO_TRUSTED_PROXIES=2: the test's connection and 10.0.0.1), the audit
// records the operator's address, not a proxy's.
func TestReconnectAuditUsesForwardedAddress(t *testing.T) {
	t.Parallel()
	e := newEnv(t, map[string]string{"EXO_TUNNEL_GRACE_WINDOW": "50ms", "EXO_TRUST_PROXY_HEADERS": "true", "EXO_TRUSTED_PROXIES": "2"})
	u := e.signup("a@example.com")
	id, token := e.createDeployment(u, "prod")
	hdr := http.Header{"X-Forwarded-For": {"203.0.113.7, 10.0.0.1"}}
	for range 2 {
		deadline := time.Now().Add(10 * time.Second)
		for {
			o, err := e.dial(token, hdr)
			if err == nil {
				e.handshake(o)
				o.close()
				break
			}
			if handshakeStatus(err) != http.StatusConflict || time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	var audit struct {
		Items []store.AuditEvent `json:"items"`
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		e.do("GET", "/api/v1/audit", u.Token, nil, &audit)
		for _, a := range audit.Items {
			if a.Action == agentkube.AuditDeploymentReconnected && a.TargetID == id {
				if a.RemoteAddr != "203.0.113.7" {
					t.Fatalf("reconnect audited from %q, want the forwarded client 203.0.113.7", a.RemoteAddr)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no DeploymentReconnected audit event")
		}
	}
}
