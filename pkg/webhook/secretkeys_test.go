package webhook

import (
	"bytes"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestStripSecretKeepsNoValues guards the promise that the Secret key index holds key
// names only: no value, and no annotation (kubectl's last-applied-configuration
// carries the whole Secret).
func TestStripSecretKeepsNoValues(t *testing.T) {
	in := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: "db", Namespace: "ns", ResourceVersion: "7",
			Annotations:   map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"data":{"password":"c2VjcmV0"}}`},
			Labels:        map[string]string{"team": "x"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
		},
		Data:       map[string][]byte{"password": []byte("secret"), "empty": nil},
		StringData: map[string]string{"token": "secret"},
	}
	out, err := stripSecret(in)
	if err != nil {
		t.Fatal(err)
	}
	s := out.(*corev1.Secret)
	if s.Name != "db" || s.Namespace != "ns" || s.ResourceVersion != "7" {
		t.Fatalf("identity lost: %+v", s.ObjectMeta)
	}
	if s.Annotations != nil || s.Labels != nil || s.ManagedFields != nil || s.StringData != nil {
		t.Fatalf("kept more than key names: %+v", s)
	}
	if !bytes.Equal(s.Data["password"], present) || s.Data["empty"] != nil || len(s.Data) != 2 {
		t.Fatalf("keys: %v", s.Data)
	}
	if !bytes.Equal(in.Data["password"], []byte("secret")) {
		t.Fatal("the informer's input was modified")
	}
}
