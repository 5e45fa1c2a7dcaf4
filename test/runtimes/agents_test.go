package runtimes

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	subresourcesv1alpha1 "github.com/exo-in-go/exo/pkg/apis/subresources/v1alpha1"
	"github.com/exo-in-go/exo/pkg/controllers/agent"
	"github.com/exo-in-go/exo/test/fakemodel"
	"github.com/exo-in-go/exo/test/poll"
)

// The model every Agent asks for; the fake server answers any name.
const modelName = "fake-model"

// testAgent is an Agent of one runtime with its own fake model server and
// egress proxy.
type testAgent struct {
	namespace, name string
	model           *fakemodel.Server
	modelServer     *httptest.Server
	proxy           *recordingProxy
}

// newAgent creates an Agent of runtime whose spec.model.baseURL is a new
// fake model server and whose egress goes to a recording proxy, with an API
// key from a Secret, and waits until it is Ready.
func newAgent(t testing.TB, runtime agentkubev1alpha1.Runtime) *testAgent {
	t.Helper()
	a := &testAgent{namespace: env.cluster.CreateNamespace(t), name: strings.ToLower(string(runtime)), model: fakemodel.New(fakemodel.Options{})}
	a.modelServer = httptest.NewServer(a.model)
	t.Cleanup(a.modelServer.Close)
	a.proxy = startRecordingProxy(t)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "model-key"}, StringData: map[string]string{"key": "fake-key-" + a.name}}
	if _, err := env.cluster.Kube.CoreV1().Secrets(a.namespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var vars []corev1.EnvVar
	for k, v := range a.proxy.env() {
		vars = append(vars, corev1.EnvVar{Name: k, Value: v})
	}
	sort.Slice(vars, func(i, j int) bool { return vars[i].Name < vars[j].Name })
	_, err := env.cluster.Agentkube.AgentkubeV1alpha1().Agents(a.namespace).Create(ctx, &agentkubev1alpha1.Agent{
		ObjectMeta: metav1.ObjectMeta{Name: a.name},
		Spec: agentkubev1alpha1.AgentSpec{
			Runtime:    runtime,
			Model:      &agentkubev1alpha1.ModelSpec{Name: modelName, BaseURL: a.modelServer.URL},
			AgentToken: &agentkubev1alpha1.AgentToken{SecretRef: agentkubev1alpha1.SecretKeyRef{Name: "model-key", Key: "key"}},
			Env:        vars,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating the %s Agent: %v", runtime, err)
	}
	poll.UntilNamed(t, "the "+string(runtime)+" Agent Ready", 2*time.Minute, func() error {
		ag, err := env.cluster.Agentkube.AgentkubeV1alpha1().Agents(a.namespace).Get(ctx, a.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !agent.IsReady(ag) {
			return fmt.Errorf("status %+v", ag.Status)
		}
		return nil
	})
	return a
}

// invoke runs `kubectl agent invoke NAME --input … --wait -o json`, the
// way a user does, and returns the invocation's status.
func (a *testAgent) invoke(t testing.TB, input string, timeoutSeconds int) subresourcesv1alpha1.AgentInvocationStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(env.cluster.BinDir, "kubectl"), "agent", "invoke", a.name, "-n", a.namespace,
		"--input", input, "--wait", "--timeout-seconds", strconv.Itoa(timeoutSeconds), "-o", "json")
	// kubectl finds the plugin on its PATH; a plugin takes no flags before its name.
	cmd.Env = []string{"HOME=" + env.cluster.Dir, "KUBECONFIG=" + env.cluster.KubeconfigPath,
		"PATH=" + env.bin + ":" + env.cluster.BinDir + ":/usr/bin:/bin"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl agent invoke %s: %v\n%s", a.name, err, stderr.String())
	}
	var inv subresourcesv1alpha1.AgentInvocation
	if err := json.Unmarshal(out, &inv); err != nil {
		t.Fatalf("kubectl agent invoke -o json printed %q: %v", out, err)
	}
	return inv.Status
}

// workspaceFile reads a file from the Agent's workspace volume on the node.
func (a *testAgent) workspaceFile(t testing.TB, name string) string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(env.nodeDir, "pods", a.namespace+"_"+a.name+"_*", "volumes", "workspace"))
	if err != nil || len(dirs) != 1 {
		t.Fatalf("the workspace volume of %s/%s on the node: %v %v", a.namespace, a.name, dirs, err)
	}
	b, err := os.ReadFile(filepath.Join(dirs[0], name))
	if err != nil {
		t.Fatalf("the workspace holds no %s: %v", name, err)
	}
	return string(b)
}
