package webhook_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
)

const toolDenialMark = `admission webhook "tools.agentkube.io" denied the request`

func postgresTool(name, secret, key string) *v1alpha1.Tool {
	return &v1alpha1.Tool{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.ToolSpec{
			Type: v1alpha1.ToolTypePostgres,
			Config: v1alpha1.ToolConfig{
				Hostname:       "orders-db.data.svc",
				DatabaseName:   "orders",
				Username:       "agent",
				CredentialsRef: &v1alpha1.SecretKeyRef{Name: secret, Key: key},
			},
			Permissions: &v1alpha1.ToolPermissions{ReadOnly: true, Grants: []v1alpha1.ToolGrant{
				{Resource: "public.orders", Privileges: []string{"SELECT"}},
			}},
		},
	}
}

func createCredentials(ctx context.Context, t testing.TB, ns, name string) {
	t.Helper()
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		StringData: map[string]string{"password": "s3cret"},
	}
	if _, err := cluster.Kube.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestToolAdmission(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 2*time.Minute)
	ns := cluster.CreateNamespace(t)
	createCredentials(ctx, t, ns, "db-creds")
	tools := cluster.Agentkube.AgentkubeV1alpha1().Tools(ns)

	refused := func(t *testing.T, err error, want ...string) {
		t.Helper()
		if err == nil {
			t.Fatal("admitted")
		}
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), toolDenialMark) {
			t.Fatalf("want the webhook's 422, got %v", err)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("message lacks %q: %v", w, err)
			}
		}
	}

	t.Run("missing Secret is refused naming it", func(t *testing.T) {
		_, err := tools.Create(ctx, postgresTool("no-secret", "nope", "password"), metav1.CreateOptions{})
		refused(t, err, fmt.Sprintf(`spec.config.credentialsRef: Secret "nope" not found in namespace %q`, ns))
	})
	t.Run("missing key is refused naming it", func(t *testing.T) {
		_, err := tools.Create(ctx, postgresTool("no-key", "db-creds", "token"), metav1.CreateOptions{})
		refused(t, err, `spec.config.credentialsRef.key: Secret "db-creds" in namespace`, `has no key "token"`)
	})
	t.Run("key added a moment ago is seen", func(t *testing.T) {
		createCredentials(ctx, t, ns, "late-key")
		_, err := tools.Create(ctx, postgresTool("late-key", "late-key", "token"), metav1.CreateOptions{})
		refused(t, err, `has no key "token"`)
		secret, err := cluster.Kube.CoreV1().Secrets(ns).Get(ctx, "late-key", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		secret.Data["token"] = []byte("t0k3n")
		if _, err := cluster.Kube.CoreV1().Secrets(ns).Update(ctx, secret, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := tools.Create(ctx, postgresTool("late-key", "late-key", "token"), metav1.CreateOptions{}); err != nil {
			t.Fatalf("Tool refused right after its key was added: %v", err)
		}
	})
	t.Run("missing config keys and a bad privilege are refused together", func(t *testing.T) {
		tool := postgresTool("incomplete", "db-creds", "password")
		tool.Spec.Config.DatabaseName = ""
		tool.Spec.Permissions.Grants[0].Privileges = []string{"SELECT", "DELETE"}
		_, err := tools.Create(ctx, tool, metav1.CreateOptions{})
		refused(t, err, "spec.config.databaseName: required for postgres tools",
			`spec.permissions.grants[0].privileges[1]: "DELETE" writes, but permissions.readOnly is true`)
	})
	t.Run("valid Tool is admitted, bad spec update refused, metadata update ratcheted", func(t *testing.T) {
		createCredentials(ctx, t, ns, "ratchet-creds")
		tool, err := tools.Create(ctx, postgresTool("orders", "ratchet-creds", "password"), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("valid Tool refused: %v", err)
		}
		bad := tool.DeepCopy()
		bad.Spec.Config.Hostname = ""
		_, err = tools.Update(ctx, bad, metav1.UpdateOptions{})
		refused(t, err, "spec.config.hostname: required for postgres tools")

		// The Secret goes away later: the Tool's labels must still be editable.
		if err := cluster.Kube.CoreV1().Secrets(ns).Delete(ctx, "ratchet-creds", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		tool.Labels = map[string]string{"team": "orders"}
		if _, err := tools.Update(ctx, tool, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("metadata-only update of a Tool whose Secret is gone was refused: %v", err)
		}
	})
	t.Run("kubernetes Tool needs no config", func(t *testing.T) {
		tool := &v1alpha1.Tool{
			ObjectMeta: metav1.ObjectMeta{Name: "cluster"},
			Spec: v1alpha1.ToolSpec{Type: v1alpha1.ToolTypeKubernetes, Permissions: &v1alpha1.ToolPermissions{
				Grants: []v1alpha1.ToolGrant{{Resource: "team-a", Privileges: []string{"get", "list"}}},
			}},
		}
		if _, err := tools.Create(ctx, tool, metav1.CreateOptions{}); err != nil {
			t.Fatalf("kubernetes Tool refused: %v", err)
		}
	})
}
