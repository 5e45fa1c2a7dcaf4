package aggregated

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	subresourcesv1alpha1 "github.com/exo-in-go/exo/pkg/apis/subresources/v1alpha1"
	"github.com/exo-in-go/exo/pkg/certs"
	"github.com/exo-in-go/exo/pkg/generated/clientset/versioned"
)

const apiPrefix = "/apis/subresources.agentkube.io/v1alpha1"

func invokePath(ns, name string) string {
	return fmt.Sprintf("%s/namespaces/%s/agents/%s/invoke", apiPrefix, ns, name)
}

// echoCommand prints its input back with a greeting, then who ran it.
var echoCommand = []string{"/bin/sh", "-c", `read -r line; echo "hello $line"; echo "run $AGENT_RUN_ID done"`}

// TestAggregatedAPI runs the behaviour tests in parallel on one cluster, then takes the
// server down for the failure-mode test.
func TestAggregatedAPI(t *testing.T) {
	t.Run("live", func(t *testing.T) {
		t.Run("InvokeWithKubectlCreateRaw", testInvokeWithKubectlCreateRaw)
		t.Run("RBACViewCannotInvokeOrAttachEditCan", testRBAC)
		t.Run("RequesterIsTheCallerWithUID", testRequesterIsTheCaller)
		t.Run("ForgedFrontProxyHeadersAreRefused", testForgedHeaders)
		t.Run("InvokeErrors", testInvokeErrors)
		t.Run("DryRunCreatesNoRun", testDryRun)
		t.Run("DiscoveryExplainAndGroupPriority", testDiscovery)
		t.Run("LogsFollowBeyondSixtySeconds", testLogsFollow)
		t.Run("AttachRoundTripsKeystrokesAndResize", testAttach)
	})
	t.Run("ManagerDown", testManagerDown)
}

