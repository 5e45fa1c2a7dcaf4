// Package workload reconciles the kinds that run as a Deployment plus a
// Service (MCP, LLMGateway, Claw): each kind builds the desired objects, this
// package applies them and turns the Deployment's availability into status.
package workload

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/controllers/ctrlutil"
)

// StatusOf returns a pointer to the WorkloadStatus of an object of the kind.
type StatusOf func(client.Object) *agentkubev1alpha1.WorkloadStatus

// Desired is what one object reconciles into.
type Desired struct {
	Deployment *appsv1.Deployment
	Service    *corev1.Service
	// Invalid, when set, is a spec problem only the user can fix; nothing
	// is applied.
	Invalid string
}

// Reconciler applies Desired objects for one kind.
type Reconciler struct {
	StatusOf StatusOf
	Client   client.Client
	Scheme   *runtime.Scheme
	Recorder recorder.EventRecorder
}

// Reconcile applies d for obj (already fetched) and writes obj's status.
func (r *Reconciler) Reconcile(ctx context.Context, obj client.Object, d Desired) (ctrl.Result, error) {
	orig := obj.DeepCopyObject().(client.Object)
	st := r.StatusOf(obj)
	gen := obj.GetGeneration()
	st.ObservedGeneration = gen

	if d.Invalid != "" {
		ctrlutil.SetCondition(&st.Conditions, gen, agentkubev1alpha1.ConditionReconciled, metav1.ConditionFalse, agentkubev1alpha1.ReasonInvalid, d.Invalid)
		ctrlutil.SetCondition(&st.Conditions, gen, agentkubev1alpha1.ConditionReady, metav1.ConditionFalse, agentkubev1alpha1.ReasonInvalid, d.Invalid)
		st.Phase = agentkubev1alpha1.WorkloadPhaseFailed
		return ctrl.Result{}, r.patchStatus(ctx, obj, orig)
	}

	svc, err := r.apply(ctx, obj, d.Service, func(existing, desired client.Object) {
		e, w := existing.(*corev1.Service), desired.(*corev1.Service)
		// ClusterIP(s) are allocated by the API server and immutable.
		w.Spec.ClusterIP, w.Spec.ClusterIPs = e.Spec.ClusterIP, e.Spec.ClusterIPs
		e.Spec = w.Spec
	})
	if err != nil {
		return r.conflictOr(ctx, obj, orig, err)
	}
	dep, err := r.apply(ctx, obj, d.Deployment, func(existing, desired client.Object) {
		existing.(*appsv1.Deployment).Spec = desired.(*appsv1.Deployment).Spec
	})
	if err != nil {
		return r.conflictOr(ctx, obj, orig, err)
	}
	ctrlutil.SetCondition(&st.Conditions, gen, agentkubev1alpha1.ConditionReconciled, metav1.ConditionTrue, agentkubev1alpha1.ReasonUpToDate,
		fmt.Sprintf("Deployment %s and Service %s match the spec.", dep.GetName(), svc.GetName()))
	st.ServiceName = svc.GetName()
	deployment := dep.(*appsv1.Deployment)
	setAvailability(st, gen, deployment)
	return ctrl.Result{}, r.patchStatus(ctx, obj, orig)
}

// setAvailability turns the Deployment's status into phase and Ready.
func setAvailability(st *agentkubev1alpha1.WorkloadStatus, gen int64, d *appsv1.Deployment) {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st.Replicas = want
	st.ReadyReplicas = d.Status.ReadyReplicas
	for _, c := range d.Status.Conditions {
		failed := (c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse) ||
			(c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue)
		if failed {
			reason := agentkubev1alpha1.ReasonReplicaFailure
			if c.Reason == "ProgressDeadlineExceeded" {
				reason = agentkubev1alpha1.ReasonProgressDeadlineExceeded
			}
			ctrlutil.SetCondition(&st.Conditions, gen, agentkubev1alpha1.ConditionReady, metav1.ConditionFalse, reason,
				fmt.Sprintf("Deployment %s: %s (see its pods' events)", d.Name, c.Message))
			st.Phase = agentkubev1alpha1.WorkloadPhaseFailed
			return
		}
	}
	upToDate := d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas == want
	switch {
	case want == 0:
		ctrlutil.SetCondition(&st.Conditions, gen, agentkubev1alpha1.ConditionReady, metav1.ConditionTrue, agentkubev1alpha1.ReasonScaledToZero, "replicas is 0.")
		st.Phase = agentkubev1alpha1.WorkloadPhaseReady
	case upToDate && d.Status.AvailableReplicas >= want:
		ctrlutil.SetCondition(&st.Conditions, gen, agentkubev1alpha1.ConditionReady, metav1.ConditionTrue, agentkubev1alpha1.ReasonAvailable,
			fmt.Sprintf("%d/%d replicas available.", d.Status.AvailableReplicas, want))
		st.Phase = agentkubev1alpha1.WorkloadPhaseReady
	default:
		ctrlutil.SetCondition(&st.Conditions, gen, agentkubev1alpha1.ConditionReady, metav1.ConditionFalse, agentkubev1alpha1.ReasonProgressing,
			fmt.Sprintf("%d/%d replicas available, %d updated.", d.Status.AvailableReplicas, want, d.Status.UpdatedReplicas))
		st.Phase = agentkubev1alpha1.WorkloadPhaseProgressing
	}
}

