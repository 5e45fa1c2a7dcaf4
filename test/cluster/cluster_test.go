package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/controllers/agent"
	"github.com/exo-in-go/exo/pkg/generated/clientset/versioned"
	"github.com/exo-in-go/exo/pkg/platform/shell"
	"github.com/exo-in-go/exo/test/framework"
	"github.com/exo-in-go/exo/test/poll"
)

const (
	apiService = "v1alpha1.subresources.agentkube.io"
	invokeRaw  = "/apis/subresources.agentkube.io/v1alpha1/namespaces/default/agents/%s/invoke"
)

// installation is what the install steps leave for the later ones.
type installation struct {
	dash       *platform
	deployment string
	agentkube  versioned.Interface
}

// TestInstallAndUse is one user's afternoon with the product on a real node, in order:
// each step needs the ones before it, so the first failure ends the test.
func TestInstallAndUse(t *testing.T) {
	in := &installation{}
	steps := []struct {
		name string
		fn   func(*testing.T, *installation)
	}{
		{"control plane installs with helm", installControlPlane},
		{"runtime plane installs with helm, managed", installRuntimePlane},
		{"the manager's replicas elect one leader", leaderElected},
		{"an Agent runs in a real container with the injected agentlet", agentRuns},
		{"kubectl agent invoke and kubectl create --raw answer", invokeWithKubectl},
		{"kubectl agent attach and logs -f work", attachAndLogs},
		{"kubectl exec is refused by the webhook", execRefused},
		{"edit may invoke, view may not", rbacAggregation},
		{"the dashboard reaches the agent through the tunnel", dashboard},
		{"leadership moves without losing a run", leaderHandover},
		{"deleting an Agent collects its pod, Secrets and runs", garbageCollection},
		{"uninstall leaves nothing behind", uninstall},
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) { s.fn(t, in) }) {
			t.Logf("node logs:\n%s", env.node.LogTails(30))
			t.FailNow()
		}
	}
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// installControlPlane: docs/install.md, "Control plane with kubectl" step 1 for the
// Secret, then "With Helm". The chart's PVC binds to a PersistentVolume the test
// provides (the node has no provisioner); SQLite, the default, lives on it.
func installControlPlane(t *testing.T, in *installation) {
	pvDir := filepath.Join(env.node.Dir, "pv", "exo-app-data")
	if err := os.MkdirAll(pvDir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(pvDir, 0o777); err != nil { // the pod runs as 65532
		t.Fatal(err)
	}
	sh(t, fmt.Sprintf(`apiVersion: v1
kind: PersistentVolume
metadata:
  name: exo-app-data
spec:
  capacity: {storage: 5Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: %s, type: Directory}
`, pvDir), "kubectl", "apply", "-f", "-")

	sh(t, "", "kubectl", "apply", "-f", "artifacts/platform/namespace.yaml")
	sh(t, "", "kubectl", "-n", "exo", "create", "secret", "generic", "exo-app",
		"--from-literal=EXO_JWT_SECRET="+randomHex(t, 32),
		"--from-literal=EXO_ENCRYPTION_KEY="+randomHex(t, 32))
	start := time.Now()
	sh(t, "", "helm", "install", "exo", "charts/exo-app", "-n", "exo", "--create-namespace",
		"--set", "existingSecret=exo-app",
		"--set", "config.EXO_BASE_URL="+exoURL,
		// No mail relay here: sign-up without the confirmation mail (docs/platform.md).
		"--set-string", "config.EXO_SIGNUP_CONFIRM_EMAIL=false")
	waitAvailable(t, 3*time.Minute, "exo")
	t.Logf("helm install exo → Deployment Available: %s", time.Since(start).Round(time.Millisecond))

	in.dash = newPlatform()
	poll.UntilNamed(t, "exo-app answers through its Service", time.Minute, func() error {
		res, err := in.dash.client.Get(exoURL + "/api/health")
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("health: %s", res.Status)
		}
		return nil
	})
	var session struct {
		Token string `json:"token"`
	}
	in.dash.must(t, "POST", "/api/v1/auth/signup", map[string]string{
		"email": "owner@example.com", "password": "a long passphrase " + randomHex(t, 4), "name": "Owner", "tenant_name": "Platform team",
	}, &session)
	in.dash.token = session.Token
	var created struct {
		Token      string `json:"token"`
		Deployment struct {
			ID string `json:"id"`
		} `json:"deployment"`
	}
	in.dash.must(t, "POST", "/api/v1/deployments", map[string]string{"name": "realnode"}, &created)
	if !strings.HasPrefix(created.Token, "exo_dpl_") {
		t.Fatalf("deployment token %q", created.Token)
	}
	in.deployment = created.Deployment.ID
	// docs/install.md, Managed mode, step 2: the token goes into Secret agentkube-auth.
	sh(t, "", "kubectl", "apply", "-f", "artifacts/manager/namespace.yaml")
	sh(t, "", "kubectl", "-n", "agentkube-system", "create", "secret", "generic", "agentkube-auth", "--from-literal=token="+created.Token)
}

