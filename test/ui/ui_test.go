// Package ui_test drives the embedded dashboard in a real Chromium
// (chromedp) against a real exo-app (pkg/platform/app: the API, the live
// event stream, the operator tunnel and the shell) and a real cluster behind
// a real operator: the tunnel connector started with the token the page
// showed, agentkube-manager's controllers, and Agent pods on localnode
// running the real agentlet (cluster_test.go). Screenshots of every page go to $EXO_UI_SCREENSHOTS
// (or a temporary directory printed in the log); any console error or
// uncaught exception in the page fails the suite.
package ui_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/connect"
	"github.com/exo-in-go/exo/pkg/platform/app"
	"github.com/exo-in-go/exo/pkg/platform/config"
	"github.com/exo-in-go/exo/pkg/platform/platformtest"
	"github.com/exo-in-go/exo/test/browser"
)

// platform is exo-app as cmd/exo-app assembles it (pkg/platform/app): the
// API, the events endpoint, the operator tunnel and the shell, on SQLite.
type platform struct {
	url string
	app *app.App
}

func startPlatform(t *testing.T) *platform {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	env := map[string]string{"EXO_BASE_URL": base, "EXO_LOG_LEVEL": "warn", "EXO_CAST_STORAGE_DIR": t.TempDir(), "EXO_DEV_MODE": "true",
		"EXO_DATABASE_DSN": platformtest.DSN(t, "sqlite")}
	getenv := func(k string) string { return env[k] }
	cfg, err := config.Load(getenv)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := app.New(ctx, cfg, getenv, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- a.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-errc; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &platform{url: base, app: a}
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
	startOperator(t, p.url, token)
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
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// A Custom agent whose runs print a line, think, then answer: the pause
	// lets the test see the first line on the page while the run goes on.
	hello := &agentkubev1alpha1.Agent{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "hello"},
		Spec: agentkubev1alpha1.AgentSpec{
			Runtime: agentkubev1alpha1.RuntimeCustom, Image: "registry.local/agentkube/custom-shell:dev",
			Command: []string{"/bin/sh", "-c", `echo "hello from hello"; sleep 8; echo "you said: ${AGENT_INPUT}"`},
		},
	}
	if err := cluster.Client.Create(ctx, hello); err != nil {
		t.Fatal(err)
	}
	b.Run(t, "agent appears", chromedp.WaitVisible(chromedp.CSS(`#agents-table tr[data-agent="default/hello"]`)))
	b.AssertNotReloaded(t)
	// The manager starts its pod on localnode; a run gives it a last run.
	b.RunWithin(t, "agent ready", 3*time.Minute, chromedp.Poll[chromedp.Void](`document.querySelector('#agents-table tr[data-agent="default/hello"]').textContent.includes("1/1")`, chromedp.WithPollingTimeout(3*time.Minute)))
	warmup := &agentkubev1alpha1.AgentRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "hello-warmup"},
		Spec:       agentkubev1alpha1.AgentRunSpec{AgentRef: agentkubev1alpha1.LocalObjectReference{Name: "hello"}, Input: "warm up"},
	}
	if err := cluster.Client.Create(ctx, warmup); err != nil {
		t.Fatal(err)
	}
	b.RunWithin(t, "last run shown", 2*time.Minute, chromedp.Poll[chromedp.Void](`document.querySelector('#agents-table tr[data-agent="default/hello"]').textContent.includes("hello-warmup")`, chromedp.WithPollingTimeout(2*time.Minute)))
	b.AssertNotReloaded(t)
	if got := b.Text(t, `#agents-table tr[data-agent="default/hello"]`); !strings.Contains(got, "Custom") {
		t.Errorf("agent row %q lacks the runtime", got)
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
	b.RunWithin(t, "output shown", time.Minute, chromedp.Poll[chromedp.Void](`document.getElementById("invoke-status").textContent.includes("Succeeded")`, chromedp.WithPollingTimeout(time.Minute)))
	if got := b.Text(t, "#invoke-output"); !strings.Contains(got, "you said: summarise the cluster") {
		t.Errorf("the rest of the output is missing: %q", got)
	}
	if got := b.Text(t, "#invoke-output"); strings.Count(got, "hello from hello") != 1 {
		t.Errorf("output shown twice (streamed and from the result): %q", got)
	}
	if st := b.Text(t, "#invoke-status"); !strings.Contains(st, "hello-platform-") || !strings.Contains(st, "exit code 0") {
		t.Errorf("invoke status %q", st)
	}
	// The run reaches the page's recent runs live, from the operator's delta.
	b.Run(t, "run listed", chromedp.Poll[chromedp.Void](`document.getElementById("runs-table").textContent.includes("hello-platform-")`, chromedp.WithPollingTimeout(20*time.Second)))
	// The run exists in the cluster, made for the signed-in user.
	var runs agentkubev1alpha1.AgentRunList
	if err := cluster.Client.List(ctx, &runs, client.InNamespace("default")); err != nil {
		t.Fatal(err)
	}
	platformRuns := 0
	for _, r := range runs.Items {
		if r.Spec.Trigger == agentkubev1alpha1.RunTriggerPlatform {
			platformRuns++
			if r.Annotations[connect.AnnotationRequestedBy] != email || r.Spec.Input != "summarise the cluster" {
				t.Errorf("AgentRun %s: requested by %q, input %q", r.Name, r.Annotations[connect.AnnotationRequestedBy], r.Spec.Input)
			}
		}
	}
	if platformRuns != 1 {
		t.Errorf("%d AgentRuns from the platform, want 1", platformRuns)
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
