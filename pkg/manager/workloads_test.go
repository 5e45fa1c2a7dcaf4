package manager

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/controllers/tool"
	"github.com/exo-in-go/exo/test/poll"
)

// TestMCPDeploymentAndService: an MCP becomes a Deployment and a Service whose
// container references the upstream's Secret instead of copying it.
func TestMCPDeploymentAndService(t *testing.T) {
	startManager(t, cluster.Config, nil)
	ns := cluster.CreateNamespace(t)
	ctx := context.Background()
	m := &agentkubev1alpha1.MCP{
		ObjectMeta: metav1.ObjectMeta{Name: "tools", Namespace: ns},
		Spec: agentkubev1alpha1.MCPSpec{Upstreams: []agentkubev1alpha1.MCPUpstream{{
			Name: "gh", Kind: "http", Endpoint: "https://mcp.example.com",
			Auth: &agentkubev1alpha1.MCPUpstreamAuth{Mode: "bearer", SecretRef: agentkubev1alpha1.SecretKeyRef{Name: "gh", Key: "token"}},
		}}},
	}
	if _, err := cluster.Agentkube.AgentkubeV1alpha1().MCPs(ns).Create(ctx, m, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.UntilNamed(t, "deployment and service", waitFor, func() error {
		d, err := cluster.Kube.AppsV1().Deployments(ns).Get(ctx, "tools", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if _, err := cluster.Kube.CoreV1().Services(ns).Get(ctx, "tools", metav1.GetOptions{}); err != nil {
			return err
		}
		env := envOf(d.Spec.Template.Spec.Containers[0])["MCP_UPSTREAM_0_TOKEN"]
		if env.ValueFrom == nil || env.ValueFrom.SecretKeyRef == nil || env.ValueFrom.SecretKeyRef.Name != "gh" {
			return fmt.Errorf("token env = %+v", env)
		}
		return nil
	})
	// No controller-manager runs, so the Deployment never becomes available.
	poll.UntilNamed(t, "status", waitFor, func() error {
		got, err := cluster.Agentkube.AgentkubeV1alpha1().MCPs(ns).Get(ctx, "tools", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got.Status.Phase != agentkubev1alpha1.WorkloadPhaseProgressing || got.Status.ServiceName != "tools" || got.Status.Replicas != 1 {
			return fmt.Errorf("status = %+v", got.Status)
		}
		return nil
	})
}

// TestToolBastionOnDemand: no bastion while idle; activity starts one with the
// credential referenced from its Secret; idleTimeout (on a fake clock) later
// it is gone.
func TestToolBastionOnDemand(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	startManager(t, cluster.Config, func(o *Options) { o.Clock = clk })
	ns := cluster.CreateNamespace(t)
	ctx := context.Background()
	createSecret(t, ns, "pg", map[string]string{"password": "s3cret"})
	tl := &agentkubev1alpha1.Tool{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
		Spec: agentkubev1alpha1.ToolSpec{
			Type:        agentkubev1alpha1.ToolTypePostgres,
			Config:      agentkubev1alpha1.ToolConfig{Hostname: "pg.example", Port: 5432, CredentialsRef: &agentkubev1alpha1.SecretKeyRef{Name: "pg", Key: "password"}},
			IdleTimeout: &metav1.Duration{Duration: 15 * time.Minute},
		},
	}
	if _, err := cluster.Agentkube.AgentkubeV1alpha1().Tools(ns).Create(ctx, tl, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	toolPhase := func(want string) {
		t.Helper()
		poll.UntilNamed(t, "tool "+want, waitFor, func() error {
			got, err := cluster.Agentkube.AgentkubeV1alpha1().Tools(ns).Get(ctx, "db", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if got.Status.Phase != want {
				return fmt.Errorf("phase %q %v", got.Status.Phase, meta.FindStatusCondition(got.Status.Conditions, "Ready"))
			}
			return nil
		})
	}
	toolPhase(agentkubev1alpha1.ToolPhaseIdle)

	// A session marks activity: the bastion starts.
	got, err := cluster.Agentkube.AgentkubeV1alpha1().Tools(ns).Get(ctx, "db", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got.Annotations = map[string]string{tool.AnnotationLastActivity: clk.Now().UTC().Format(time.RFC3339)}
	if _, err := cluster.Agentkube.AgentkubeV1alpha1().Tools(ns).Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pod *corev1.Pod
	poll.UntilNamed(t, "bastion", waitFor, func() (err error) { pod, err = getPod(t, ns, tool.BastionName("db")); return err })
	cred := envOf(pod.Spec.Containers[0])[tool.EnvCredential]
	if cred.Value != "" || cred.ValueFrom == nil || cred.ValueFrom.SecretKeyRef == nil || cred.ValueFrom.SecretKeyRef.Name != "pg" {
		t.Fatalf("credential env = %+v, want a Secret reference", cred)
	}
	toolPhase(agentkubev1alpha1.ToolPhaseConnecting)

	// idleTimeout without activity: torn down.
	clk.Step(16 * time.Minute)
	poll.UntilNamed(t, "bastion gone", waitFor, func() error {
		if _, err := getPod(t, ns, tool.BastionName("db")); err == nil {
			return fmt.Errorf("bastion still there")
		}
		return nil
	})
	toolPhase(agentkubev1alpha1.ToolPhaseIdle)
}
