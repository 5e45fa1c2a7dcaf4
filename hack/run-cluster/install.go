package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/exo-in-go/exo/test/realnode"
)

// exoAppAddress is exo-app's Service as the forwarder dials it, with the cluster DNS
// from inside the node's network: the full name, since that resolver has no search path.
const exoAppAddress = "exo-app.exo.svc.cluster.local:9092"

// managerBaseURL is the manager's AGENTKUBE_BASE_URL: exo-app by its Service's name, as
// a pod's resolv.conf completes it. The browser's URL (EXO_BASE_URL) is the host's
// forwarder instead; the tunnel endpoint does not look at either, so they may differ.
const managerBaseURL = "http://exo-app.exo.svc:9092"

// installer runs the user's commands of docs/install.md against the node: the node's
// kubectl and the cached helm with its admin kubeconfig, from the repository root
// so that the chart and manifest paths read as in the docs, with a HOME of their own so
// that nothing lands in the user's.
type installer struct {
	node *realnode.Cluster
	o    options
	helm string
}

// step is one command of the install, and what it feeds the command on stdin.
type step struct {
	args  []string
	stdin string
}

func cmd(args ...string) step { return step{args: args} }

// install does what docs/install.md tells a user, in its order: the control plane
// ("Control plane with kubectl" step 1 for the Secret, then "With Helm"), the deployment
// it manages the node as ("Managed mode" steps 1 and 2), the runtime plane, managed; then
// the sample Agent, which it waits for until an invoke from the dashboard answers.
func (in *installer) install(ctx context.Context) (*seed, error) {
	// No provisioner on the node: the chart's PVC binds to a hostPath volume made here;
	// exo-app runs as 65532, so the folder is open to it. Nothing is left from an
	// earlier run (Start has torn down whatever a crashed one mounted).
	if err := os.RemoveAll(filepath.Dir(in.o.pvDir())); err != nil {
		return nil, err
	}
	for _, d := range []string{in.o.pvDir(), in.o.home()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(in.o.pvDir(), 0o777); err != nil {
		return nil, err
	}
	jwtSecret, err := randomBase64(48)
	if err != nil {
		return nil, err
	}
	encryptionKey, err := randomBase64(32)
	if err != nil {
		return nil, err
	}
	controlPlane := []step{
		{args: []string{"kubectl", "apply", "-f", "-"}, stdin: persistentVolume(in.o.pvDir())},
		cmd("kubectl", "apply", "-f", "artifacts/platform/namespace.yaml"),
		cmd("kubectl", "-n", "exo", "create", "secret", "generic", "exo-app",
			"--from-literal=EXO_JWT_SECRET="+jwtSecret, "--from-literal=EXO_ENCRYPTION_KEY="+encryptionKey),
		cmd("helm", "install", "exo", "charts/exo-app", "-n", "exo", "--create-namespace",
			"--set", "existingSecret=exo-app",
			"--set", "config.EXO_BASE_URL="+in.o.baseURL(),
			// No mail relay here: sign-up without the confirmation mail (docs/platform.md).
			"--set-string", "config.EXO_SIGNUP_CONFIRM_EMAIL=false"),
		cmd("kubectl", "-n", "exo", "rollout", "status", "deployment/exo-app", "--timeout=5m"),
	}
	if err := in.run(ctx, controlPlane...); err != nil {
		return nil, err
	}

	slog.Info("seeding exo-app through the forwarder", "url", in.o.baseURL())
	s, err := seedPlatform(ctx, in.o.baseURL())
	if err != nil {
		return nil, err
	}

	sample, err := sampleAgent(in.o.root)
	if err != nil {
		return nil, err
	}
	runtimePlane := []step{
		cmd("kubectl", "apply", "-f", "artifacts/manager/namespace.yaml"),
		cmd("kubectl", "-n", "agentkube-system", "create", "secret", "generic", "agentkube-auth", "--from-literal=token="+s.deploymentToken),
		cmd("helm", "install", "agentkube", "charts/agentkube", "-n", "agentkube-system", "--create-namespace",
			"--set", "manager.managed=true,manager.baseURL="+managerBaseURL+",manager.clusterID=run-cluster"),
		cmd("kubectl", "-n", "agentkube-system", "rollout", "status", "deployment/agentkube-manager", "--timeout=5m"),
		cmd("kubectl", "wait", "--for=condition=Available", "apiservice/v1alpha1.subresources.agentkube.io", "--timeout=3m"),
		{args: []string{"kubectl", "apply", "-f", "-"}, stdin: sample},
		cmd("kubectl", "-n", "default", "wait", "--for=jsonpath={.status.phase}=Ready", "agent/hello", "--timeout=5m"),
	}
	if err := in.run(ctx, runtimePlane...); err != nil {
		return nil, err
	}
	slog.Info("invoking the sample Agent from the dashboard, through the tunnel")
	if err := s.invokeHello(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// run runs steps in order and stops at the first that fails.
func (in *installer) run(ctx context.Context, steps ...step) error {
	for _, s := range steps {
		slog.Info("running", "command", shown(s.args))
		tool := filepath.Join(in.node.BinDir, "kubectl")
		if s.args[0] == "helm" {
			tool = in.helm
		}
		c := exec.CommandContext(ctx, tool, s.args[1:]...)
		c.Dir = in.o.root
		c.Env = append(os.Environ(), "KUBECONFIG="+in.node.Kubeconfig, "HOME="+in.o.home())
		c.Stdin = strings.NewReader(s.stdin)
		if out, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w\n%s", shown(s.args), err, out)
		}
	}
	return nil
}

// explain adds what shows why an install failed: the pods and their states, and where
// the logs are.
func (in *installer) explain(err error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pods, perr := in.node.Kubectl(ctx, "get", "pods", "-A", "-o", "wide")
	if perr != nil {
		pods = perr.Error()
	}
	return fmt.Errorf("%w\npods:\n%s(the daemons' logs are in %s/log, the pods' in %s/log/pods; they stay after the run)",
		err, pods, in.o.nodeDir(), in.o.nodeDir())
}

// shown is a command as logged: the values of literal Secrets elided.
func shown(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if literal, ok := strings.CutPrefix(a, "--from-literal="); ok {
			key, _, _ := strings.Cut(literal, "=")
			a = "--from-literal=" + key + "=…"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

func randomBase64(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// persistentVolume is the volume exo-app's PVC (exo-app-data, 5Gi, no storage class)
// binds to.
func persistentVolume(path string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: PersistentVolume
metadata:
  name: exo-app-data
spec:
  capacity:
    storage: 5Gi
  accessModes: ["ReadWriteOnce"]
  persistentVolumeReclaimPolicy: Retain
  hostPath:
    path: %q
    type: Directory
`, path)
}

// sampleImage is the image line of artifacts/samples/agent-hello.yaml.
var sampleImage = regexp.MustCompile(`(?m)^([ \t]+image:[ \t]*)\S+[ \t]*$`)

// sampleAgent is artifacts/samples/agent-hello.yaml with the node's shell image in
// place of busybox from Docker Hub: the node has no network, so nothing is pulled.
func sampleAgent(root string) (string, error) {
	path := filepath.Join(root, "artifacts", "samples", "agent-hello.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if n := len(sampleImage.FindAll(b, -1)); n != 1 {
		return "", fmt.Errorf("%s: want one image line to replace, found %d", path, n)
	}
	return sampleImage.ReplaceAllString(string(b), "${1}"+realnode.BusyboxImageRef), nil
}
