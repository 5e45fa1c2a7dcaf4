//go:build linux

package shell

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/exo-in-go/exo/pkg/asciicast"
	"github.com/exo-in-go/exo/pkg/platform/agentkube"
	"github.com/exo-in-go/exo/pkg/platform/shell"
	"github.com/exo-in-go/exo/pkg/platform/store"
	"github.com/exo-in-go/exo/pkg/shellexec"
	"github.com/exo-in-go/exo/test/poll"
)

// fixture is one exo-app with a tenant, a deployment and its operator.
type fixture struct {
	p     *platform
	alice user
	dep   string
	op    *operator
}

func newFixture(t *testing.T, opts shell.Options) *fixture {
	// Heartbeats fast enough that a stalled tunnel would show within a
	// test (TestSlowReaderDoesNotStallOthers).
	p := startPlatform(t, opts, 100*time.Millisecond)
	f := &fixture{p: p, alice: signup(t, p, "alice@example.com")}
	var token string
	f.dep, token = createDeployment(t, p, f.alice, "prod")
	f.op = startOperator(t, p, f.dep, token)
	return f
}

// A shell from the API to a PTY in the agent's pod and back: output,
// resize, exit code, the session record, the recording and the audit log.
func TestShellEndToEnd(t *testing.T) {
	t.Parallel()
	f := newFixture(t, shell.Options{})
	// The operator's snapshot reached the hub: the dashboard lists the agent
	// with its running pod, where the shell is opened from.
	poll.UntilTrue(t, "the dashboard lists the agent's pod", 30*time.Second, func() bool {
		var agents struct {
			Items []agentkube.AgentSummary `json:"items"`
		}
		apiCall(t, f.p, f.alice.token, "GET", "/api/v1/deployments/"+f.dep+"/agents", nil, http.StatusOK, &agents)
		return len(agents.Items) == 1 && agents.Items[0].Name == cluster.agent &&
			agents.Items[0].PodName == cluster.agent && agents.Items[0].PodPhase == string(corev1.PodRunning)
	})
	tm := openTerm(t, f.p, f.alice, f.dep)
	sess := tm.waitMsg("session")
	started := tm.waitMsg("started")
	if started["pod"] != cluster.agent || started["container"] != shellexec.DefaultContainer {
		t.Fatalf("started = %v", started)
	}
	// The quotes keep the command's echo from matching the output.
	tm.send("echo hel''lo\r")
	tm.waitOutput("hello\r\n")
	tm.resize(120, 40)
	tm.send("stty size\r")
	tm.waitOutput("40 120")
	tm.send("exit 3\r")
	exit := tm.waitMsg("exit")
	if exit["exit_code"] != float64(3) || exit["reason"] != shell.EndExited {
		t.Fatalf("exit = %v", exit)
	}

	id := sess["session_id"].(string)
	var got struct {
		store.ShellSession
		DurationSeconds float64 `json:"duration_seconds"`
		Active          bool    `json:"active"`
	}
	poll.UntilTrue(t, "the session is recorded as ended", 30*time.Second, func() bool {
		apiCall(t, f.p, f.alice.token, "GET", "/api/v1/sessions/"+id, nil, http.StatusOK, &got)
		return !got.Active
	})
	if got.UserEmail != f.alice.email || got.Agent != cluster.agent || got.Namespace != cluster.namespace ||
		got.Pod != cluster.agent || got.ExitCode == nil || *got.ExitCode != 3 || got.EndReason != shell.EndExited ||
		got.DurationSeconds <= 0 || got.InputRecorded {
		t.Fatalf("session = %+v", got)
	}
	var list struct {
		Items []store.ShellSession `json:"items"`
	}
	apiCall(t, f.p, f.alice.token, "GET", "/api/v1/sessions", nil, http.StatusOK, &list)
	if len(list.Items) != 1 || list.Items[0].ID != id {
		t.Fatalf("sessions = %+v", list.Items)
	}

	events := recording(t, f.p, f.alice, id)
	if !hasEvent(events, asciicast.CodeOutput, "hello\r\n") || !hasEvent(events, asciicast.CodeResize, "120x40") {
		t.Fatalf("recording lacks the output or the resize: %+v", events)
	}
	if hasCode(events, asciicast.CodeInput) {
		t.Fatal("input recorded although the tenant did not enable it")
	}

	var audit struct {
		Items []store.AuditEvent `json:"items"`
	}
	apiCall(t, f.p, f.alice.token, "GET", "/api/v1/audit", nil, http.StatusOK, &audit)
	var opened, closed bool
	for _, e := range audit.Items {
		opened = opened || (e.Action == shell.AuditShellOpened && e.TargetID == id)
		closed = closed || (e.Action == shell.AuditShellClosed && e.TargetID == id && strings.Contains(e.Detail, `"exit_code":3`))
	}
	if !opened || !closed {
		t.Fatalf("audit events for %s missing: %+v", id, audit.Items)
	}

	// With the tenant setting on, keystrokes are recorded too.
	apiCall(t, f.p, f.alice.token, "PUT", "/api/v1/shell-settings", map[string]bool{"record_input": true}, http.StatusOK, nil)
	tm2 := openTerm(t, f.p, f.alice, f.dep)
	id2 := tm2.waitMsg("session")["session_id"].(string)
	tm2.waitMsg("started")
	tm2.send("exit\r")
	if exit := tm2.waitMsg("exit"); exit["exit_code"] != float64(0) {
		t.Fatalf("exit = %v", exit)
	}
	poll.UntilTrue(t, "the second session ends", 30*time.Second, func() bool { return f.p.shell.Active() == 0 })
	if events := recording(t, f.p, f.alice, id2); !hasEvent(events, asciicast.CodeInput, "exit\r") {
		t.Fatalf("input not recorded: %+v", events)
	}
	poll.UntilTrue(t, "the operator's sessions end", 30*time.Second, func() bool { return f.op.exec.Active() == 0 })
}