func testInvokeWithKubectlCreateRaw(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	ns := env.cluster.CreateNamespace(t)
	newAgent(t, ns, "greeter", agentSpec{command: echoCommand})

	in := filepath.Join(t.TempDir(), "in.json")
	body := `{"apiVersion":"subresources.agentkube.io/v1alpha1","kind":"AgentInvocation","spec":{"input":"world\n","waitSeconds":30}}`
	if err := os.WriteFile(in, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := env.cluster.Kubectl(ctx, "", "create", "--raw", invokePath(ns, "greeter"), "-f", in)
	if err != nil {
		t.Fatal(err)
	}
	var inv subresourcesv1alpha1.AgentInvocation
	if err := json.Unmarshal([]byte(out), &inv); err != nil {
		t.Fatalf("decoding %q: %v", out, err)
	}
	if inv.Kind != "AgentInvocation" || inv.Status.Phase != agentkubev1alpha1.AgentRunPhaseSucceeded {
		t.Fatalf("invocation = %s, want a Succeeded AgentInvocation", out)
	}
	want := "hello world\nrun " + inv.Status.RunName + " done\n"
	if inv.Status.OutputTail != want || inv.Status.ExitCode == nil || *inv.Status.ExitCode != 0 {
		t.Fatalf("output %q exit %v, want %q exit 0", inv.Status.OutputTail, inv.Status.ExitCode, want)
	}
	run, err := env.cluster.Agentkube.AgentkubeV1alpha1().AgentRuns(ns).Get(ctx, inv.Status.RunName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the AgentRun of the invocation: %v", err)
	}
	if run.Spec.Trigger != agentkubev1alpha1.RunTriggerInvoke || run.Spec.AgentRef.Name != "greeter" || run.Spec.Input != "world\n" {
		t.Fatalf("AgentRun spec = %+v", run.Spec)
	}
	if !metav1.IsControlledBy(run, &metav1.ObjectMeta{UID: run.OwnerReferences[0].UID}) || run.OwnerReferences[0].Name != "greeter" {
		t.Fatalf("AgentRun owner references = %+v, want the Agent as controller", run.OwnerReferences)
	}
	if run.Spec.Requester == nil || run.Spec.Requester.Username != "exo-admin" {
		t.Fatalf("requester = %+v, want the admin who called", run.Spec.Requester)
	}
}

func testRBAC(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 2*time.Minute)
	ns := env.cluster.CreateNamespace(t)
	newAgent(t, ns, "worker", agentSpec{command: echoCommand})

	viewerCfg, viewerKubeconfig := env.cluster.User(t, "viewer-"+ns)
	editorCfg, editorKubeconfig := env.cluster.User(t, "editor-"+ns)
	getterCfg, _ := env.cluster.User(t, "attach-getter-"+ns)
	bind(t, ns, "ClusterRole", "view", rbacv1.Subject{Kind: rbacv1.UserKind, Name: "viewer-" + ns})
	bind(t, ns, "ClusterRole", "edit", rbacv1.Subject{Kind: rbacv1.UserKind, Name: "editor-" + ns})
	// Only get on agents/attach: enough for kube-apiserver to forward a WebSocket upgrade,
	// not for the aggregated server to open a terminal.
	getOnly := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "attach-get-only", Namespace: ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"subresources.agentkube.io"}, Resources: []string{"agents/attach"}, Verbs: []string{"get"}}},
	}
	if _, err := env.cluster.Kube.RbacV1().Roles(ns).Create(ctx, getOnly, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bind(t, ns, "Role", "attach-get-only", rbacv1.Subject{Kind: rbacv1.UserKind, Name: "attach-getter-" + ns})
	waitForAccess(t, editorCfg, ns, "create", "agents", "invoke", true)
	waitForAccess(t, getterCfg, ns, "get", "agents", "attach", true)
	waitForAccess(t, viewerCfg, ns, "get", "agents", "log", true)

	in := filepath.Join(t.TempDir(), "in.json")
	if err := os.WriteFile(in, []byte(`{"spec":{"input":"rbac\n","waitSeconds":30}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, err := env.cluster.Kubectl(ctx, viewerKubeconfig, "create", "--raw", invokePath(ns, "worker"), "-f", in)
	if err == nil || !strings.Contains(stderr, "Forbidden") {
		t.Fatalf("view invoked: err=%v stderr=%s", err, stderr)
	}
	if code, body := attachStatus(t, viewerCfg, env.cluster.Config.Host, ns, "worker"); code != http.StatusForbidden {
		t.Fatalf("view attach: %d %s, want 403", code, body)
	}
	code, body := attachStatus(t, getterCfg, env.cluster.Config.Host, ns, "worker")
	if code != http.StatusForbidden || !strings.Contains(body, "attaching needs create") {
		t.Fatalf("get-only attach: %d %s, want 403 from the aggregated server's create check", code, body)
	}

	out, _, err := env.cluster.Kubectl(ctx, editorKubeconfig, "create", "--raw", invokePath(ns, "worker"), "-f", in)
	if err != nil {
		t.Fatalf("edit could not invoke: %v", err)
	}
	var inv subresourcesv1alpha1.AgentInvocation
	if err := json.Unmarshal([]byte(out), &inv); err != nil || inv.Status.Phase != agentkubev1alpha1.AgentRunPhaseSucceeded {
		t.Fatalf("edit invocation = %s (%v)", out, err)
	}
	if code, body := attachStatus(t, env.cluster.Config, env.cluster.Config.Host, ns, "worker"); code != http.StatusSwitchingProtocols {
		t.Fatalf("admin attach: %d %s, want 101", code, body)
	}
	if code, body := attachStatus(t, editorCfg, env.cluster.Config.Host, ns, "worker"); code != http.StatusSwitchingProtocols {
		t.Fatalf("edit attach: %d %s, want 101", code, body)
	}
	// view reads the output of the run edit started.
	logs, _, err := env.cluster.Kubectl(ctx, viewerKubeconfig, "get", "--raw", fmt.Sprintf("%s/namespaces/%s/agents/worker/log?run=%s", apiPrefix, ns, inv.Status.RunName))
	if err != nil || !strings.Contains(logs, "hello rbac") {
		t.Fatalf("view logs = %q, %v", logs, err)
	}
}

func testRequesterIsTheCaller(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	ns := env.cluster.CreateNamespace(t)
	newAgent(t, ns, "recorder", agentSpec{command: echoCommand})
	sa, err := env.cluster.Kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "invoker"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bind(t, ns, "ClusterRole", "edit", rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "invoker", Namespace: ns})
	tr, err := env.cluster.Kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "invoker", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.AnonymousClientConfig(env.cluster.Config)
	cfg.BearerToken = tr.Status.Token
	waitForAccess(t, cfg, ns, "create", "agents", "invoke", true)
	client, err := versioned.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := client.SubresourcesV1alpha1().Agents(ns).Invoke(ctx, "recorder", &subresourcesv1alpha1.AgentInvocation{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	run, err := env.cluster.Agentkube.AgentkubeV1alpha1().AgentRuns(ns).Get(ctx, inv.Status.RunName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := run.Spec.Requester
	wantUser := "system:serviceaccount:" + ns + ":invoker"
	if r == nil || r.Username != wantUser || r.UID != string(sa.UID) {
		t.Fatalf("requester = %+v, want %s with UID %s (the caller, through kube-apiserver)", r, wantUser, sa.UID)
	}
	for _, g := range []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"} {
		if !contains(r.Groups, g) {
			t.Fatalf("requester groups %v lack %s", r.Groups, g)
		}
	}
	if contains(r.Groups, "system:masters") {
		t.Fatalf("requester groups %v hold kube-apiserver's or the server's own", r.Groups)
	}
}

func testForgedHeaders(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	ns := env.cluster.CreateNamespace(t)
	newAgent(t, ns, "target", agentSpec{command: echoCommand})
	pool, err := certs.Pool(env.ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	defer client.CloseIdleConnections()
	url := fmt.Sprintf("https://127.0.0.1:%d%s", env.port, invokePath(ns, "target"))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"spec":{"input":"forged"}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Remote-User", "admin")
	req.Header.Set("X-Remote-Group", "system:masters")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
		t.Fatalf("forged X-Remote-User without the front-proxy certificate: %d %s, want 401 or 403", resp.StatusCode, body)
	}
	runs, err := env.cluster.Agentkube.AgentkubeV1alpha1().AgentRuns(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(runs.Items) != 0 {
		t.Fatalf("runs after a refused forged request: %v, %v", runs, err)
	}
}

func testInvokeErrors(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	ns := env.cluster.CreateNamespace(t)
	newAgent(t, ns, "sleeper", agentSpec{command: echoCommand, paused: true})
	newAgent(t, ns, "starting", agentSpec{notReady: true})

	cases := []struct {
		agent, body string
		code        int
		message     string
	}{
		{"sleeper", `{}`, http.StatusConflict, "paused"},
		{"nobody", `{}`, http.StatusNotFound, `agents.subresources.agentkube.io \"nobody\" not found`},
		{"starting", `{}`, http.StatusServiceUnavailable, "no pod yet"},
		{"starting", `{"spec":{"waitSeconds":51}}`, http.StatusUnprocessableEntity, "spec.waitSeconds"},
		{"starting", `{"spec":{"timeoutSeconds":-1}}`, http.StatusUnprocessableEntity, "spec.timeoutSeconds"},
	}
	for _, tc := range cases {
		resp, body := post(t, ctx, env.cluster.Config, invokePath(ns, tc.agent), tc.body)
		if resp.StatusCode != tc.code || !strings.Contains(body, tc.message) {
			t.Errorf("invoke %s %s: %d %s, want %d mentioning %q", tc.agent, tc.body, resp.StatusCode, body, tc.code, tc.message)
		}
		if tc.code == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
			t.Errorf("503 without Retry-After: %v", resp.Header)
		}
	}
	runs, err := env.cluster.Agentkube.AgentkubeV1alpha1().AgentRuns(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(runs.Items) != 0 {
		t.Fatalf("refused invocations created runs: %v, %v", runs, err)
	}
}

func testDryRun(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	ns := env.cluster.CreateNamespace(t)
	newAgent(t, ns, "dry", agentSpec{command: echoCommand})
	inv, err := env.cluster.Agentkube.SubresourcesV1alpha1().Agents(ns).Invoke(ctx, "dry",
		&subresourcesv1alpha1.AgentInvocation{Spec: subresourcesv1alpha1.AgentInvocationSpec{Input: "x", WaitSeconds: 5}},
		metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(inv.Status.Message, "dry run") {
		t.Fatalf("dry-run status = %+v", inv.Status)
	}
	runs, err := env.cluster.Agentkube.AgentkubeV1alpha1().AgentRuns(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(runs.Items) != 0 {
		t.Fatalf("a dry run created runs: %v, %v", runs, err)
	}
}

func testDiscovery(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	ns := env.cluster.CreateNamespace(t)
	newAgent(t, ns, "listed", agentSpec{command: echoCommand})

	resources, err := env.cluster.Kube.Discovery().ServerResourcesForGroupVersion("subresources.agentkube.io/v1alpha1")
	if err != nil {
		t.Fatal(err)
	}
	verbs := map[string]string{}
	for _, r := range resources.APIResources {
		verbs[r.Name] = strings.Join(r.Verbs, ",")
	}
	for name, want := range map[string]string{"agents": "get,list", "agents/invoke": "create", "agents/log": "get", "agents/attach": "create,get"} {
		if verbs[name] != want {
			t.Errorf("discovery: %s verbs %q, want %q (all: %v)", name, verbs[name], want, verbs)
		}
	}
	// A plain `kubectl get agents` still means agentkube.io: our group ranks lower.
	out, _, err := env.cluster.Kubectl(ctx, "", "get", "agents", "-n", ns, "-o", "jsonpath={.items[0].apiVersion}")
	if err != nil || out != "agentkube.io/v1alpha1" {
		t.Fatalf("kubectl get agents resolved to %q (%v), want agentkube.io/v1alpha1", out, err)
	}
	out, _, err = env.cluster.Kubectl(ctx, "", "get", "agents.subresources.agentkube.io", "-n", ns)
	if err != nil || !strings.Contains(out, "listed") || !strings.Contains(out, "Ready") {
		t.Fatalf("kubectl get agents.subresources.agentkube.io = %q, %v", out, err)
	}
	// OpenAPI is published: kubectl explain reads the field documentation.
	out, _, err = env.cluster.Kubectl(ctx, "", "explain", "agents.spec", "--api-version=subresources.agentkube.io/v1alpha1")
	if err != nil || !strings.Contains(out, "paused Agents refuse invocations") {
		t.Fatalf("kubectl explain = %q, %v", out, err)
	}
}

func testLogsFollow(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 3*time.Minute)
	ns := env.cluster.CreateNamespace(t)
	// 90 lines, one a second: the follow must outlive kube-apiserver's 60 s request timeout.
	newAgent(t, ns, "talker", agentSpec{command: []string{"/bin/sh", "-c", `i=1; while [ $i -le 90 ]; do echo "line $i"; i=$((i+1)); sleep 1; done`}})
	_, kubeconfig := env.cluster.User(t, "follower-"+ns)
	bind(t, ns, "ClusterRole", "edit", rbacv1.Subject{Kind: rbacv1.UserKind, Name: "follower-" + ns})

	out, err := plugin(ctx, kubeconfig, nil, "agent", "invoke", "talker", "-n", ns, "--input", "go")
	if err != nil {
		t.Fatalf("kubectl agent invoke: %v: %s", err, out)
	}
	run := strings.TrimSuffix(strings.TrimPrefix(strings.Fields(out)[0], "agentrun.agentkube.io/"), "")
	logs, err := plugin(ctx, kubeconfig, nil, "agent", "logs", "talker", "-n", ns, "--run", run, "-f")
	if err != nil {
		t.Fatalf("kubectl agent logs -f: %v: %s", err, logs)
	}
	var want strings.Builder
	for i := 1; i <= 90; i++ {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	if logs != want.String() {
		t.Fatalf("followed output ends with %q, want all 90 lines", lastLines(logs, 3))
	}
}

// testManagerDown stops the aggregated server: the rest of the cluster must not notice,
// and invoke must fail quickly with 503 rather than hang. The server is restarted after.
func testManagerDown(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	ns := env.cluster.CreateNamespace(t)
	env.server.stop()
	t.Cleanup(func() {
		ln, err := listenOn(env.port)
		if err != nil {
			t.Fatalf("restarting the server: %v", err)
		}
		if env.server, err = env.startServer(ln); err != nil {
			t.Fatal(err)
		}
		if err := env.register(context.Background()); err != nil {
			t.Fatal(err)
		}
	})

	if _, err := env.cluster.Kube.Discovery().ServerGroups(); err != nil {
		t.Fatalf("discovery of groups with the aggregated API down: %v", err)
	}
	if _, _, err := env.cluster.Kubectl(ctx, "", "get", "namespaces,agents.agentkube.io", "-A"); err != nil {
		t.Fatalf("kubectl with the aggregated API down: %v", err)
	}
	callCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err := env.cluster.Agentkube.SubresourcesV1alpha1().Agents(ns).Invoke(callCtx, "any", &subresourcesv1alpha1.AgentInvocation{}, metav1.CreateOptions{})
	if !apierrors.IsServiceUnavailable(err) {
		t.Fatalf("invoke with the aggregated API down: %v, want 503", err)
	}
}

// --- helpers ---

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func bind(t *testing.T, ns, kind, role string, subject rbacv1.Subject) {
	t.Helper()
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{GenerateName: strings.ToLower(role) + "-", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: role},
		Subjects:   []rbacv1.Subject{subject},
	}
	if _, err := env.cluster.Kube.RbacV1().RoleBindings(ns).Create(context.Background(), rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitForAccess waits until kube-apiserver's RBAC cache agrees with a new binding, so the
// aggregated server's SubjectAccessReview (cached for 10 s) never sees a stale answer.
func waitForAccess(t *testing.T, cfg *rest.Config, ns, verb, resource, subresource string, allowed bool) {
	t.Helper()
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		review, err := kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: ns, Verb: verb, Group: "subresources.agentkube.io", Resource: resource, Subresource: subresource,
			}},
		}, metav1.CreateOptions{})
		return err == nil && review.Status.Allowed == allowed, nil
	})
	if err != nil {
		t.Fatalf("RBAC never settled on %s %s/%s = %v: %v", verb, resource, subresource, allowed, err)
	}
}

