// Package llmgateway reconciles an LLMGateway into a Deployment and a Service.
package llmgateway

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
const Name = "llmgateway"

// EnvConfig carries the gateway's configuration (JSON) into its container.
const EnvConfig = "AGENTKUBE_LLM_GATEWAY_CONFIG"

// Reconciler reconciles LLMGateways.
type Reconciler struct {
	Client   client.Client
	Scheme   *runtime.Scheme
	Recorder recorder.EventRecorder
	Images   runtimes.Images
}

// +kubebuilder:rbac:groups=agentkube.io,resources=llmgateways,verbs=get;list;watch
// +kubebuilder:rbac:groups=agentkube.io,resources=llmgateways/status,verbs=get;patch;update

// SetupWithManager registers the controller.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).Named(Name).
		For(&agentkubev1alpha1.LLMGateway{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Complete(ctrlutil.Instrument(Name, r))
}

type upstreamConfig struct {
	agentkubev1alpha1.LLMUpstream `json:",inline"`
	// CredentialsEnv names the env var holding the key (a Secret reference).
	CredentialsEnv string `json:"credentialsEnv,omitempty"`
}

// Reconcile applies the gateway's Deployment and Service.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var g agentkubev1alpha1.LLMGateway
	if err := r.Client.Get(ctx, req.NamespacedName, &g); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !g.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	var env []corev1.EnvVar
	ups := make([]upstreamConfig, 0, len(g.Spec.Upstreams))
	for i, u := range g.Spec.Upstreams {
		c := upstreamConfig{LLMUpstream: *u.DeepCopy()}
		if u.CredentialsRef != nil {
			c.CredentialsEnv = fmt.Sprintf("LLM_UPSTREAM_%d_KEY", i)
			env = append(env, workload.SecretEnv(c.CredentialsEnv, u.CredentialsRef.Name, u.CredentialsRef.Key))
			c.CredentialsRef = nil
		}
		ups = append(ups, c)
	}
	port := g.Spec.Port
	if port == 0 {
		port = 8080
	}
	cfg, err := json.Marshal(map[string]any{"port": port, "upstreams": ups, "routing": g.Spec.Routing, "rateLimit": g.Spec.RateLimit})
	if err != nil {
		return ctrl.Result{}, err
	}
	env = append(env, corev1.EnvVar{Name: EnvConfig, Value: string(cfg)})
	image := g.Spec.Image
	if image == "" {
		image = r.Images.Component(runtimes.LLMGateway)
	}
	replicas := int32(1)
	if g.Spec.Replicas != nil {
		replicas = *g.Spec.Replicas
	}
	d := workload.Build(workload.Spec{
		Name: g.Name, Namespace: g.Namespace, Component: "llm-gateway", Image: image,
		Env: env, Replicas: replicas, Port: port,
	})
	w := workload.Reconciler{Client: r.Client, Scheme: r.Scheme, Recorder: r.Recorder, StatusOf: func(o client.Object) *agentkubev1alpha1.WorkloadStatus {
		return &o.(*agentkubev1alpha1.LLMGateway).Status
	}}
	return w.Reconcile(ctx, &g, d)
}