// The security properties of grants and of the WebSocket handshake.
func TestGrantsAndOrigin(t *testing.T) {
	t.Parallel()
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	f := newFixture(t, shell.Options{Now: clock})
	bob := signup(t, f.p, "bob@example.com")
	bobDep, _ := createDeployment(t, f.p, bob, "bobs")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	refused := func(t *testing.T, g shell.GrantResponse, token, origin string, want int) {
		t.Helper()
		ws, res, err := dialShell(ctx, g.WSURL, token, origin)
		if err == nil {
			ws.Close()
			t.Fatal("shell WebSocket opened, want refusal")
		}
		if res == nil || res.StatusCode != want {
			t.Fatalf("dial: %v, response %v, want status %d", err, res, want)
		}
	}
	accepted := func(t *testing.T, g shell.GrantResponse, token string) {
		t.Helper()
		ws, res, err := dialShell(ctx, g.WSURL, token, f.p.url)
		if err != nil {
			t.Fatalf("dial: %v (%v)", err, res)
		}
		ws.Close()
	}

	t.Run("reused grant", func(t *testing.T) {
		g := grantShell(t, f.p, f.alice, f.dep)
		accepted(t, g, f.alice.token)
		refused(t, g, f.alice.token, f.p.url, http.StatusForbidden)
	})
	t.Run("expired grant", func(t *testing.T) {
		g := grantShell(t, f.p, f.alice, f.dep)
		offset.Add(int64(61 * time.Second))
		defer offset.Add(-int64(61 * time.Second))
		refused(t, g, f.alice.token, f.p.url, http.StatusForbidden)
	})
	t.Run("another tenant's deployment", func(t *testing.T) {
		apiCall(t, f.p, bob.token, "POST", fmt.Sprintf("/api/v1/deployments/%s/agents/%s/%s/shell", f.dep, cluster.namespace, cluster.agent), nil, http.StatusNotFound, nil)
		// Selecting alice's tenant is refused: bob is no member.
		req, _ := http.NewRequestWithContext(ctx, "POST", f.p.url+fmt.Sprintf("/api/v1/deployments/%s/agents/%s/%s/shell", f.dep, cluster.namespace, cluster.agent), nil)
		req.Header.Set("Authorization", "Bearer "+bob.token)
		req.Header.Set("X-Tenant-ID", f.alice.tenantID)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusForbidden {
			t.Fatalf("X-Tenant-ID of another tenant: %d, want 403", res.StatusCode)
		}
	})
	t.Run("grant redeemed with another tenant's token", func(t *testing.T) {
		g := grantShell(t, f.p, f.alice, f.dep)
		refused(t, g, bob.token, f.p.url, http.StatusForbidden)
		// The attempt spent the grant: its owner cannot use it either.
		refused(t, g, f.alice.token, f.p.url, http.StatusForbidden)
	})
	t.Run("foreign origin", func(t *testing.T) {
		g := grantShell(t, f.p, f.alice, f.dep)
		refused(t, g, f.alice.token, "https://evil.example", http.StatusForbidden)
		refused(t, g, f.alice.token, "", http.StatusForbidden)
		refused(t, g, f.alice.token, strings.Replace(f.p.url, "127.0.0.1", "localhost", 1), http.StatusForbidden)
		// A refused origin never touches the grant.
		accepted(t, g, f.alice.token)
	})
	t.Run("no token", func(t *testing.T) {
		g := grantShell(t, f.p, f.alice, f.dep)
		refused(t, g, "", f.p.url, http.StatusUnauthorized)
	})
	t.Run("unknown grant", func(t *testing.T) {
		g := grantShell(t, f.p, f.alice, f.dep)
		g.WSURL = g.WSURL[:len(g.WSURL)-4] + "AAAA"
		refused(t, g, f.alice.token, f.p.url, http.StatusForbidden)
	})
	t.Run("operator not connected", func(t *testing.T) {
		apiCall(t, f.p, bob.token, "POST", fmt.Sprintf("/api/v1/deployments/%s/agents/%s/%s/shell", bobDep, cluster.namespace, cluster.agent), nil, http.StatusConflict, nil)
	})
	t.Run("bad agent name", func(t *testing.T) {
		apiCall(t, f.p, f.alice.token, "POST", fmt.Sprintf("/api/v1/deployments/%s/agents/%s/%s/shell", f.dep, "Bad_NS", cluster.agent), nil, http.StatusBadRequest, nil)
	})
	t.Run("recordings are tenant-scoped", func(t *testing.T) {
		var list struct {
			Items []store.ShellSession `json:"items"`
		}
		apiCall(t, f.p, f.alice.token, "GET", "/api/v1/sessions", nil, http.StatusOK, &list)
		if len(list.Items) == 0 {
			t.Fatal("alice has no sessions")
		}
		apiCall(t, f.p, bob.token, "GET", "/api/v1/sessions/"+list.Items[0].ID+"/recording", nil, http.StatusNotFound, nil)
		var bobs struct {
			Items []store.ShellSession `json:"items"`
		}
		apiCall(t, f.p, bob.token, "GET", "/api/v1/sessions", nil, http.StatusOK, &bobs)
		if len(bobs.Items) != 0 {
			t.Fatalf("bob sees %d sessions of another tenant", len(bobs.Items))
		}
	})
	poll.UntilTrue(t, "every session ends", 30*time.Second, func() bool { return f.p.shell.Active() == 0 && f.op.exec.Active() == 0 })
}

