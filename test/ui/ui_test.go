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
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/exo-in-go/exo/pkg/platform/agentkube"
	"github.com/exo-in-go/exo/pkg/platform/api"
	"github.com/exo-in-go/exo/pkg/platform/config"
	"github.com/exo-in-go/exo/pkg/platform/live"
	"github.com/exo-in-go/exo/pkg/platform/platformtest"
	"github.com/exo-in-go/exo/pkg/platform/store"
	"github.com/exo-in-go/exo/pkg/tunnel"
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

// browser is one headless Chromium with a fresh profile.
type browser struct {
	ctx      context.Context
	shots    string
	mu       sync.Mutex
	problems []string
}

func chromiumPath(t *testing.T) string {
	for _, p := range []string{os.Getenv("EXO_CHROMIUM"), os.Getenv("CHROME_PATH"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p != "" {
			if _, err := exec.LookPath(p); err == nil {
				return p
			}
		}
	}
	t.Fatal("Chromium not found: run hack/install-chromium.sh (or set EXO_CHROMIUM)")
	return ""
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })

	shots := os.Getenv("EXO_UI_SCREENSHOTS")
	if shots == "" {
		var err error
		if shots, err = os.MkdirTemp("", "exo-ui-screenshots-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots: %s", shots)
	b := &browser{ctx: ctx, shots: shots}
	// Listen starts the browser and the tab, so start-up is not charged to the first step.
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var parts []string
				for _, a := range ev.Args {
					if a.Description != "" {
						parts = append(parts, a.Description)
					} else {
						parts = append(parts, string(a.Value))
					}
				}
				b.problem("console." + string(ev.Type) + ": " + strings.Join(parts, " "))
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			b.problem(fmt.Sprintf("uncaught exception at %s:%d: %s", d.URL, d.LineNumber, msg))
		}
	})
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

func (b *browser) problem(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, s)
}

func (b *browser) checkConsole(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		t.Errorf("browser: %s", p)
	}
	b.problems = nil
}

// run executes actions with a deadline so a missing element fails the step
// instead of hanging the suite.
func (b *browser) run(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail(t, what, err)
	}
}

// value runs one action that returns a value, with the same deadline.
func value[T any](t *testing.T, b *browser, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.fail(t, what, err)
	}
	return v
}

func (b *browser) fail(t *testing.T, what string, err error) {
	t.Helper()
	sctx, scancel := context.WithTimeout(b.ctx, 5*time.Second)
	shot, _ := chromedp.Run(sctx, chromedp.FullScreenshot(80))
	scancel()
	if len(shot) > 0 {
		_ = os.WriteFile(filepath.Join(b.shots, "failure.jpg"), shot, 0o644)
	}
	b.checkConsole(t)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%s: timed out (see failure.jpg in %s)", what, b.shots)
	}
	t.Fatalf("%s: %v", what, err)
}

