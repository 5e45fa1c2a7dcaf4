package manager

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/test/framework"
	"github.com/exo-in-go/exo/test/poll"
)

func httpGet(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// applyManagerRBAC installs artifacts/manager/rbac.yaml with its bindings
// pointing at user instead of the ServiceAccount.
func applyManagerRBAC(t testing.TB, user string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(framework.RepoRoot(), "artifacts", "manager", "rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dec := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := dec.Read()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		var meta struct{ Kind string }
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatal(err)
		}
		var obj client.Object
		subject := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}
		switch meta.Kind {
		case "ClusterRole":
			obj = &rbacv1.ClusterRole{}
		case "Role":
			obj = &rbacv1.Role{}
		case "ClusterRoleBinding":
			obj = &rbacv1.ClusterRoleBinding{}
		case "RoleBinding":
			obj = &rbacv1.RoleBinding{}
		default:
			continue
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Fatalf("%s: %v", meta.Kind, err)
		}
		switch b := obj.(type) {
		case *rbacv1.ClusterRoleBinding:
			b.Subjects = subject
		case *rbacv1.RoleBinding:
			b.Subjects = subject
		}
		if err := cluster.Client.Create(context.Background(), obj); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create %s %s: %v", meta.Kind, obj.GetName(), err)
		}
	}
}

// TestReadinessRBACAndMetrics runs the manager as a user that starts with no
// permissions: /readyz answers 503 while its informers cannot sync, turns
// 200 once artifacts/manager/rbac.yaml is bound, and with exactly those
// permissions an Agent runs a run. /metrics then shows agentkube's metrics.
func TestReadinessRBACAndMetrics(t *testing.T) {
	const user = "agentkube-manager-under-test"
	cfg, _ := cluster.User(t, user)
	m := startManager(t, cfg, nil)
	probe := "http://" + m.ProbeAddr.String()

	var code int
	var body string
	poll.UntilNamed(t, "probe server answers", waitFor, func() (err error) { code, body, err = httpGet(probe + "/readyz"); return err })
	if code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz before the caches can sync = %d %s, want 503", code, body)
	}
	if code, _, _ := httpGet(probe + "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d", code)
	}

	applyManagerRBAC(t, user)
	poll.UntilNamed(t, "/readyz 200", waitFor, func() error {
		code, body, err := httpGet(probe + "/readyz")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})

	ns := cluster.CreateNamespace(t)
	startKubelet(t, ns)
	createAgent(t, customAgent(ns, "rbac", `echo "ran with least privilege"`))
	waitAgentPhase(t, ns, "rbac", agentkubev1alpha1.AgentPhaseReady)
	createRun(t, ns, "r1", "rbac", "")
	if run := waitRun(t, ns, "r1"); run.Status.Phase != agentkubev1alpha1.AgentRunPhaseSucceeded {
		t.Fatalf("run with the manifest's RBAC: %+v", run.Status)
	}

	metricsURL := "http://" + m.MetricsAddr.String() + "/metrics"
	poll.UntilNamed(t, "custom metrics", waitFor, func() error {
		code, body, err := httpGet(metricsURL)
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("%d %v", code, err)
		}
		for _, want := range []string{
			`agentkube_reconciles_total{controller="agent",result="success"}`,
			`agentkube_agent_invocations_total{trigger="Manual"}`,
			`agentkube_agent_runs_finished_total{phase="Succeeded",reason="Succeeded"}`,
			`agentkube_agent_run_duration_seconds_bucket{phase="Succeeded"`,
			`agentkube_agent_runs{phase="Succeeded"}`,
			`controller_runtime_reconcile_total{controller="agentrun"`,
		} {
			if !strings.Contains(body, want) {
				return fmt.Errorf("/metrics lacks %s", want)
			}
		}
		return nil
	})
}