// A pod name alone does not open a shell: the pod must be the Agent's.
func TestRefusesPodsThatAreNotTheAgents(t *testing.T) {
	t.Parallel()
	f := newFixture(t, shell.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: cluster.namespace, Name: "not-an-agent"},
		Spec:       corev1.PodSpec{NodeName: cluster.node.Name(), Containers: []corev1.Container{{Name: shellexec.DefaultContainer, Image: "example.com/not-an-agent:1"}}},
	}
	if _, err := cluster.Kube.CoreV1().Pods(cluster.namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = cluster.Kube.CoreV1().Pods(cluster.namespace).Delete(ctx, pod.Name, *metav1.NewDeleteOptions(0))
	})
	// Running, so only ownership can be why it is refused.
	poll.UntilTrue(t, "the node runs the pod", 30*time.Second, func() bool {
		p, err := cluster.Kube.CoreV1().Pods(cluster.namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning
	})
	var g shell.GrantResponse
	apiCall(t, f.p, f.alice.token, "POST", fmt.Sprintf("/api/v1/deployments/%s/agents/%s/%s/shell", f.dep, cluster.namespace, pod.Name), nil, http.StatusCreated, &g)
	ws, _, err := dialShell(ctx, g.WSURL, f.alice.token, f.p.url)
	if err != nil {
		t.Fatal(err)
	}
	tm := &term{t: t, ws: ws, cond: make(chan struct{}, 1), done: make(chan struct{})}
	go tm.read()
	defer func() { ws.Close(); <-tm.done }()
	exit := tm.waitMsg("exit")
	e, _ := exit["error"].(map[string]any)
	if e["code"] != "not_found" || exit["exit_code"] != nil {
		t.Fatalf("exit = %v, want a not_found error", exit)
	}
}