// attachStatus opens agents/attach as a WebSocket upgrade with cfg's identity and returns
// the HTTP status of the handshake (101 when the terminal opened).
func attachStatus(t *testing.T, cfg *rest.Config, host, ns, name string) (int, string) {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	host = strings.TrimSuffix(host, "/")
	cfg.Host = host
	// HTTP/1.1 only: an upgrade cannot travel over HTTP/2.
	cfg.TLSClientConfig.NextProtos = []string{"http/1.1"}
	transport, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("%s%s/namespaces/%s/agents/%s/attach?stdin=true&stdout=true&tty=true", host, apiPrefix, ns, name)
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Sec-WebSocket-Protocol", "v5.channel.k8s.io")
	resp, err := transport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp.StatusCode, ""
	}
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func post(t *testing.T, ctx context.Context, cfg *rest.Config, path, body string) (*http.Response, string) {
	t.Helper()
	transport, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(cfg.Host, "/")+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := transport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, string(data)
}

// pluginCmd runs kubectl with the kubectl-agent plugin on its PATH, as a user would. The
// kubeconfig comes from KUBECONFIG: kubectl hands plugins the arguments after their name.
func pluginCmd(ctx context.Context, kubeconfig string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(env.cluster.BinDir, "kubectl"), args...)
	cmd.Env = []string{
		"HOME=" + env.cluster.Dir,
		"KUBECONFIG=" + kubeconfig,
		"PATH=" + env.pluginDir + ":" + env.cluster.BinDir + ":/usr/bin:/bin",
		"TERM=xterm",
	}
	return cmd
}

func plugin(ctx context.Context, kubeconfig string, stdin io.Reader, args ...string) (string, error) {
	cmd := pluginCmd(ctx, kubeconfig, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
