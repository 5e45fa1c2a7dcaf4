package webhook

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
)

func TestValidateToolSpec(t *testing.T) {
	creds := &v1alpha1.SecretKeyRef{Name: "db-creds", Key: "password"}
	pg := v1alpha1.ToolConfig{Hostname: "db", DatabaseName: "app", Username: "agent", CredentialsRef: creds}
	grants := func(readOnly bool, g ...v1alpha1.ToolGrant) *v1alpha1.ToolPermissions {
		return &v1alpha1.ToolPermissions{ReadOnly: readOnly, Grants: g}
	}
	for _, tc := range []struct {
		name string
		spec v1alpha1.ToolSpec
		want []string // substrings of the message, in order; none means valid
	}{
		{name: "postgres complete", spec: v1alpha1.ToolSpec{Type: v1alpha1.ToolTypePostgres, Config: pg}},
		{
			name: "postgres missing keys",
			spec: v1alpha1.ToolSpec{Type: v1alpha1.ToolTypePostgres, Config: v1alpha1.ToolConfig{Hostname: "db"}},
			want: []string{
				"spec.config.databaseName: required for postgres tools",
				"spec.config.username: required for postgres tools",
				"spec.config.credentialsRef: required for postgres tools",
			},
		},
		{name: "kubernetes needs nothing", spec: v1alpha1.ToolSpec{Type: v1alpha1.ToolTypeKubernetes}},
		{name: "http needs url", spec: v1alpha1.ToolSpec{Type: v1alpha1.ToolTypeHTTP}, want: []string{"spec.config.url: required for http tools"}},
		{
			name: "http url must be absolute",
			spec: v1alpha1.ToolSpec{Type: v1alpha1.ToolTypeHTTP, Config: v1alpha1.ToolConfig{URL: "example.com/api"}},
			want: []string{`spec.config.url: "example.com/api" is not an absolute http:// or https:// URL`},
		},
		{
			name: "sql privileges are case-insensitive",
			spec: v1alpha1.ToolSpec{Type: v1alpha1.ToolTypePostgres, Config: pg, Permissions: grants(true,
				v1alpha1.ToolGrant{Resource: "public.orders", Privileges: []string{"select", "Usage"}})},
		},
		{
			name: "unknown privilege",
			spec: v1alpha1.ToolSpec{Type: v1alpha1.ToolTypePostgres, Config: pg, Permissions: grants(false,
				v1alpha1.ToolGrant{Resource: "public", Privileges: []string{"SELECT", "FLY"}})},
			want: []string{`spec.permissions.grants[0].privileges[1]: Unsupported value: "FLY"`},
		},
		{
			name: "write privilege under readOnly",
			spec: v1alpha1.ToolSpec{Type: v1alpha1.ToolTypeMySQL, Config: pg, Permissions: grants(true,
				v1alpha1.ToolGrant{Resource: "app.*", Privileges: []string{"SELECT", "insert"}})},
			want: []string{`spec.permissions.grants[0].privileges[1]: "insert" writes, but permissions.readOnly is true`},
		},
		{
			name: "kubernetes verbs and namespaces",
			spec: v1alpha1.ToolSpec{Type: v1alpha1.ToolTypeKubernetes, Permissions: grants(false,
				v1alpha1.ToolGrant{Resource: "team-a", Privileges: []string{"get", "list", "delete"}},
				v1alpha1.ToolGrant{Resource: "*", Privileges: []string{"watch"}})},
		},
		{
			name: "kubernetes resource must be a namespace",
			spec: v1alpha1.ToolSpec{Type: v1alpha1.ToolTypeKubernetes, Permissions: grants(false,
				v1alpha1.ToolGrant{Resource: "Team_A", Privileges: []string{"GET"}})},
			want: []string{`spec.permissions.grants[0].resource: "Team_A" must be a namespace name or *`,
				`spec.permissions.grants[0].privileges[0]: Unsupported value: "GET"`},
		},
		{
			name: "http grants are path prefixes",
			spec: v1alpha1.ToolSpec{Type: v1alpha1.ToolTypeHTTP, Config: v1alpha1.ToolConfig{URL: "https://api.example.com"},
				Permissions: grants(true, v1alpha1.ToolGrant{Resource: "v1/items", Privileges: []string{"GET"}})},
			want: []string{`spec.permissions.grants[0].resource: "v1/items" must be a path prefix starting with /`},
		},
		{
			name: "ssh has no grants",
			spec: v1alpha1.ToolSpec{Type: v1alpha1.ToolTypeSSH, Config: v1alpha1.ToolConfig{Hostname: "h", Username: "u", CredentialsRef: creds},
				Permissions: grants(false, v1alpha1.ToolGrant{Resource: "/", Privileges: []string{"root"}})},
			want: []string{"spec.permissions.grants: ssh tools have no engine-native grants"},
		},
		{
			name: "custom tools bring their own vocabulary",
			spec: v1alpha1.ToolSpec{Type: v1alpha1.ToolTypeCustom, Image: "example/tool:1",
				Permissions: grants(false, v1alpha1.ToolGrant{Resource: "anything", Privileges: []string{"whatever"}})},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := ValidateToolSpec(&tc.spec, field.NewPath("spec"))
			msg := formatErrors(errs)
			if len(tc.want) == 0 {
				if len(errs) > 0 {
					t.Fatalf("valid spec rejected: %s", msg)
				}
				return
			}
			if len(errs) != len(tc.want) {
				t.Fatalf("got %d errors (%s), want %d", len(errs), msg, len(tc.want))
			}
			rest := msg
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("message %q lacks %q (in order)", msg, w)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

// TestEveryCRDTypeIsKnown reads the type enum of the shipped Tool CRD, so a type added
// there without admission rules fails here.
func TestEveryCRDTypeIsKnown(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "artifacts", "crds", "agentkube.io_tools.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(data, crd); err != nil {
		t.Fatal(err)
	}
	enum := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["type"].Enum
	if len(enum) == 0 {
		t.Fatal("no type enum in the Tool CRD")
	}
	for _, raw := range enum {
		var typ v1alpha1.ToolType
		if err := json.Unmarshal(raw.Raw, &typ); err != nil {
			t.Fatal(err)
		}
		if _, ok := toolTypes[typ]; !ok {
			t.Errorf("type %s has no admission rules", typ)
		}
	}
}