// screenshot saves the whole page as name.png at the current viewport.
func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	png := value(t, b, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// narrow takes a screenshot at phone width and restores 1280×800.
func (b *browser) narrow(t *testing.T, name string) {
	t.Helper()
	b.run(t, "narrow viewport", chromedp.EmulateViewport(390, 844))
	if w := eval[[]int](t, b, `[document.documentElement.scrollWidth, document.documentElement.clientWidth]`); w[0] > w[1] {
		t.Errorf("%s: the page scrolls sideways at 390 px (content %d px, viewport %d px)", name, w[0], w[1])
	}
	b.screenshot(t, name+"-narrow")
	b.run(t, "desktop viewport", chromedp.EmulateViewport(1280, 800))
}

func (b *browser) text(t *testing.T, sel string) string {
	t.Helper()
	b.run(t, "wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
	return value(t, b, "read "+sel, chromedp.TextContent(chromedp.CSS(sel)))
}

func eval[T any](t *testing.T, b *browser, js string) T {
	t.Helper()
	return value(t, b, "eval", chromedp.Evaluate[T](js))
}

// markPage sets a marker on window: if it is still there later, the page
// was updated in place, not reloaded.
func (b *browser) markPage(t *testing.T) {
	eval[chromedp.Void](t, b, `window.__exoNoReload = true; window.__exoShift = 0;
new PerformanceObserver((l) => { for (const e of l.getEntries()) if (!e.hadRecentInput) window.__exoShift += e.value; })
  .observe({type: "layout-shift", buffered: false}); true`)
}

func (b *browser) assertNotReloaded(t *testing.T) {
	t.Helper()
	if !eval[bool](t, b, `window.__exoNoReload === true`) {
		t.Fatal("the page was reloaded; the update must arrive live")
	}
}

func (b *browser) layoutShift(t *testing.T) float64 {
	t.Helper()
	return eval[float64](t, b, `window.__exoShift || 0`)
}

func TestDashboardEndToEnd(t *testing.T) {
	p := startPlatform(t)
	b := startBrowser(t)
	start := time.Now()
	defer func() { t.Logf("suite took %s", time.Since(start).Round(time.Millisecond)) }()
	defer b.checkConsole(t)
	const email, password = "ada@example.com", "correct horse battery staple"

	// Sign up.
	b.run(t, "open sign-up", chromedp.Navigate(p.url+"/signup"), chromedp.WaitVisible(chromedp.CSS(`input[name="tenant_name"]`)))
	b.screenshot(t, "01-signup")
	b.run(t, "sign up",
		chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), "Ada Lovelace"),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), email),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), password),
		chromedp.SendKeys(chromedp.CSS(`input[name="tenant_name"]`), "Analytical Engines"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#create-deployment`)),
		chromedp.WaitVisible(chromedp.CSS(`#live-state[data-state="live"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#deployments-table .empty-row`)))
	b.screenshot(t, "02-deployments-empty")

	// Create a deployment: the token and the exact install lines, once.
	b.run(t, "create deployment",
		chromedp.SendKeys(chromedp.CSS(`#create-deployment input[name="name"]`), "prod-eu-west-1"),
		chromedp.Click(chromedp.CSS(`#create-deployment button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#new-token`)))
	token := strings.TrimSpace(b.text(t, "#new-token"))
	if !strings.HasPrefix(token, "exo_dpl_") || len(token) != len("exo_dpl_")+32 {
		t.Fatalf("token %q", token)
	}
	if got, want := b.text(t, "#kubectl-line"), "kubectl create secret generic agentkube-auth -n agentkube-system --from-literal=token="+token; got != want {
		t.Fatalf("kubectl line:\n got %q\nwant %q", got, want)
	}
	if got := b.text(t, "#helm-line"); !strings.Contains(got, "--set manager.managed=true --set manager.baseURL="+p.url) {
		t.Fatalf("helm line %q", got)
	}
	depID := eval[string](t, b, `document.querySelector("#deployments-table tr[data-id]").dataset.id`)
	b.screenshot(t, "03-deployment-token-once")

	b.run(t, "reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#deployments-table tr[data-id="`+depID+`"]`)))
	shown := eval[bool](t, b, fmt.Sprintf(`document.documentElement.outerHTML.includes(%q) || !!document.getElementById("token-panel")`, token))
	if shown {
		t.Fatal("the token is still shown after a reload")
	}
	if s := b.text(t, `#deployments-table tr[data-id="`+depID+`"] .status-cell`); s != "pending" {
		t.Fatalf("status before the operator connects: %q", s)
	}

	// The operator connects with that token: the row turns connected live.
	b.run(t, "wait live", chromedp.WaitVisible(chromedp.CSS(`#live-state[data-state="live"]`)))
	b.markPage(t)
	op := connectOperator(t, p.url, token, nil)
	b.run(t, "deployment turns connected",
		chromedp.WaitVisible(chromedp.CSS(`#deployments-table tr[data-id="`+depID+`"] [data-status="connected"]`)))
	b.assertNotReloaded(t)
	if cls := b.layoutShift(t); cls > 0.01 {
		t.Errorf("the status change shifted the layout (CLS %.4f)", cls)
	}
	if hb := b.text(t, `#deployments-table tr[data-id="`+depID+`"] .heartbeat-cell`); hb == "never" {
		t.Errorf("connected deployment shows no heartbeat")
	}
	b.screenshot(t, "04-deployments-connected")
	b.narrow(t, "04-deployments")

	// An agent appears on the deployment's page without a reload.
	b.run(t, "open agents", chromedp.Click(chromedp.CSS(`#deployments-table tr[data-id="`+depID+`"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`#agents-table .empty-row`)))
	b.markPage(t)
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
	b.run(t, "agent appears", chromedp.WaitVisible(chromedp.CSS(`#agents-table tr[data-agent="default/hello"]`)))
	b.assertNotReloaded(t)
	if got := b.text(t, `#agents-table tr[data-agent="default/hello"]`); !strings.Contains(got, "claude") || !strings.Contains(got, "1/1") || !strings.Contains(got, "hello-run-0") {
		t.Errorf("agent row %q lacks runtime, ready or last run", got)
	}
	b.screenshot(t, "05-agents")
	b.narrow(t, "05-agents")

	// Details and invoke.
	b.run(t, "open agent", chromedp.Click(chromedp.CSS(`#agents-table tr[data-agent="default/hello"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`#runs-table`)), chromedp.WaitVisible(chromedp.CSS(`#invoke-form textarea`)))
	if got := b.text(t, "#agent-info"); !strings.Contains(got, "PodReady") {
		t.Errorf("agent details lack the Ready condition: %q", got)
	}
	b.run(t, "invoke",
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
	b.run(t, "output streams", chromedp.WaitVisible(chromedp.CSS(`#invoke-output`)),
		chromedp.Poll[chromedp.Void](`document.getElementById("invoke-output").textContent.includes("hello from hello")`, chromedp.WithPollingTimeout(20*time.Second)))
	if st := b.text(t, "#invoke-status"); !strings.Contains(st, "Running") {
		t.Errorf("status while the first output is shown: %q, want Running…", st)
	}
	if got := b.text(t, "#invoke-output"); strings.Contains(got, "you said") {
		t.Errorf("output before the rest was sent: %q", got)
	}
	b.screenshot(t, "06-agent-invoke-streaming")
	close(op.proceed)
	b.run(t, "output shown", chromedp.Poll[chromedp.Void](`document.getElementById("invoke-output").textContent.includes("you said: summarise the cluster")`, chromedp.WithPollingTimeout(20*time.Second)))
	if got := b.text(t, "#invoke-output"); strings.Count(got, "hello from hello") != 1 {
		t.Errorf("output shown twice (streamed and from the result): %q", got)
	}
	if st := b.text(t, "#invoke-status"); !strings.Contains(st, "hello-run-1") || !strings.Contains(st, "Succeeded") {
		t.Errorf("invoke status %q", st)
	}
	b.screenshot(t, "06-agent-invoke")
	b.narrow(t, "06-agent")

	// The audit log has those actions.
	b.run(t, "open audit", chromedp.Click(chromedp.CSS(`#sidenav a[href="/audit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#audit-table tr[data-action="deployment.create"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#audit-table tr[data-action="agent.invoke"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#audit-table tr[data-action="auth.signup"]`)))
	b.screenshot(t, "07-audit")
	b.run(t, "filter audit", chromedp.SetValue(chromedp.CSS(`#audit-action`), "agent.invoke"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("audit-action").dispatchEvent(new Event("input", {bubbles: true}))`))
	rows := eval[int](t, b, `document.querySelectorAll("#audit-table tbody tr[data-action]").length`)
	other := eval[int](t, b, `document.querySelectorAll("#audit-table tbody tr[data-action]:not([data-action='agent.invoke'])").length`)
	if rows != 1 || other != 0 {
		t.Errorf("audit filter agent.invoke shows %d rows, %d of other actions", rows, other)
	}
	b.screenshot(t, "08-audit-filtered")

	// Members and sessions render.
	b.run(t, "open members", chromedp.Click(chromedp.CSS(`#sidenav a[href="/members"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#members-table`)), chromedp.WaitVisible(chromedp.CSS(`#invite-form`)))
	b.run(t, "invite", chromedp.SendKeys(chromedp.CSS(`#invite-form input[name="email"]`), "grace@example.com"),
		chromedp.Click(chromedp.CSS(`#invite-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#invites-list`)))
	b.screenshot(t, "09-members")
	b.run(t, "open sessions", chromedp.Click(chromedp.CSS(`#sidenav a[href="/sessions"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#sessions-body .panel, #sessions-body table, #sessions-body .empty`)))
	b.screenshot(t, "10-sessions")

	// Sign out and back in with the password.
	b.run(t, "sign out", chromedp.Click(chromedp.CSS(`#topbar button`)), chromedp.WaitVisible(chromedp.CSS(`input[name="password"]`)))
	b.screenshot(t, "11-sign-in")
	b.narrow(t, "11-sign-in")
	b.run(t, "sign in",
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), email),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), password),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#deployments-table tr[data-id="`+depID+`"] [data-status="connected"]`)))
	b.run(t, "invitation page", chromedp.Navigate(p.url+"/invite/accept?token=not-a-real-token"), chromedp.WaitVisible(chromedp.CSS(`#confirm-form`)))
	b.screenshot(t, "12-accept-invitation")
	if eval[bool](t, b, `location.search.includes("token")`) {
		t.Error("the invitation token stays in the address bar")
	}
}