// installRuntimePlane: docs/install.md, "With Helm", managed, with the manager reaching
// exo-app by its cluster DNS name.
func installRuntimePlane(t *testing.T, in *installation) {
	start := time.Now()
	sh(t, "", "helm", "install", "agentkube", "charts/agentkube", "-n", "agentkube-system", "--create-namespace",
		"--set", "manager.managed=true,manager.baseURL="+exoURL+",manager.clusterID=realnode")
	waitAvailable(t, 3*time.Minute, "agentkube-system")
	t.Logf("helm install agentkube → Deployment Available: %s", time.Since(start).Round(time.Millisecond))
	var err error
	if in.agentkube, err = versioned.NewForConfig(env.node.RESTConfig()); err != nil {
		t.Fatal(err)
	}
	// The APIService turns Available: kube-apiserver reaches the manager's Service with
	// the certificate the manager bootstrapped and injected.
	poll.UntilNamed(t, "APIService Available", 2*time.Minute, func() error {
		out, err := env.node.Kubectl(context.Background(), "get", "apiservice", apiService,
			"-o", `jsonpath={.status.conditions[?(@.type=="Available")].status}`)
		if err != nil || out != "True" {
			return fmt.Errorf("Available=%q %v", out, err)
		}
		return nil
	})
}

func leaderElected(t *testing.T, _ *installation) {
	ctx := context.Background()
	pods, err := env.node.Kube.CoreV1().Pods("agentkube-system").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=agentkube-manager"})
	if err != nil || len(pods.Items) != 2 {
		t.Fatalf("manager pods: %v, %v", len(pods.Items), err)
	}
	leader := leaderPod(t)
	found := false
	for _, p := range pods.Items {
		found = found || p.Name == leader
	}
	if !found {
		t.Fatalf("the lease holder %q is none of the manager's pods", leader)
	}
}

// leaderPod is the pod holding the manager's leader election Lease.
func leaderPod(t testing.TB) string {
	t.Helper()
	var holder string
	poll.UntilNamed(t, "a leader", 2*time.Minute, func() error {
		l, err := env.node.Kube.CoordinationV1().Leases("agentkube-system").Get(context.Background(), "agentkube-manager", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
			return fmt.Errorf("no holder")
		}
		holder = *l.Spec.HolderIdentity
		return nil
	})
	// controller-runtime's identity is <hostname>_<uuid>; the hostname is the pod's name.
	name, _, _ := strings.Cut(holder, "_")
	return name
}

