package cluster

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/exo-in-go/exo/pkg/platform/platformtest"
	"github.com/exo-in-go/exo/test/framework"
	"github.com/exo-in-go/exo/test/poll"
)

// command runs one of the user's commands (kubectl, helm, or kubectl agent through
// the plugin on PATH) against the node's admin kubeconfig, from the repository root
// so that chart and artifact paths read as in docs/install.md.
func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	path := filepath.Join(env.bin, name)
	if name == "kubectl" {
		path = filepath.Join(env.node.BinDir, "kubectl")
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = framework.RepoRoot()
	cmd.Env = append(os.Environ(),
		"KUBECONFIG="+env.node.Kubeconfig,
		"PATH="+env.bin+":"+env.node.BinDir+":"+os.Getenv("PATH"),
		"HOME="+env.node.Dir, // helm's and kubectl's caches, not the user's
	)
	return cmd
}

// sh runs a command and returns its standard output; a failure ends the test with its
// standard error.
func sh(t testing.TB, stdin string, name string, args ...string) string {
	t.Helper()
	out, errOut, err := try(stdin, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// try runs a command and returns its output and error, for commands that are meant
// to fail.
func try(stdin string, name string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := command(ctx, name, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err = cmd.Run()
	return o.String(), e.String(), err
}

// waitAvailable waits until every Deployment of the namespaces is Available with all
// its replicas updated.
func waitAvailable(t testing.TB, timeout time.Duration, namespaces ...string) {
	t.Helper()
	poll.UntilNamed(t, "Deployments available in "+strings.Join(namespaces, ", "), timeout, func() error {
		for _, ns := range namespaces {
			deps, err := env.node.Kube.AppsV1().Deployments(ns).List(context.Background(), metav1.ListOptions{})
			if err != nil {
				return err
			}
			if len(deps.Items) == 0 {
				return fmt.Errorf("no Deployment in %s yet", ns)
			}
			for _, d := range deps.Items {
				if !available(&d) {
					return fmt.Errorf("%s/%s: %d/%d available", ns, d.Name, d.Status.AvailableReplicas, ptrOr(d.Spec.Replicas, 1))
				}
			}
		}
		return nil
	})
}

func available(d *appsv1.Deployment) bool {
	want := ptrOr(d.Spec.Replicas, 1)
	if d.Status.ObservedGeneration < d.Generation || d.Status.UpdatedReplicas != want || d.Status.AvailableReplicas != want {
		return false
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable && c.Status == "True" {
			return true
		}
	}
	return false
}

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

// platform is exo-app's API as a signed-in user reaches it: by its Service's cluster DNS
// name, from inside the node's network (the test's side of an ingress).
type platform struct {
	url    string
	token  string
	client *http.Client
}

// exoURL is exo-app's in-cluster address, its EXO_BASE_URL here and the manager's
// AGENTKUBE_BASE_URL: the tunnel reaches the platform through the Service by name.
const exoURL = "http://exo-app.exo.svc:9092"

func newPlatform() *platform {
	return &platform{url: exoURL, client: &http.Client{
		Transport: &http.Transport{DialContext: dialCluster},
		Timeout:   2 * time.Minute,
	}}
}

// dialCluster dials from inside the node's network as a pod would, down to the DNS
// search path: a pod's resolv.conf completes <service>.<namespace>.svc with
// cluster.local, and the test's resolver has no search path of its own.
func dialCluster(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(host, ".svc") {
		address = net.JoinHostPort(host+".cluster.local", port)
	}
	return env.node.DialContext(ctx, network, address)
}

// call sends a JSON request (platformtest.Call) and decodes a successful JSON answer
// into out; it returns the status and logs an error answer.
func (p *platform) call(t testing.TB, method, path string, body, out any) int {
	t.Helper()
	res := platformtest.Call(t, p.client, method, p.url+path, p.token, body)
	if res.Status >= 300 {
		t.Logf("%s %s: %d: %s", method, path, res.Status, res.Body)
	} else if out != nil {
		res.JSON(t, out)
	}
	return res.Status
}

// must is call for requests that have to succeed.
func (p *platform) must(t testing.TB, method, path string, body, out any) {
	t.Helper()
	if code := p.call(t, method, path, body, out); code >= 300 {
		t.Fatalf("%s %s answered %d", method, path, code)
	}
}
