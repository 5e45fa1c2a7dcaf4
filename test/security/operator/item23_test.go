package operator_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/go-logr/logr"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/connect"
	"github.com/exo-in-go/exo/pkg/connect/connecttest"
	"github.com/exo-in-go/exo/pkg/platform/platformtest"
	"github.com/exo-in-go/exo/pkg/tunnel"
	"github.com/exo-in-go/exo/test/framework"
	"github.com/exo-in-go/exo/test/poll"
)

// The secrets planted in the cluster's objects. None may reach exo-app.
const (
	secretEnv   = "env-value-s3cr3t-0f-the-agent"
	secretInput = "run-input-s3cr3t-0f-the-user"
	secretArg   = "run-arg-s3cr3t"
	secretOut   = "run-output-s3cr3t"
	secretPod   = "pod-env-s3cr3t"
	secretAnno  = "annotation-s3cr3t"
)

var secrets = []string{secretEnv, secretInput, secretArg, secretOut, secretPod, secretAnno}

// Item 23: whole Pods and AgentRuns, with run inputs and literal env
// values, were sent to exo-app and readable by every member with
// agents:read. Now the operator sends only what the dashboard shows, and
// exo-app trims again on receipt. Two attacks: a hostile (or old)
// operator sends whole objects, and a member reads what the real
// connector sent from a real cluster.
func TestItem23_NoEnvValuesOrRunInputsReachThePlatform(t *testing.T) {
	t.Run("hostile operator", func(t *testing.T) {
		for _, backend := range platformtest.Backends {
			t.Run(backend, func(t *testing.T) {
				a := startApp(t, backend, nil)
				u := a.signup(t, "owner@item23.test")
				depID, tok := a.deployment(t, u, "prod")
				op, err := dialOperator(t, a, tok)
				if err != nil {
					t.Fatal(err)
				}
				agent, run, pod := clusterObjects()
				objs := make([]tunnel.Object, 0, 3)
				for i, o := range []client.Object{agent, run, pod} {
					b, err := json.Marshal(o)
					if err != nil {
						t.Fatal(err)
					}
					kind := []string{"Agent", "AgentRun", "Pod"}[i]
					objs = append(objs, tunnel.Object{Kind: kind, Namespace: o.GetNamespace(), Name: o.GetName(), Object: b})
				}
				// Half in the snapshot, half as a delta: both paths trim.
				if err := op.snapshot(objs[0]); err != nil {
					t.Fatal(err)
				}
				poll.UntilTrue(t, "the snapshot", 10*time.Second, func() bool { return a.cluster(t, u, depID).Synced })
				if err := op.delta(objs[1:]...); err != nil {
					t.Fatal(err)
				}
				poll.UntilTrue(t, "the delta", 10*time.Second, func() bool { return len(a.cluster(t, u, depID).Objects) == 3 })
				checkNoSecrets(t, a, u, depID)
			})
		}
	})

	t.Run("real connector", func(t *testing.T) {
		if _, err := framework.BinaryDir(); err != nil {
			t.Fatalf("this test needs the Kubernetes binaries (hack/build-kube-binaries.sh): %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cluster, err := framework.Start(ctx, framework.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := cluster.Stop(); err != nil {
				t.Error(err)
			}
		}()
		agent, run, pod := clusterObjects()
		for _, o := range []client.Object{agent, run, pod} {
			if err := cluster.Client.Create(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
		for _, backend := range platformtest.Backends {
			t.Run(backend, func(t *testing.T) {
				a := startApp(t, backend, nil)
				u := a.signup(t, "member@item23.test")
				depID, tok := a.deployment(t, u, "prod")
				_, stop := connecttest.Start(t, cluster.Config, connect.Options{
					BaseURL: a.url, Token: tok, ClusterID: "item23", Version: "test",
					HeartbeatInterval: 200 * time.Millisecond, HandshakeTimeout: 5 * time.Second,
					Logger: logr.Discard(),
				})
				defer stop()
				poll.UntilTrue(t, "the connector's snapshot", 30*time.Second, func() bool { return len(a.cluster(t, u, depID).Objects) == 3 })
				checkNoSecrets(t, a, u, depID)
			})
		}
	})
}

// clusterObjects are an Agent with a literal env value and the whole spec
// in kubectl's last-applied annotation, a run of it with input, args and
// output, and its pod with an env value.
func clusterObjects() (*agentkubev1alpha1.Agent, *agentkubev1alpha1.AgentRun, *corev1.Pod) {
	agent := &agentkubev1alpha1.Agent{
		TypeMeta: metav1.TypeMeta{APIVersion: "agentkube.io/v1alpha1", Kind: "Agent"},
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default", Annotations: map[string]string{
			"kubectl.kubernetes.io/last-applied-configuration": `{"spec":{"env":[{"name":"API_KEY","value":"` + secretAnno + `"}]}}`,
		}},
		Spec: agentkubev1alpha1.AgentSpec{
			Runtime: agentkubev1alpha1.RuntimeCustom, Image: "example.test/agent:1",
			Env: []corev1.EnvVar{{Name: "API_KEY", Value: secretEnv}},
		},
	}
	run := &agentkubev1alpha1.AgentRun{
		TypeMeta:   metav1.TypeMeta{APIVersion: "agentkube.io/v1alpha1", Kind: "AgentRun"},
		ObjectMeta: metav1.ObjectMeta{Name: "hello-1", Namespace: "default"},
		Spec: agentkubev1alpha1.AgentRunSpec{
			AgentRef: agentkubev1alpha1.LocalObjectReference{Name: "hello"},
			Input:    secretInput, Args: []string{"--token", secretArg}, Trigger: agentkubev1alpha1.RunTrigger("Manual"),
		},
		Status: agentkubev1alpha1.AgentRunStatus{OutputTail: secretOut},
	}
	pod := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default",
			Labels: map[string]string{"app.kubernetes.io/managed-by": "agentkube-manager"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "runtime", Image: "example.test/agent:1",
			Env: []corev1.EnvVar{{Name: "API_KEY", Value: secretPod}},
		}}},
	}
	return agent, run, pod
}

