// Package ui_test drives the embedded dashboard in a real Chromium
// (chromedp) against a real exo-app: the API, the live event stream and the
// operator tunnel, with a simulated operator speaking the tunnel protocol
// over a real WebSocket. Screenshots of every page go to $EXO_UI_SCREENSHOTS
// (or a temporary directory printed in the log); any console error or
// uncaught exception in the page fails the suite.
package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/exo-in-go/exo/pkg/platform/agentkube"
	"github.com/exo-in-go/exo/pkg/platform/api"
	"github.com/exo-in-go/exo/pkg/platform/config"
	"github.com/exo-in-go/exo/pkg/platform/live"
	"github.com/exo-in-go/exo/pkg/platform/platformtest"
	"github.com/exo-in-go/exo/pkg/platform/store"
	"github.com/exo-in-go/exo/pkg/tunnel"
	"github.com/exo-in-go/exo/test/browser"
)

// platform is exo-app wired like cmd/exo-app: SQLite store behind the
// publishing wrapper, the API, the events endpoint and the tunnel.
type platform struct {
	url string
	srv *api.Server
}

func startPlatform(t *testing.T) *platform {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	env := map[string]string{"EXO_BASE_URL": base, "EXO_LOG_LEVEL": "warn", "EXO_CAST_STORAGE_DIR": t.TempDir()}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, platformtest.DSN(t, "sqlite"), nil)
	if err != nil {
		t.Fatal(err)
	}
	hub := live.NewHub(live.Options{})
	srv, err := api.New(api.Options{Config: cfg, Store: live.PublishingStore(st, hub)})
	if err != nil {
		t.Fatal(err)
	}
	srv.Handle("GET /api/v1/events", live.Handler(live.HandlerOptions{Hub: hub, Auth: srv, Draining: srv.Draining(), Logger: srv.Logger()}))
	if _, err := agentkube.Mount(srv, agentkube.Options{}); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-errc; err != nil {
			t.Errorf("serve: %v", err)
		}
		hub.Close()
		st.Close()
	})
	return &platform{url: base, srv: srv}
}

// operator is a simulated agentkube-manager: it dials the tunnel with the
// deployment token, says hello, sends a snapshot, heartbeats, and answers
// invoke_agent requests.
type operator struct {
	t       *testing.T
	conn    *tunnel.Conn
	done    chan struct{}
	stopHB  chan struct{}
	gen     uint64
	invokes chan tunnel.InvokeAgent
	// proceed lets a streamed invocation finish after its first output.
	proceed chan struct{}
	welcome chan struct{}
	once    sync.Once
}

func connectOperator(t *testing.T, baseURL, token string, objects []tunnel.Object) *operator {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	u, err := tunnel.ConnectURL(baseURL)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := tunnel.Dial(ctx, u, token, nil, 10*time.Second)
	if err != nil {
		t.Fatalf("operator dial: %v", err)
	}
	o := &operator{t: t, conn: tunnel.NewConn(ws, tunnel.Options{}), done: make(chan struct{}), stopHB: make(chan struct{}),
		gen: 1, invokes: make(chan tunnel.InvokeAgent, 4), proceed: make(chan struct{}), welcome: make(chan struct{})}
	go func() {
		defer close(o.done)
		_ = o.conn.Run(context.Background(), o.handle)
	}()
	t.Cleanup(o.close)
	o.send(tunnel.TypeHello, "hello-1", tunnel.Hello{ClusterID: "ui-test-cluster", OperatorVersion: "ui-test"})
	select {
	case <-o.welcome:
	case <-time.After(15 * time.Second):
		t.Fatal("no welcome from the platform")
	}
	o.send(tunnel.TypeSnapshot, "", tunnel.Snapshot{Generation: o.gen, Objects: objects, Final: true})
	go func() {
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for seq := uint64(1); ; seq++ {
			select {
			case <-o.stopHB:
				return
			case <-o.conn.Done():
				return
			case now := <-tick.C:
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_ = o.conn.Send(ctx, tunnel.TypeHeartbeat, "", tunnel.Heartbeat{Seq: seq, Time: now})
				cancel()
			}
		}
	}()
	return o
}