// apply creates desired or, when the hash of what it was built from changed,
// updates the existing object through mutate. Comparing hashes rather than
// objects avoids fighting the API server's defaulting.
func (r *Reconciler) apply(ctx context.Context, owner, desired client.Object, mutate func(existing, desired client.Object)) (client.Object, error) {
	hash := ctrlutil.Hash(desired)
	ann := desired.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[ctrlutil.AnnotationSpecHash] = hash
	desired.SetAnnotations(ann)
	if err := controllerutil.SetControllerReference(owner, desired, r.Scheme); err != nil {
		return nil, err
	}
	existing := desired.DeepCopyObject().(client.Object)
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(desired), existing)
	if apierrors.IsNotFound(err) {
		if err := r.Client.Create(ctx, desired); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return nil, &conflictError{fmt.Sprintf("%T %s exists but is not managed by agentkube: delete or rename it", desired, desired.GetName())}
			}
			return nil, err
		}
		r.Recorder.Eventf(owner, desired, corev1.EventTypeNormal, "Created", "Create", "Created %s", desired.GetName())
		return desired, nil
	} else if err != nil {
		return nil, err
	}
	if !metav1.IsControlledBy(existing, owner) {
		return nil, &conflictError{fmt.Sprintf("%s exists but is not controlled by this object: delete or rename it", desired.GetName())}
	}
	if existing.GetAnnotations()[ctrlutil.AnnotationSpecHash] == hash {
		return existing, nil
	}
	mutate(existing, desired)
	existing.SetLabels(desired.GetLabels())
	existing.SetAnnotations(desired.GetAnnotations())
	if err := r.Client.Update(ctx, existing); err != nil {
		return nil, err
	}
	r.Recorder.Eventf(owner, existing, corev1.EventTypeNormal, "Updated", "Update", "Updated %s to match the spec", existing.GetName())
	return existing, nil
}

type conflictError struct{ msg string }

func (e *conflictError) Error() string { return e.msg }

func (r *Reconciler) conflictOr(ctx context.Context, obj, orig client.Object, err error) (ctrl.Result, error) {
	ce, ok := err.(*conflictError)
	if !ok {
		if apierrors.IsConflict(err) {
			return ctrlutil.RetryAfterConflict(), nil
		}
		return ctrl.Result{}, err
	}
	st := r.StatusOf(obj)
	ctrlutil.SetCondition(&st.Conditions, obj.GetGeneration(), agentkubev1alpha1.ConditionReconciled, metav1.ConditionFalse, agentkubev1alpha1.ReasonNameConflict, ce.msg)
	st.Phase = agentkubev1alpha1.WorkloadPhaseFailed
	return ctrl.Result{}, r.patchStatus(ctx, obj, orig)
}

func (r *Reconciler) patchStatus(ctx context.Context, obj, orig client.Object) error {
	if equality.Semantic.DeepEqual(r.StatusOf(obj), r.StatusOf(orig)) {
		return nil
	}
	if err := r.Client.Status().Patch(ctx, obj, client.MergeFrom(orig)); err != nil {
		return client.IgnoreNotFound(err)
	}
	return nil
}

// Labels returns the labels of kind's Deployment, Service and pods.
func Labels(component, name string) map[string]string {
	return ctrlutil.ManagedLabels(component, name)
}

// SelectorLabels are the subset that selects the pods (immutable in a
// Deployment, so it must never include anything that may change).
func SelectorLabels(component, name string) map[string]string {
	l := ctrlutil.ManagedLabels(component, name)
	return map[string]string{ctrlutil.LabelComponent: l[ctrlutil.LabelComponent], ctrlutil.LabelName: l[ctrlutil.LabelName]}
}