// A browser that stops reading holds up only its own shell: heartbeats,
// deltas and another shell on the same tunnel go on; once it is gone
// everything ends.
func TestSlowReaderDoesNotStallOthers(t *testing.T) {
	t.Parallel()
	f := newFixture(t, shell.Options{BrowserWriteTimeout: time.Hour})
	// The stalled browser: opens a shell, starts a flood of output, and never reads again.
	g := grantShell(t, f.p, f.alice, f.dep)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stalled, _, err := dialShell(ctx, g.WSURL, f.alice.token, f.p.url)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	if err := stalled.WriteMessage(websocket.BinaryMessage, []byte("while :; do cat /etc/services; done\r")); err != nil {
		t.Fatal(err)
	}
	// Wait until its stream is out of credit: the platform's relay for it
	// is blocked writing to the browser, so the operator's sender waits.
	poll.UntilTrue(t, "the stalled shell runs", 30*time.Second, func() bool { return f.p.shell.Active() == 1 && f.op.exec.Active() == 1 })
	// Give the flood time to fill the socket buffers and the stream's
	// window; what follows holds however full they are.
	time.Sleep(time.Second)

	// The hub's last-seen time moves only with control frames (heartbeats,
	// deltas), never with shell streams.
	before := clusterView(t, f)
	if !before.Connected || before.Status != store.StatusConnected || before.LastSeenAt == nil {
		t.Fatalf("cluster view while stalled: %+v", before)
	}
	tm := openTerm(t, f.p, f.alice, f.dep)
	tm.waitMsg("started")
	for i := range 20 {
		tm.send(fmt.Sprintf("echo round''trip-%d\r", i))
		tm.waitOutput(fmt.Sprintf("roundtrip-%d\r\n", i))
	}
	poll.UntilTrue(t, "heartbeats keep arriving", 30*time.Second, func() bool {
		v := clusterView(t, f)
		// Five heartbeat intervals on, and still connected.
		return v.Status == store.StatusConnected && v.LastSeenAt.Sub(*before.LastSeenAt) >= 500*time.Millisecond
	})
	// A change in the cluster still reaches the platform as a delta (the
	// view carries no annotations, so the new resourceVersion shows it).
	stamp := fmt.Sprintf("stalled-%d", time.Now().UnixNano())
	patch := fmt.Sprintf(`{"metadata":{"annotations":{"test.exo/slow-reader":%q}}}`, stamp)
	patched, err := cluster.Agentkube.AgentkubeV1alpha1().Agents(cluster.namespace).Patch(ctx, cluster.agent, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	poll.UntilTrue(t, "the delta arrives", 30*time.Second, func() bool {
		for _, o := range clusterView(t, f).Objects {
			if o.Kind == "Agent" && o.Name == cluster.agent && o.ResourceVersion == patched.ResourceVersion {
				return true
			}
		}
		return false
	})
	tm.send("exit\r")
	tm.waitMsg("exit")

	// The stalled browser goes away: its shell, exec and process end.
	stalled.Close()
	poll.UntilTrue(t, "every session ends", 30*time.Second, func() bool { return f.p.shell.Active() == 0 && f.op.exec.Active() == 0 })
	poll.UntilTrue(t, "the flooding shell's processes end", 30*time.Second, func() bool { return len(shellProcesses("/etc/services")) == 0 })
}

// clusterView is the deployment as the dashboard sees it through the hub.
func clusterView(t *testing.T, f *fixture) agentkube.ClusterView {
	t.Helper()
	var v agentkube.ClusterView
	apiCall(t, f.p, f.alice.token, "GET", "/api/v1/deployments/"+f.dep+"/cluster", nil, http.StatusOK, &v)
	return v
}

// Sessions end cleanly from every side.
func TestSessionEnds(t *testing.T) {
	t.Parallel()
	t.Run("browser goes away", func(t *testing.T) {
		f := newFixture(t, shell.Options{})
		tm := openTerm(t, f.p, f.alice, f.dep)
		id := tm.waitMsg("session")["session_id"].(string)
		tm.waitMsg("started")
		tm.send("sleep 1001\r")
		poll.UntilTrue(t, "sleep runs in the pod", 30*time.Second, func() bool { return len(shellProcesses("sleep 1001")) == 1 })
		tm.ws.Close()
		poll.UntilTrue(t, "the session ends", 30*time.Second, func() bool { return f.p.shell.Active() == 0 && f.op.exec.Active() == 0 })
		// The node ends the exec's processes with the exec stream.
		poll.UntilTrue(t, "sleep ends", 30*time.Second, func() bool { return len(shellProcesses("sleep 1001")) == 0 })
		s := getSession(t, f, id)
		if s.EndReason != shell.EndBrowserClosed {
			t.Fatalf("end reason %q", s.EndReason)
		}
	})
	t.Run("tunnel goes away", func(t *testing.T) {
		f := newFixture(t, shell.Options{})
		tm := openTerm(t, f.p, f.alice, f.dep)
		tm.waitMsg("started")
		f.op.stop()
		exit := tm.waitMsg("exit")
		if exit["reason"] != shell.EndTunnelClosed {
			t.Fatalf("exit = %v", exit)
		}
		poll.UntilTrue(t, "the session ends", 30*time.Second, func() bool { return f.p.shell.Active() == 0 && f.op.exec.Active() == 0 })
	})
	t.Run("process goes away", func(t *testing.T) {
		f := newFixture(t, shell.Options{})
		tm := openTerm(t, f.p, f.alice, f.dep)
		tm.waitMsg("started")
		tm.send("kill -9 $$\r")
		exit := tm.waitMsg("exit")
		if exit["exit_code"] == nil && exit["error"] == nil {
			t.Fatalf("exit = %v, want an exit code or an error", exit)
		}
		poll.UntilTrue(t, "the session ends", 30*time.Second, func() bool { return f.p.shell.Active() == 0 && f.op.exec.Active() == 0 })
	})
	t.Run("exo-app shuts down", func(t *testing.T) {
		f := newFixture(t, shell.Options{})
		tm := openTerm(t, f.p, f.alice, f.dep)
		tm.waitMsg("started")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := f.p.app.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if exit := tm.waitMsg("exit"); exit["reason"] != shell.EndShutdown {
			t.Fatalf("exit = %v", exit)
		}
	})
}

func getSession(t *testing.T, f *fixture, id string) store.ShellSession {
	t.Helper()
	var s store.ShellSession
	apiCall(t, f.p, f.alice.token, "GET", "/api/v1/sessions/"+id, nil, http.StatusOK, &s)
	return s
}

// recording downloads and validates a session's asciicast file.
func recording(t *testing.T, p *platform, u user, id string) []asciicast.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", p.url+"/api/v1/sessions/"+id+"/recording", nil)
	req.Header.Set("Authorization", "Bearer "+u.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/x-asciicast" {
		t.Fatalf("recording: %d %s %s", res.StatusCode, res.Header.Get("Content-Type"), b)
	}
	if _, _, err := asciicast.Validate(bytes.NewReader(b)); err != nil {
		t.Fatalf("invalid recording: %v\n%s", err, b)
	}
	r, err := asciicast.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if h := r.Header(); h.Width != 100 || h.Height != 30 {
		t.Fatalf("recording header %+v, want the granted 100x30", h)
	}
	var events []asciicast.Event
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			return events
		}
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
}

func hasEvent(events []asciicast.Event, code, substr string) bool {
	var all strings.Builder
	for _, e := range events {
		if e.Code == code {
			all.WriteString(e.Data)
		}
	}
	return strings.Contains(all.String(), substr)
}

func hasCode(events []asciicast.Event, code string) bool {
	for _, e := range events {
		if e.Code == code {
			return true
		}
	}
	return false
}