func (o *operator) handle(f tunnel.Frame) {
	switch f.Type {
	case tunnel.TypeWelcome:
		o.once.Do(func() { close(o.welcome) })
	case tunnel.TypeInvokeAgent:
		var req tunnel.InvokeAgent
		if err := f.Unmarshal(&req); err != nil {
			return
		}
		// The output stream is registered before the next frame is read,
		// as the real operator does.
		var out *tunnel.Stream
		if req.OutputStream != 0 {
			out, _ = o.conn.OpenStream(req.OutputStream)
		}
		o.invokes <- req
		// Answer off the read goroutine, as the real operator does: the
		// first line of output, then (once the test has seen it arrive
		// while the run is still going) the rest and the result.
		go func() {
			code := int32(0)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			first, rest := "hello from "+req.Name+"\n", "you said: "+req.Input+"\n"
			res := tunnel.InvokeAgentResult{
				RunName: req.Name + "-run-1", Phase: "Succeeded", ExitCode: &code, Output: first + rest,
			}
			if out != nil {
				_ = out.Send(ctx, tunnel.TypeInvokeAgentOutput, "", tunnel.InvokeAgentOutput{Data: first})
				select {
				case <-o.proceed:
				case <-ctx.Done():
				}
				_ = out.Send(ctx, tunnel.TypeInvokeAgentOutput, "", tunnel.InvokeAgentOutput{Data: rest})
				_ = out.Send(ctx, tunnel.TypeInvokeAgentOutputEnd, "", tunnel.InvokeAgentOutputEnd{})
				res.OutputStreamed = true
			}
			_ = o.conn.Send(ctx, tunnel.TypeInvokeAgentResult, f.ID, res)
		}()
	}
}

func (o *operator) send(typ, id string, payload any) {
	o.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := o.conn.Send(ctx, typ, id, payload); err != nil {
		o.t.Fatalf("operator send %s: %v", typ, err)
	}
}

func (o *operator) upsert(objs ...tunnel.Object) {
	o.t.Helper()
	changes := make([]tunnel.Change, len(objs))
	for i, obj := range objs {
		changes[i] = tunnel.Change{Op: tunnel.OpUpsert, Object: obj}
	}
	o.send(tunnel.TypeDelta, "", tunnel.Delta{Generation: o.gen, Changes: changes})
}

func (o *operator) close() {
	select {
	case <-o.stopHB:
	default:
		close(o.stopHB)
	}
	o.conn.Close(1000, "test done")
	<-o.done
}

func object(t *testing.T, kind, ns, name string, v map[string]any) tunnel.Object {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return tunnel.Object{Kind: kind, Namespace: ns, Name: name, UID: kind + "-" + name, ResourceVersion: "1", Object: b}
}

