// Package claw reconciles a Claw (clawx package host) into a Deployment and a
// Service.
package claw

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
const Name = "claw"

// Environment of the host container.
const (
	EnvRegistries = "CLAW_REGISTRIES" // JSON array of {name,url}
	EnvPackages   = "CLAW_PACKAGES"   // JSON array of {name,version,registry}
	EnvAuthToken  = "CLAW_AUTH_TOKEN" // bearer token inbound calls must present
)

// Reconciler reconciles Claws.
type Reconciler struct {
	Client   client.Client
	Scheme   *runtime.Scheme
	Recorder recorder.EventRecorder
	Images   runtimes.Images
}

// +kubebuilder:rbac:groups=agentkube.io,resources=claws,verbs=get;list;watch
// +kubebuilder:rbac:groups=agentkube.io,resources=claws/status,verbs=get;patch;update

// SetupWithManager registers the controller.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).Named(Name).
		For(&agentkubev1alpha1.Claw{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Complete(ctrlutil.Instrument(Name, r))
}

// Reconcile applies the host's Deployment and Service.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var c agentkubev1alpha1.Claw
	if err := r.Client.Get(ctx, req.NamespacedName, &c); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !c.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	registries, _ := json.Marshal(c.Spec.Registries) // plain structs always marshal
	packages, _ := json.Marshal(c.Spec.Packages)
	env := []corev1.EnvVar{
		{Name: EnvRegistries, Value: string(registries)},
		{Name: EnvPackages, Value: string(packages)},
	}
	if ref := c.Spec.AuthSecretRef; ref != nil {
		env = append(env, workload.SecretEnv(EnvAuthToken, ref.Name, ref.Key))
	}
	image := c.Spec.Image
	invalid := ""
	if image == "" {
		switch c.Spec.Distribution {
		case "", "openclaw":
			image = r.Images.Component(runtimes.OpenClaw)
		case "nanoclaw":
			image = r.Images.Component(runtimes.NanoClaw)
		default:
			invalid = fmt.Sprintf("unknown distribution %q: use openclaw or nanoclaw, or set spec.image", c.Spec.Distribution)
		}
	}
	for _, p := range c.Spec.Packages {
		if p.Registry != "" && !hasRegistry(c.Spec.Registries, p.Registry) {
			invalid = fmt.Sprintf("package %q names registry %q, which is not in spec.registries", p.Name, p.Registry)
		}
	}
	port := c.Spec.Service.Port
	if port == 0 {
		port = 8080
	}
	replicas := int32(1)
	if c.Spec.Replicas != nil {
		replicas = *c.Spec.Replicas
	}
	d := workload.Build(workload.Spec{
		Name: c.Name, Namespace: c.Namespace, Component: "claw", Image: image,
		Env: env, Replicas: replicas, Port: 8080, ServicePort: port, ServiceType: c.Spec.Service.Type,
	})
	d.Invalid = invalid
	w := workload.Reconciler{Client: r.Client, Scheme: r.Scheme, Recorder: r.Recorder, StatusOf: func(o client.Object) *agentkubev1alpha1.WorkloadStatus {
		return &o.(*agentkubev1alpha1.Claw).Status
	}}
	return w.Reconcile(ctx, &c, d)
}

func hasRegistry(rs []agentkubev1alpha1.ClawRegistry, name string) bool {
	for _, r := range rs {
		if r.Name == name {
			return true
		}
	}
	return false
}