// sample is artifacts/samples/agent-hello.yaml with the shell image this node has.
func sample(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(framework.RepoRoot(), "artifacts", "samples", "agent-hello.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^  image: .*$`)
	if !re.Match(b) {
		t.Fatal("the sample names no image")
	}
	return re.ReplaceAllString(string(b), "  image: "+env.busybox)
}

// customAgent creates a Custom Agent running command with the node's shell image.
func customAgent(t testing.TB, in *installation, name string, command ...string) {
	t.Helper()
	a := &agentkubev1alpha1.Agent{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: agentkubev1alpha1.AgentSpec{
			Runtime: agentkubev1alpha1.RuntimeCustom, Image: env.busybox, Command: command,
			Mode: agentkubev1alpha1.AgentModeSystem,
		},
	}
	if _, err := in.agentkube.AgentkubeV1alpha1().Agents("default").Create(context.Background(), a, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitAgentReady(t, in, name)
}

func waitAgentReady(t testing.TB, in *installation, name string) {
	t.Helper()
	poll.UntilNamed(t, "Agent "+name+" Ready", 3*time.Minute, func() error {
		a, err := in.agentkube.AgentkubeV1alpha1().Agents("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if a.Status.Phase != agentkubev1alpha1.AgentPhaseReady {
			return fmt.Errorf("phase %q, ready %s", a.Status.Phase, a.Status.Ready)
		}
		return nil
	})
}

// agentRuns: the sample Agent's pod is the injected shape and runs as it should.
func agentRuns(t *testing.T, in *installation) {
	sh(t, sample(t), "kubectl", "apply", "-f", "-")
	waitAgentReady(t, in, "hello")
	pod, err := env.node.Kube.CoreV1().Pods("default").Get(context.Background(), "hello", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pod.Status.InitContainerStatuses) != 1 || pod.Status.InitContainerStatuses[0].State.Terminated == nil ||
		pod.Status.InitContainerStatuses[0].State.Terminated.ExitCode != 0 {
		t.Fatalf("installer: %+v", pod.Status.InitContainerStatuses)
	}
	if len(pod.Status.ContainerStatuses) != 1 || pod.Status.ContainerStatuses[0].Name != agent.ContainerAgent ||
		!pod.Status.ContainerStatuses[0].Ready || pod.Status.ContainerStatuses[0].Image != env.busybox {
		t.Fatalf("agent container: %+v", pod.Status.ContainerStatuses)
	}

	// What the runtime sees in its container: the agentlet as PID 1 whose environment it
	// cannot read, no AGENTLET_* variables, a non-root user, a read-only root filesystem
	// and a writable HOME; and an orphan it leaves is reaped.
	customAgent(t, in, "probe", "/bin/sh", "-c", strings.Join([]string{
		`echo "pid1=$(cat /proc/1/comm)"`,
		`cat /proc/1/environ >/dev/null 2>&1 && echo environ=readable || echo environ=denied`,
		`echo "agentlet-vars=$(env | grep -c '^AGENTLET_')"`,
		`echo "uid=$(id -u)"`,
		`touch /probe 2>/dev/null && echo rootfs=writable || echo rootfs=read-only`,
		`touch "$HOME/probe" && echo "home=$HOME"`,
		`echo "zombies=$(cat /proc/[0-9]*/stat 2>/dev/null | awk '{print $3}' | grep -c Z)"`,
		`(sleep 1 &)`, // orphaned at once: reparented to PID 1
	}, "; "))
	out := invoke(t, "probe", "first")
	for _, want := range []string{"pid1=agentlet", "environ=denied", "agentlet-vars=0", "uid=65532", "rootfs=read-only", "home=/home/agent"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("the runtime's view lacks %q:\n%s", want, out)
		}
	}
	time.Sleep(2 * time.Second) // the first run's orphan has exited by now
	if out := invoke(t, "probe", "second"); !strings.Contains(out, "zombies=0\n") {
		t.Errorf("an orphan was not reaped:\n%s", out)
	}
}

// invoke runs kubectl agent invoke --wait and returns the output.
func invoke(t testing.TB, agentName, input string) string {
	t.Helper()
	return sh(t, "", "kubectl", "agent", "invoke", agentName, "-n", "default", "--input", input, "--wait")
}

func invokeWithKubectl(t *testing.T, _ *installation) {
	if out := invoke(t, "hello", "world"); !strings.Contains(out, "hello from hello: world") {
		t.Fatalf("kubectl agent invoke: %q", out)
	}
	body := `{"apiVersion":"subresources.agentkube.io/v1alpha1","kind":"AgentInvocation","spec":{"input":"raw","waitSeconds":30}}`
	out := sh(t, body, "kubectl", "create", "--raw", fmt.Sprintf(invokeRaw, "hello"), "-f", "-")
	var inv struct {
		Kind   string `json:"kind"`
		Status struct {
			Phase  string `json:"phase"`
			Output string `json:"output"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &inv); err != nil {
		t.Fatalf("decoding %q: %v", out, err)
	}
	if inv.Kind != "AgentInvocation" || inv.Status.Phase != string(agentkubev1alpha1.AgentRunPhaseSucceeded) {
		t.Fatalf("kubectl create --raw …/invoke: %s", out)
	}
}

// screen collects a terminal's output for polling.
type screen struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *screen) contains(want string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Contains(s.buf.String(), want)
}

func attachAndLogs(t *testing.T, _ *installation) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := command(ctx, "kubectl", "agent", "attach", "hello", "-n", "default")
	term, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	scr := &screen{}
	go func() { _, _ = term.WriteTo(scr) }()
	// Only a live shell in the image prints the product (the typed echo does not).
	poll.UntilNamed(t, "the attached shell answers", time.Minute, func() error {
		if scr.contains("ready-42") {
			return nil
		}
		if _, err := term.WriteString("echo ready-$((6*7))\r"); err != nil {
			return err
		}
		return fmt.Errorf("the terminal shows %q", scr.buf.String())
	})
	if _, err := term.WriteString("exit 0\r"); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("kubectl agent attach: %v", err)
	}

	out := sh(t, "", "kubectl", "agent", "invoke", "hello", "-n", "default", "--input", "logs")
	run := strings.TrimPrefix(strings.Fields(out)[0], "agentrun.agentkube.io/")
	logs := sh(t, "", "kubectl", "agent", "logs", "hello", "-n", "default", "--run", run, "-f")
	if logs != "hello from hello: logs\n" {
		t.Fatalf("kubectl agent logs -f: %q", logs)
	}
}

// bindRole binds a ClusterRole to a user in the default namespace.
func bindRole(t testing.TB, role, user string) {
	t.Helper()
	sh(t, "", "kubectl", "create", "rolebinding", role+"-"+user, "--clusterrole="+role, "--user="+user, "-n", "default")
}

func execRefused(t *testing.T, _ *installation) {
	bindRole(t, "edit", "alice")
	// RBAC lets an editor exec (edit includes pods/exec); the webhook does not.
	if out, _, err := try("", "kubectl", "auth", "can-i", "create", "pods/exec", "-n", "default", "--as=alice"); err != nil || strings.TrimSpace(out) != "yes" {
		t.Fatalf("alice may not exec by RBAC (%q, %v): the test would prove nothing", out, err)
	}
	_, stderr, err := try("", "kubectl", "exec", "hello", "-n", "default", "--as=alice", "--", "id")
	if err == nil || !strings.Contains(stderr, "denied the request") {
		t.Fatalf("kubectl exec as alice: %v, %q; want the webhook's denial", err, stderr)
	}
}

func rbacAggregation(t *testing.T, _ *installation) {
	bindRole(t, "edit", "bob")
	bindRole(t, "view", "carol")
	body := `{"apiVersion":"subresources.agentkube.io/v1alpha1","kind":"AgentInvocation","spec":{"input":"rbac","waitSeconds":30}}`
	// The controller-manager aggregates agentkube-aggregate-to-edit into edit; give it a
	// moment after the install.
	poll.UntilNamed(t, "edit may invoke", time.Minute, func() error {
		_, stderr, err := try(body, "kubectl", "create", "--raw", fmt.Sprintf(invokeRaw, "hello"), "-f", "-", "--as=bob")
		if err != nil {
			return fmt.Errorf("%v: %s", err, stderr)
		}
		return nil
	})
	_, stderr, err := try(body, "kubectl", "create", "--raw", fmt.Sprintf(invokeRaw, "hello"), "-f", "-", "--as=carol")
	if err == nil || !strings.Contains(stderr, "Forbidden") {
		t.Fatalf("a viewer invoked: %v, %q", err, stderr)
	}
	if out := sh(t, "", "kubectl", "get", "agents", "-n", "default", "--as=carol", "-o", "name"); !strings.Contains(out, "agent.agentkube.io/hello") {
		t.Fatalf("a viewer cannot list Agents: %q", out)
	}
	// The kinds themselves: edit manages Agents, view only reads them.
	for user, want := range map[string]string{"bob": "yes", "carol": "no"} {
		out, _, _ := try("", "kubectl", "auth", "can-i", "create", "agents.agentkube.io", "-n", "default", "--as="+user)
		if strings.TrimSpace(out) != want {
			t.Errorf("can %s create Agents? %q, want %s", user, out, want)
		}
	}
}

func dashboard(t *testing.T, in *installation) {
	poll.UntilNamed(t, "the deployment connected", time.Minute, func() error {
		var view struct {
			Connected bool   `json:"connected"`
			Status    string `json:"status"`
		}
		if code := in.dash.call(t, "GET", "/api/v1/deployments/"+in.deployment+"/cluster", nil, &view); code != http.StatusOK {
			return fmt.Errorf("cluster view: %d", code)
		}
		if !view.Connected || view.Status != "connected" {
			return fmt.Errorf("connected=%v status=%q", view.Connected, view.Status)
		}
		return nil
	})
	var res struct {
		Output string `json:"output"`
		Phase  string `json:"phase"`
	}
	in.dash.must(t, "POST", "/api/v1/deployments/"+in.deployment+"/agents/default/hello/invoke",
		map[string]any{"input": "dashboard", "timeout_seconds": 60}, &res)
	if !strings.Contains(res.Output, "hello from hello: dashboard") {
		t.Fatalf("invoke through the tunnel: %+v", res)
	}

	// A shell in the agent's container, through exo-app, the tunnel and pods/exec.
	var g shell.GrantResponse
	in.dash.must(t, "POST", "/api/v1/deployments/"+in.deployment+"/agents/default/hello/shell", map[string]int{"cols": 100, "rows": 30}, &g)
	d := websocket.Dialer{
		HandshakeTimeout: 20 * time.Second, NetDialContext: dialCluster,
		Subprotocols: []string{shell.Subprotocol, "exo-auth." + in.dash.token},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ws, _, err := d.DialContext(ctx, g.WSURL, http.Header{"Origin": {exoURL}})
	if err != nil {
		t.Fatalf("dial %s: %v", g.WSURL, err)
	}
	defer ws.Close()
	scr := &screen{}
	go func() {
		for {
			typ, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if typ == websocket.BinaryMessage {
				_, _ = scr.Write(b)
			}
		}
	}()
	// The shell drops the agentlet's token before it starts.
	line := "echo shell-$((6*7)) tokens-$(env | grep -c AGENTLET_TOKEN)\r"
	poll.UntilNamed(t, "the dashboard shell answers", time.Minute, func() error {
		if scr.contains("shell-42 tokens-0") {
			return nil
		}
		if err := ws.WriteMessage(websocket.BinaryMessage, []byte(line)); err != nil {
			return err
		}
		return fmt.Errorf("the terminal shows %q", scr.buf.String())
	})
}

// leaderHandover deletes the leader's pod while a run is in progress: the other replica
// takes over and the run still ends Succeeded with its output.
func leaderHandover(t *testing.T, in *installation) {
	customAgent(t, in, "slow", "/bin/sh", "-c", `sleep 8; echo "finished $AGENT_INPUT"`)
	out := sh(t, "", "kubectl", "agent", "invoke", "slow", "-n", "default", "--input", "anyway")
	run := strings.TrimPrefix(strings.Fields(out)[0], "agentrun.agentkube.io/")
	leader := leaderPod(t)
	if err := env.node.Kube.CoreV1().Pods("agentkube-system").Delete(context.Background(), leader, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.UntilNamed(t, "another leader", 2*time.Minute, func() error {
		if l := leaderPod(t); l == leader {
			return fmt.Errorf("still %s", l)
		}
		return nil
	})
	poll.UntilNamed(t, "the run survives the handover", 2*time.Minute, func() error {
		r, err := in.agentkube.AgentkubeV1alpha1().AgentRuns("default").Get(context.Background(), run, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if r.Status.Phase != agentkubev1alpha1.AgentRunPhaseSucceeded {
			return fmt.Errorf("phase %q (%s)", r.Status.Phase, r.Status.Message)
		}
		return nil
	})
	if logs := sh(t, "", "kubectl", "agent", "logs", "slow", "-n", "default", "--run", run); logs != "finished anyway\n" {
		t.Fatalf("output after the handover: %q", logs)
	}
	waitAvailable(t, 2*time.Minute, "agentkube-system")
}

func garbageCollection(t *testing.T, in *installation) {
	ctx := context.Background()
	all, err := in.agentkube.AgentkubeV1alpha1().AgentRuns("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var runs []string
	for _, r := range all.Items {
		if r.Spec.AgentRef.Name == "hello" {
			runs = append(runs, r.Name)
		}
	}
	if len(runs) == 0 {
		t.Fatal("hello has no AgentRuns")
	}
	secrets, err := env.node.Kube.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var owned []string
	for _, s := range secrets.Items {
		if ref := metav1.GetControllerOf(&s); ref != nil && ref.Kind == "Agent" && ref.Name == "hello" {
			owned = append(owned, s.Name)
		}
	}
	if len(owned) == 0 {
		t.Fatal("hello owns no Secret")
	}
	sh(t, "", "kubectl", "delete", "agent", "hello", "-n", "default")
	poll.UntilNamed(t, "hello's dependents collected", 2*time.Minute, func() error {
		if _, err := env.node.Kube.CoreV1().Pods("default").Get(ctx, "hello", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("pod: %v", err)
		}
		for _, name := range owned {
			if _, err := env.node.Kube.CoreV1().Secrets("default").Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("secret %s: %v", name, err)
			}
		}
		for _, r := range runs {
			if _, err := in.agentkube.AgentkubeV1alpha1().AgentRuns("default").Get(ctx, r, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("AgentRun %s: %v", r, err)
			}
		}
		return nil
	})
}

// uninstall follows docs/install.md, "Uninstall", with Helm, then deletes the
// namespaces Helm leaves and the CRDs it keeps.
func uninstall(t *testing.T, _ *installation) {
	sh(t, "", "helm", "uninstall", "agentkube", "-n", "agentkube-system", "--wait")
	sh(t, "", "helm", "uninstall", "exo", "-n", "exo", "--wait")
	sh(t, "", "kubectl", "delete", "namespace", "agentkube-system", "exo", "--wait=false")
	sh(t, "", "kubectl", "delete", "-f", "artifacts/crds/", "--wait=false")
	sh(t, "", "kubectl", "delete", "persistentvolume", "exo-app-data") // the test's own, Retain
	ctx := context.Background()
	poll.UntilNamed(t, "nothing left", 3*time.Minute, func() error {
		for _, ns := range []string{"agentkube-system", "exo"} {
			n, err := env.node.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			if !apierrors.IsNotFound(err) {
				return fmt.Errorf("namespace %s still there (%v): %+v", ns, err, namespaceConditions(n))
			}
		}
		if out, _ := env.node.Kubectl(ctx, "get", "apiservice", apiService, "--ignore-not-found", "-o", "name"); out != "" {
			return fmt.Errorf("APIService left: %s", out)
		}
		for _, kind := range []string{"validatingwebhookconfigurations", "mutatingwebhookconfigurations", "clusterroles", "clusterrolebindings", "crds"} {
			out, err := env.node.Kubectl(ctx, "get", kind, "-o", "name")
			if err != nil {
				return err
			}
			for _, name := range strings.Fields(out) {
				if strings.Contains(name, "agentkube") || strings.Contains(name, "exo-app") {
					return fmt.Errorf("%s left", name)
				}
			}
		}
		pods, err := env.node.Kube.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if len(pods.Items) != 0 {
			return fmt.Errorf("%d pods left in default", len(pods.Items))
		}
		return nil
	})
}

func namespaceConditions(n *corev1.Namespace) []corev1.NamespaceCondition {
	if n == nil {
		return nil
	}
	return n.Status.Conditions
}