func TestDashboardEndToEnd(t *testing.T) {
	p := startPlatform(t)
	b := browser.Start(t)
	start := time.Now()
	defer func() { t.Logf("suite took %s", time.Since(start).Round(time.Millisecond)) }()
	defer b.CheckConsole(t)
	const email, password = "ada@example.com", "correct horse battery staple"

	// Sign up.
	b.Run(t, "open sign-up", chromedp.Navigate(p.url+"/signup"), chromedp.WaitVisible(chromedp.CSS(`input[name="tenant_name"]`)))
	b.Screenshot(t, "01-signup")
	b.Run(t, "sign up",
		chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), "Ada Lovelace"),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), email),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), password),
		chromedp.SendKeys(chromedp.CSS(`input[name="tenant_name"]`), "Analytical Engines"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#create-deployment`)),
		chromedp.WaitVisible(chromedp.CSS(`#live-state[data-state="live"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#deployments-table .empty-row`)))
	b.Screenshot(t, "02-deployments-empty")

	// Create a deployment: the token and the exact install lines, once.
	b.Run(t, "create deployment",
		chromedp.SendKeys(chromedp.CSS(`#create-deployment input[name="name"]`), "prod-eu-west-1"),
		chromedp.Click(chromedp.CSS(`#create-deployment button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#new-token`)))
	token := strings.TrimSpace(b.Text(t, "#new-token"))
	if !strings.HasPrefix(token, "exo_dpl_") || len(token) != len("exo_dpl_")+32 {
		t.Fatalf("token %q", token)
	}
	if got, want := b.Text(t, "#kubectl-line"), "kubectl create secret generic agentkube-auth -n agentkube-system --from-literal=token="+token; got != want {
		t.Fatalf("kubectl line:\n got %q\nwant %q", got, want)
	}
	if got := b.Text(t, "#helm-line"); !strings.Contains(got, "--set manager.managed=true --set manager.baseURL="+p.url) {
		t.Fatalf("helm line %q", got)
	}
	depID := browser.Eval[string](t, b, `document.querySelector("#deployments-table tr[data-id]").dataset.id`)
	b.Screenshot(t, "03-deployment-token-once")

	b.Run(t, "reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#deployments-table tr[data-id="`+depID+`"]`)))
	shown := browser.Eval[bool](t, b, fmt.Sprintf(`document.documentElement.outerHTML.includes(%q) || !!document.getElementById("token-panel")`, token))
	if shown {
		t.Fatal("the token is still shown after a reload")
	}
	if s := b.Text(t, `#deployments-table tr[data-id="`+depID+`"] .status-cell`); s != "pending" {
		t.Fatalf("status before the operator connects: %q", s)
	}

	// The operator connects with that token: the row turns connected live.
	b.Run(t, "wait live", chromedp.WaitVisible(chromedp.CSS(`#live-state[data-state="live"]`)))
	b.MarkPage(t)
	op := connectOperator(t, p.url, token, nil)
	b.Run(t, "deployment turns connected",
		chromedp.WaitVisible(chromedp.CSS(`#deployments-table tr[data-id="`+depID+`"] [data-status="connected"]`)))
	b.AssertNotReloaded(t)
	if cls := b.LayoutShift(t); cls > 0.01 {
		t.Errorf("the status change shifted the layout (CLS %.4f)", cls)
	}
	if hb := b.Text(t, `#deployments-table tr[data-id="`+depID+`"] .heartbeat-cell`); hb == "never" {
		t.Errorf("connected deployment shows no heartbeat")
	}
	b.Screenshot(t, "04-deployments-connected")
	b.Narrow(t, "04-deployments")

	// An agent appears on the deployment's page without a reload.
	b.Run(t, "open agents", chromedp.Click(chromedp.CSS(`#deployments-table tr[data-id="`+depID+`"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`#agents-table .empty-row`)))
	b.MarkPage(t)
	created := time.Now().UTC().Format(time.RFC3339)
	op.upsert(
		object(t, "Agent", "default", "hello", map[string]any{
			"apiVersion": "agentkube.io/v1alpha1", "kind": "Agent",
			"metadata": map[string]any{"name": "hello", "namespace": "default", "creationTimestamp": created},
			"spec":     map[string]any{"runtime": "claude", "mode": "task"},
			"status": map[string]any{"phase": "Ready", "ready": "1/1", "podName": "hello", "lastRun": "hello-run-0",
				"conditions": []map[string]any{{"type": "Ready", "status": "True", "reason": "PodReady", "message": "the agent's pod is ready", "lastTransitionTime": created}}},
		}),
		object(t, "Pod", "default", "hello", map[string]any{"metadata": map[string]any{"name": "hello", "namespace": "default"}, "status": map[string]any{"phase": "Running"}}),
		object(t, "AgentRun", "default", "hello-run-0", map[string]any{
			"metadata": map[string]any{"name": "hello-run-0", "namespace": "default", "creationTimestamp": created},
			"spec":     map[string]any{"agentRef": map[string]any{"name": "hello"}, "input": "warm up", "trigger": "manual"},
			"status":   map[string]any{"phase": "Succeeded", "exitCode": 0, "startTime": created},
		}))
	b.Run(t, "agent appears", chromedp.WaitVisible(chromedp.CSS(`#agents-table tr[data-agent="default/hello"]`)))
	b.AssertNotReloaded(t)
	if got := b.Text(t, `#agents-table tr[data-agent="default/hello"]`); !strings.Contains(got, "claude") || !strings.Contains(got, "1/1") || !strings.Contains(got, "hello-run-0") {
		t.Errorf("agent row %q lacks runtime, ready or last run", got)
	}
	b.Screenshot(t, "05-agents")
	b.Narrow(t, "05-agents")

	// Details and invoke.
	b.Run(t, "open agent", chromedp.Click(chromedp.CSS(`#agents-table tr[data-agent="default/hello"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`#runs-table`)), chromedp.WaitVisible(chromedp.CSS(`#invoke-form textarea`)))
	if got := b.Text(t, "#agent-info"); !strings.Contains(got, "PodReady") {
		t.Errorf("agent details lack the Ready condition: %q", got)
	}
	b.Run(t, "invoke",
		chromedp.SendKeys(chromedp.CSS(`#invoke-form textarea`), "summarise the cluster"),
		chromedp.Click(chromedp.CSS(`#invoke-form button[type="submit"]`)))
	select {
	case req := <-op.invokes:
		if req.Namespace != "default" || req.Name != "hello" || req.Input != "summarise the cluster" || req.RequestedBy != email {
			t.Errorf("operator received %+v", req)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the operator never received invoke_agent")
	}
	// The first output is on the page while the run is still going: it
	// streamed rather than arriving with the result.
	b.Run(t, "output streams", chromedp.WaitVisible(chromedp.CSS(`#invoke-output`)),
		chromedp.Poll[chromedp.Void](`document.getElementById("invoke-output").textContent.includes("hello from hello")`, chromedp.WithPollingTimeout(20*time.Second)))
	if st := b.Text(t, "#invoke-status"); !strings.Contains(st, "Running") {
		t.Errorf("status while the first output is shown: %q, want Running…", st)
	}
	if got := b.Text(t, "#invoke-output"); strings.Contains(got, "you said") {
		t.Errorf("output before the rest was sent: %q", got)
	}
	b.Screenshot(t, "06-agent-invoke-streaming")
	close(op.proceed)
	b.Run(t, "output shown", chromedp.Poll[chromedp.Void](`document.getElementById("invoke-output").textContent.includes("you said: summarise the cluster")`, chromedp.WithPollingTimeout(20*time.Second)))
	if got := b.Text(t, "#invoke-output"); strings.Count(got, "hello from hello") != 1 {
		t.Errorf("output shown twice (streamed and from the result): %q", got)
	}
	if st := b.Text(t, "#invoke-status"); !strings.Contains(st, "hello-run-1") || !strings.Contains(st, "Succeeded") {
		t.Errorf("invoke status %q", st)
	}
	b.Screenshot(t, "06-agent-invoke")
	b.Narrow(t, "06-agent")

	// The audit log has those actions.
	b.Run(t, "open audit", chromedp.Click(chromedp.CSS(`#sidenav a[href="/audit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#audit-table tr[data-action="deployment.create"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#audit-table tr[data-action="agent.invoke"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#audit-table tr[data-action="auth.signup"]`)))
	b.Screenshot(t, "07-audit")
	b.Run(t, "filter audit", chromedp.SetValue(chromedp.CSS(`#audit-action`), "agent.invoke"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("audit-action").dispatchEvent(new Event("input", {bubbles: true}))`))
	rows := browser.Eval[int](t, b, `document.querySelectorAll("#audit-table tbody tr[data-action]").length`)
	other := browser.Eval[int](t, b, `document.querySelectorAll("#audit-table tbody tr[data-action]:not([data-action='agent.invoke'])").length`)
	if rows != 1 || other != 0 {
		t.Errorf("audit filter agent.invoke shows %d rows, %d of other actions", rows, other)
	}
	b.Screenshot(t, "08-audit-filtered")

	// Members and sessions render.
	b.Run(t, "open members", chromedp.Click(chromedp.CSS(`#sidenav a[href="/members"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#members-table`)), chromedp.WaitVisible(chromedp.CSS(`#invite-form`)))
	b.Run(t, "invite", chromedp.SendKeys(chromedp.CSS(`#invite-form input[name="email"]`), "grace@example.com"),
		chromedp.Click(chromedp.CSS(`#invite-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#invites-list`)))
	b.Screenshot(t, "09-members")
	b.Run(t, "open sessions", chromedp.Click(chromedp.CSS(`#sidenav a[href="/sessions"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#sessions-body .panel, #sessions-body table, #sessions-body .empty`)))
	b.Screenshot(t, "10-sessions")

	// Sign out and back in with the password.
	b.Run(t, "sign out", chromedp.Click(chromedp.CSS(`#topbar button`)), chromedp.WaitVisible(chromedp.CSS(`input[name="password"]`)))
	b.Screenshot(t, "11-sign-in")
	b.Narrow(t, "11-sign-in")
	b.Run(t, "sign in",
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), email),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), password),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#deployments-table tr[data-id="`+depID+`"] [data-status="connected"]`)))
	b.Run(t, "invitation page", chromedp.Navigate(p.url+"/invite/accept?token=not-a-real-token"), chromedp.WaitVisible(chromedp.CSS(`#confirm-form`)))
	b.Screenshot(t, "12-accept-invitation")
	if browser.Eval[bool](t, b, `location.search.includes("token")`) {
		t.Error("the invitation token stays in the address bar")
	}
}