// checkNoSecrets reads everything a member with agents:read can read of
// the view and looks for the planted secrets, then checks that what the
// dashboard shows is still there.
func checkNoSecrets(t *testing.T, a *app, u user, depID string) {
	t.Helper()
	for _, path := range []string{"/cluster", "/cluster?kind=AgentRun", "/cluster?kind=Pod", "/agents"} {
		st, body, _ := a.call(t, "GET", "/api/v1/deployments/"+depID+path, u.token, nil)
		if st != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, st, body)
		}
		for _, s := range secrets {
			if strings.Contains(string(body), s) {
				t.Fatalf("GET %s reveals %q:\n%s", path, s, body)
			}
		}
		for _, field := range []string{"managedFields", "annotations", `"env"`, `"input"`, `"args"`, "outputTail"} {
			if strings.Contains(string(body), field) {
				t.Fatalf("GET %s carries %s:\n%s", path, field, body)
			}
		}
	}
	// What the dashboard reads is kept (pkg/platform/ui/static/js/pages/agents.js).
	v := a.cluster(t, u, depID)
	var agent, run struct {
		Metadata struct {
			CreationTimestamp string `json:"creationTimestamp"`
		}
		Spec struct {
			Runtime  string
			AgentRef struct{ Name string } `json:"agentRef"`
			Trigger  string
		}
	}
	for _, o := range v.Objects {
		switch o.Kind {
		case "Agent":
			_ = json.Unmarshal(o.Object, &agent)
		case "AgentRun":
			_ = json.Unmarshal(o.Object, &run)
		}
	}
	if agent.Spec.Runtime != "Custom" || run.Spec.AgentRef.Name != "hello" || run.Spec.Trigger != "Manual" {
		t.Fatalf("the dashboard's fields are gone: agent %+v, run %+v", agent, run)
	}
	var agents struct {
		Items []struct{ Name, Runtime string }
	}
	a.must(t, http.StatusOK, "GET", "/api/v1/deployments/"+depID+"/agents", u.token, nil, &agents)
	if len(agents.Items) != 1 || agents.Items[0].Runtime != "Custom" {
		t.Fatalf("agents list: %+v", agents)
	}
}
