// Package mcp reconciles an MCP proxy into a Deployment and a Service.
package mcp

import (
	"context"
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/controllers/ctrlutil"
	"github.com/exo-in-go/exo/pkg/controllers/internal/workload"
	"github.com/exo-in-go/exo/pkg/runtimes"
)

// Name is the controller's name.
const Name = "mcp"

// EnvConfig carries the proxy's configuration (JSON) into its container.
const EnvConfig = "AGENTKUBE_MCP_CONFIG"

// Reconciler reconciles MCPs.
type Reconciler struct {
	Client   client.Client
	Scheme   *runtime.Scheme
	Recorder recorder.EventRecorder
	Images   runtimes.Images
}

// +kubebuilder:rbac:groups=agentkube.io,resources=mcps,verbs=get;list;watch
// +kubebuilder:rbac:groups=agentkube.io,resources=mcps/status,verbs=get;patch;update
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;update

// SetupWithManager registers the controller.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).Named(Name).
		For(&agentkubev1alpha1.MCP{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Complete(ctrlutil.Instrument(Name, r))
}

// upstreamConfig is what the proxy reads: credentials appear only as the
// names of env vars that reference Secrets.
type upstreamConfig struct {
	Name     string   `json:"name"`
	Kind     string   `json:"kind"`
	Endpoint string   `json:"endpoint,omitempty"`
	Service  string   `json:"service,omitempty"`
	Command  []string `json:"command,omitempty"`
	TokenEnv string   `json:"tokenEnv,omitempty"`
	Allow    []string `json:"allow,omitempty"`
}

// Reconcile applies the proxy's Deployment and Service.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var m agentkubev1alpha1.MCP
	if err := r.Client.Get(ctx, req.NamespacedName, &m); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !m.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	var env []corev1.EnvVar
	var ups []upstreamConfig
	for i, u := range m.Spec.Upstreams {
		c := upstreamConfig{Name: u.Name, Kind: string(u.Kind), Endpoint: u.Endpoint, Command: u.Command}
		if u.MCPRef != nil {
			// Another MCP's Service, reached by its cluster DNS name.
			c.Service = fmt.Sprintf("%s.%s.svc", u.MCPRef.Name, m.Namespace)
		}
		if u.Auth != nil {
			c.TokenEnv = fmt.Sprintf("MCP_UPSTREAM_%d_TOKEN", i)
			env = append(env, workload.SecretEnv(c.TokenEnv, u.Auth.SecretRef.Name, u.Auth.SecretRef.Key))
		}
		if u.Tools != nil {
			c.Allow = u.Tools.Allow
		}
		ups = append(ups, c)
	}
	cfg, err := json.Marshal(map[string]any{"port": port(m.Spec.Port), "upstreams": ups})
	if err != nil {
		return ctrl.Result{}, err
	}
	env = append(env, corev1.EnvVar{Name: EnvConfig, Value: string(cfg)})
	image := m.Spec.Image
	if image == "" {
		image = r.Images.Component(runtimes.MCPProxy)
	}
	d := workload.Build(workload.Spec{
		Name: m.Name, Namespace: m.Namespace, Component: "mcp-proxy", Image: image,
		Env: env, Replicas: replicas(m.Spec.Replicas), Port: port(m.Spec.Port),
	})
	w := workload.Reconciler{Client: r.Client, Scheme: r.Scheme, Recorder: r.Recorder, StatusOf: func(o client.Object) *agentkubev1alpha1.WorkloadStatus {
		return &o.(*agentkubev1alpha1.MCP).Status
	}}
	return w.Reconcile(ctx, &m, d)
}

func port(p int32) int32 {
	if p == 0 {
		return 8080
	}
	return p
}

func replicas(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}
