// Package agent reconciles an Agent into exactly one Pod named after it (the
// agentlet plus the runtime container), a Secret holding the agentlet's API
// token, and a status a user can act on.
package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/exo-in-go/exo/pkg/agentlet/endpoint"
	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/certs"
	"github.com/exo-in-go/exo/pkg/controllers/ctrlutil"
	"github.com/exo-in-go/exo/pkg/controllers/index"
	"github.com/exo-in-go/exo/pkg/runtimes"
)

// Name is the controller's name in logs, metrics and events.
const Name = "agent"

// Reconciler reconciles Agents.
type Reconciler struct {
	Client client.Client
	// APIReader reads Secrets and ConfigMaps the Agent references directly
	// from the API server: the manager does not cache their contents.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  recorder.EventRecorder
	Images    runtimes.Images
	// AgentletCA issues each Agent's agentlet certificate (Secret
	// <agent>-agentlet-tls); the pod mounts it and its agentlet serves TLS
	// only. Nil: agentlets serve plain HTTP.
	AgentletCA certs.AgentletAuthority
	// AgentletCertificateLifetime of the issued certificates
	// (certs.AgentletCertificateLifetime when zero).
	AgentletCertificateLifetime time.Duration
	// MaxConcurrentReconciles bounds parallel reconciles (default 4).
	MaxConcurrentReconciles int
}

// +kubebuilder:rbac:groups=agentkube.io,resources=agents,verbs=get;list;watch
// +kubebuilder:rbac:groups=agentkube.io,resources=agents/status,verbs=get;patch;update
// +kubebuilder:rbac:groups=agentkube.io,resources=agentruns;tools,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the controller.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	n := r.MaxConcurrentReconciles
	if n <= 0 {
		n = 4
	}
	b := ctrl.NewControllerManagedBy(mgr)
	if r.AgentletCA != nil {
		if changes := r.AgentletCA.AgentletCAChanges(); changes != nil {
			b = b.WatchesRawSource(r.agentletCAChanges(changes))
		}
	}
	return b.
		Named(Name).
		For(&agentkubev1alpha1.Agent{}).
		Owns(&corev1.Pod{}).
		// Only metadata: the controller needs to know the token Secret
		// exists, never its value.
		Owns(&corev1.Secret{}, builder.OnlyMetadata).
		// A Secret or ConfigMap an Agent waits for appears or changes.
		Watches(&corev1.Secret{}, r.enqueueReferencing(index.AgentSecrets), builder.OnlyMetadata).
		Watches(&corev1.ConfigMap{}, r.enqueueReferencing(index.AgentConfigMaps), builder.OnlyMetadata).
		// Runs starting and ending move the Agent between Ready and Running.
		Watches(&agentkubev1alpha1.AgentRun{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			run := o.(*agentkubev1alpha1.AgentRun)
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: run.Namespace, Name: run.Spec.AgentRef.Name}}}
		})).
		WithOptions(controller.Options{MaxConcurrentReconciles: n}).
		Complete(ctrlutil.Instrument(Name, r))
}

func (r *Reconciler) enqueueReferencing(field string) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		var agents agentkubev1alpha1.AgentList
		if err := r.Client.List(ctx, &agents, client.InNamespace(o.GetNamespace()), client.MatchingFields{field: o.GetName()}); err != nil {
			log.FromContext(ctx).Error(err, "List Agents referencing object", "object", o.GetName())
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(agents.Items))
		for _, a := range agents.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&a)})
		}
		return reqs
	})
}

// configError is a problem only the user can fix; the pod is not created (or
// not replaced) until it is.
type configError struct{ reason, message string }

func (e *configError) Error() string { return e.message }

// Reconcile drives one Agent towards its pod.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	var agent agentkubev1alpha1.Agent
	if err := r.Client.Get(ctx, req.NamespacedName, &agent); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !agent.DeletionTimestamp.IsZero() {
		// Owner references let the garbage collector remove pod and Secret.
		return ctrl.Result{}, nil
	}
	orig := agent.DeepCopy()
	status := &agent.Status
	gen := agent.Generation

	if err := r.ensureTokenSecret(ctx, &agent); err != nil {
		return ctrl.Result{}, err
	}
	tlsSecret := ""
	var renewIn time.Duration
	if r.AgentletCA != nil {
		var err error
		if renewIn, err = r.ensureTLSSecret(ctx, &agent); err != nil {
			return ctrl.Result{}, err
		}
		tlsSecret = endpoint.TLSSecretName(agent.Name)
	}
	status.Tools = r.resolveTools(ctx, &agent)

	var cfgErr *configError
	image, err := r.Images.Runtime(agent.Spec.Runtime, agent.Spec.Image)
	if err != nil {
		cfgErr = &configError{agentkubev1alpha1.ReasonImageRequired, err.Error()}
	} else {
		status.Image = image
		if err := r.checkReferences(ctx, &agent); err != nil {
			if !errors.As(err, &cfgErr) {
				return ctrl.Result{}, err
			}
		}
	}

	var desired *corev1.Pod
	if cfgErr == nil {
		desired = buildPod(podInputs{Agent: &agent, RuntimeImage: image, Images: r.Images, TLSSecret: tlsSecret})
		desired.Annotations = map[string]string{ctrlutil.AnnotationSpecHash: ctrlutil.Hash(desired.Spec)}
		if err := controllerutil.SetControllerReference(&agent, desired, r.Scheme); err != nil {
			return ctrl.Result{}, fmt.Errorf("set owner of pod: %w", err)
		}
	}

	pod, err := r.syncPod(ctx, &agent, desired, &cfgErr)
	if err != nil {
		return ctrl.Result{}, err
	}

	if cfgErr != nil {
		ctrlutil.SetCondition(&status.Conditions, gen, agentkubev1alpha1.ConditionReconciled, metav1.ConditionFalse, cfgErr.reason, cfgErr.message)
	} else {
		ctrlutil.SetCondition(&status.Conditions, gen, agentkubev1alpha1.ConditionReconciled, metav1.ConditionTrue, agentkubev1alpha1.ReasonUpToDate, "The pod matches the Agent's spec.")
	}
	ready, readyReason, readyMsg, podBroken := podReadiness(pod, cfgErr)
	if ready {
		ctrlutil.SetCondition(&status.Conditions, gen, agentkubev1alpha1.ConditionReady, metav1.ConditionTrue, readyReason, readyMsg)
		status.Ready = "1/1"
	} else {
		ctrlutil.SetCondition(&status.Conditions, gen, agentkubev1alpha1.ConditionReady, metav1.ConditionFalse, readyReason, readyMsg)
		status.Ready = "0/1"
	}
	if pod != nil {
		status.PodName = pod.Name
	}

	running, latest, err := r.runs(ctx, &agent)
	if err != nil {
		return ctrl.Result{}, err
	}
	if latest != "" {
		// Whatever started it (invoke, the platform, kubectl, the schedule).
		// With no run left (history pruned to zero) the last value stays.
		status.LastRun = latest
	}
	switch {
	case agent.Spec.Paused:
		status.Phase = agentkubev1alpha1.AgentPhasePaused
	case cfgErr != nil || podBroken:
		status.Phase = agentkubev1alpha1.AgentPhaseFailed
	case ready && running != "":
		status.Phase = agentkubev1alpha1.AgentPhaseRunning
	case ready:
		status.Phase = agentkubev1alpha1.AgentPhaseReady
	default:
		status.Phase = agentkubev1alpha1.AgentPhasePending
	}
	status.ObservedGeneration = gen

	if !equality.Semantic.DeepEqual(orig.Status, agent.Status) {
		// Optimistic lock: the schedule controller writes the same status
		// (its Scheduled condition); a conflict re-runs this reconcile on the
		// newer object instead of overwriting its write.
		if err := r.Client.Status().Patch(ctx, &agent, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				return ctrlutil.RetryAfterConflict(), nil
			}
			return ctrl.Result{}, fmt.Errorf("update status: %w", err)
		}
		if orig.Status.Phase != status.Phase {
			logger.V(1).Info("Agent phase changed", "from", orig.Status.Phase, "to", status.Phase)
		}
	}
	// Back when the agentlet certificate is due.
	return ctrl.Result{RequeueAfter: renewIn}, nil
}

// ensureTokenSecret creates the Secret with the agentlet's API token once.
// The token is never rotated by the controller: rotating it would cut the
// manager off from runs in progress.
func (r *Reconciler) ensureTokenSecret(ctx context.Context, agent *agentkubev1alpha1.Agent) error {
	name := endpoint.TokenSecretName(agent.Name)
	var existing metav1.PartialObjectMetadata
	existing.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: agent.Namespace, Name: name}, &existing)
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("get token secret: %w", err)
	}
	token := make([]byte, 32)
	if _, err := rand.Read(token); err != nil {
		return fmt.Errorf("generate agentlet token: %w", err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: agent.Namespace,
			Labels:    ctrlutil.ManagedLabels(Component, agent.Name),
		},
		Type:      corev1.SecretTypeOpaque,
		Immutable: ptrTrue(),
		Data:      map[string][]byte{endpoint.TokenSecretKey: []byte(hex.EncodeToString(token))},
	}
	if err := controllerutil.SetControllerReference(agent, secret, r.Scheme); err != nil {
		return fmt.Errorf("set owner of token secret: %w", err)
	}
	if err := r.Client.Create(ctx, secret); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create token secret: %w", err)
	}
	return nil
}

func ptrTrue() *bool { t := true; return &t }

// checkReferences verifies the Secret and ConfigMap keys the pod's env
// refers to, so the user reads "Secret x has no key y" on the Agent instead
// of a CreateContainerConfigError on a pod.
func (r *Reconciler) checkReferences(ctx context.Context, agent *agentkubev1alpha1.Agent) error {
	if t := agent.Spec.AgentToken; t != nil {
		var s corev1.Secret
		err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: agent.Namespace, Name: t.SecretRef.Name}, &s)
		switch {
		case apierrors.IsNotFound(err):
			return &configError{agentkubev1alpha1.ReasonSecretNotFound, fmt.Sprintf(
				"Secret %q named by spec.agentToken.secretRef does not exist in namespace %s: create it with key %q holding the %s API key",
				t.SecretRef.Name, agent.Namespace, t.SecretRef.Key, agent.Spec.Runtime)}
		case err != nil:
			return fmt.Errorf("get agentToken secret: %w", err)
		}
		if _, ok := s.Data[t.SecretRef.Key]; !ok {
			if _, ok := s.StringData[t.SecretRef.Key]; !ok {
				return &configError{agentkubev1alpha1.ReasonSecretKeyNotFound, fmt.Sprintf(
					"Secret %q has no key %q (spec.agentToken.secretRef.key); it has keys [%s]",
					t.SecretRef.Name, t.SecretRef.Key, strings.Join(sortedKeys(s.Data), ", "))}
			}
		}
	}
	if g := agent.Spec.Goal; g != nil && g.ConfigMapKeyRef != nil {
		var cm corev1.ConfigMap
		ref := g.ConfigMapKeyRef
		err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: agent.Namespace, Name: ref.Name}, &cm)
		switch {
		case apierrors.IsNotFound(err):
			return &configError{agentkubev1alpha1.ReasonConfigMapNotFound, fmt.Sprintf(
				"ConfigMap %q named by spec.goal.configMapKeyRef does not exist in namespace %s: create it with key %q holding the goal",
				ref.Name, agent.Namespace, ref.Key)}
		case err != nil:
			return fmt.Errorf("get goal configmap: %w", err)
		}
		if _, ok := cm.Data[ref.Key]; !ok {
			return &configError{agentkubev1alpha1.ReasonConfigMapKeyNotFound, fmt.Sprintf(
				"ConfigMap %q has no key %q (spec.goal.configMapKeyRef.key)", ref.Name, ref.Key)}
		}
	}
	return nil
}

func sortedKeys(m map[string][]byte) []string {
	return slices.Sorted(maps.Keys(m))
}

// resolveTools returns the spec.tools that exist; a missing one is reported
// as an event, not an error: the agent can still run without it.
func (r *Reconciler) resolveTools(ctx context.Context, agent *agentkubev1alpha1.Agent) []string {
	if len(agent.Spec.Tools) == 0 {
		return nil
	}
	var found []string
	for _, ref := range agent.Spec.Tools {
		var tool agentkubev1alpha1.Tool
		err := r.Client.Get(ctx, types.NamespacedName{Namespace: agent.Namespace, Name: ref.Name}, &tool)
		if err == nil {
			found = append(found, ref.Name)
			continue
		}
		if apierrors.IsNotFound(err) && !containsString(agent.Status.Tools, ref.Name) {
			r.Recorder.Eventf(agent, nil, corev1.EventTypeWarning, agentkubev1alpha1.ReasonToolNotFound, "ResolveTools",
				"Tool %q in spec.tools does not exist in namespace %s", ref.Name, agent.Namespace)
		}
	}
	return found
}

// syncPod makes the pod match desired (nil: leave what exists alone) and
// returns the pod as it now is (nil when there is none).
func (r *Reconciler) syncPod(ctx context.Context, agent *agentkubev1alpha1.Agent, desired *corev1.Pod, cfgErr **configError) (*corev1.Pod, error) {
	var pod corev1.Pod
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: agent.Namespace, Name: agent.Name}, &pod)
	switch {
	case apierrors.IsNotFound(err):
		if desired == nil {
			return nil, nil
		}
		if err := r.Client.Create(ctx, desired); err != nil {
			switch {
			case apierrors.IsAlreadyExists(err):
				// Not in our cache, which only holds pods we label: someone
				// else's pod has the Agent's name.
				*cfgErr = &configError{agentkubev1alpha1.ReasonPodConflict, fmt.Sprintf(
					"a pod named %q that the Agent does not own already exists in namespace %s: delete or rename it", agent.Name, agent.Namespace)}
				return nil, nil
			case apierrors.IsInvalid(err) || apierrors.IsForbidden(err):
				// Invalid env, or a quota or policy refusing the pod: retrying
				// will not help until the user changes something.
				*cfgErr = &configError{agentkubev1alpha1.ReasonPodInvalid, "the Agent's pod was refused: " + err.Error()}
				r.Recorder.Eventf(agent, nil, corev1.EventTypeWarning, agentkubev1alpha1.ReasonPodInvalid, "CreatePod", "%v", err)
				return nil, nil
			}
			return nil, fmt.Errorf("create pod: %w", err)
		}
		reason, note := agentkubev1alpha1.ReasonPodCreated, "Created pod "+desired.Name
		if agent.Status.PodName != "" {
			reason, note = agentkubev1alpha1.ReasonPodRecreated, "Recreated pod "+desired.Name+" after it was removed"
		}
		r.Recorder.Eventf(agent, desired, corev1.EventTypeNormal, reason, "CreatePod", note)
		return desired, nil
	case err != nil:
		return nil, fmt.Errorf("get pod: %w", err)
	}

	if !metav1.IsControlledBy(&pod, agent) {
		*cfgErr = &configError{agentkubev1alpha1.ReasonPodConflict, fmt.Sprintf(
			"pod %q exists but is not controlled by this Agent: delete it so the Agent can create its own", pod.Name)}
		return nil, nil
	}
	if !pod.DeletionTimestamp.IsZero() {
		// The pod's deletion event brings us back to create its successor.
		return &pod, nil
	}
	replace := ""
	switch {
	case desired != nil && pod.Annotations[ctrlutil.AnnotationSpecHash] != desired.Annotations[ctrlutil.AnnotationSpecHash]:
		replace = "the Agent's spec changed"
	case pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded:
		// Evicted or otherwise finished: a pod never restarts from there.
		replace = fmt.Sprintf("the pod ended in phase %s (%s)", pod.Status.Phase, pod.Status.Reason)
	}
	if replace == "" {
		return &pod, nil
	}
	// The UID precondition makes sure we delete the pod we looked at, not a
	// successor created in the meantime.
	if err := r.Client.Delete(ctx, &pod, client.Preconditions{UID: &pod.UID}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return nil, fmt.Errorf("delete outdated pod: %w", err)
	}
	r.Recorder.Eventf(agent, &pod, corev1.EventTypeNormal, agentkubev1alpha1.ReasonPodReplaced, "DeletePod", "Replacing pod %s: %s", pod.Name, replace)
	now := metav1.Now()
	pod.DeletionTimestamp = &now
	return &pod, nil
}

// podReadiness says whether the pod serves, why not, and whether the cause
// needs the user (the Agent is then Failed rather than Pending).
func podReadiness(pod *corev1.Pod, cfgErr *configError) (ready bool, reason, message string, broken bool) {
	if pod == nil {
		if cfgErr != nil {
			return false, cfgErr.reason, "No pod: " + cfgErr.message, true
		}
		return false, agentkubev1alpha1.ReasonPodPending, "The pod is being created.", false
	}
	if !pod.DeletionTimestamp.IsZero() {
		return false, agentkubev1alpha1.ReasonPodTerminating, fmt.Sprintf("Pod %s is terminating; a new one follows.", pod.Name), false
	}
	statuses := append(append([]corev1.ContainerStatus{}, pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...)
	for _, cs := range statuses {
		w := cs.State.Waiting
		if w == nil {
			continue
		}
		switch w.Reason {
		case "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull":
			return false, agentkubev1alpha1.ReasonImagePullBackOff, fmt.Sprintf(
				"Container %s cannot pull image %s (%s: %s). Check spec.image or the AGENTKUBE_IMAGE_* settings, and imagePullSecrets of the namespace's service account.",
				cs.Name, cs.Image, w.Reason, w.Message), true
		case "CrashLoopBackOff":
			last := ""
			if t := cs.LastTerminationState.Terminated; t != nil {
				last = fmt.Sprintf(" Last exit code %d (%s) %s", t.ExitCode, t.Reason, strings.TrimSpace(t.Message))
			}
			return false, agentkubev1alpha1.ReasonCrashLoopBackOff, fmt.Sprintf(
				"Container %s keeps crashing (%d restarts).%s See its log with kubectl logs %s -c %s --previous.",
				cs.Name, cs.RestartCount, last, pod.Name, cs.Name), true
		case "CreateContainerConfigError", "CreateContainerError":
			return false, agentkubev1alpha1.ReasonCreateContainerConfigError, fmt.Sprintf("Container %s cannot start: %s", cs.Name, w.Message), true
		}
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return false, agentkubev1alpha1.ReasonUnschedulable, "The pod cannot be scheduled: " + c.Message, false
		}
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true, agentkubev1alpha1.ReasonPodReady, fmt.Sprintf("Pod %s is ready.", pod.Name), false
		}
	}
	return false, agentkubev1alpha1.ReasonPodPending, fmt.Sprintf("Pod %s is %s and not ready yet.", pod.Name, orDefault(string(pod.Status.Phase), "Pending")), false
}

// runs returns the name of the Agent's Running AgentRun, if any, and of its
// most recently created one (status.lastRun).
func (r *Reconciler) runs(ctx context.Context, agent *agentkubev1alpha1.Agent) (running, latest string, err error) {
	var runs agentkubev1alpha1.AgentRunList
	if err := r.Client.List(ctx, &runs, client.InNamespace(agent.Namespace), client.MatchingFields{index.RunAgent: agent.Name}); err != nil {
		return "", "", fmt.Errorf("list runs: %w", err)
	}
	var newest *agentkubev1alpha1.AgentRun
	for i := range runs.Items {
		run := &runs.Items[i]
		if run.Status.Phase == agentkubev1alpha1.AgentRunPhaseRunning {
			running = run.Name
		}
		if newest == nil || newest.CreationTimestamp.Before(&run.CreationTimestamp) ||
			(newest.CreationTimestamp.Equal(&run.CreationTimestamp) && newest.Name < run.Name) {
			newest = run
		}
	}
	if newest != nil {
		latest = newest.Name
	}
	return running, latest, nil
}

// IsReady reports whether the Agent's Ready condition is True.
func IsReady(a *agentkubev1alpha1.Agent) bool {
	return meta.IsStatusConditionTrue(a.Status.Conditions, agentkubev1alpha1.ConditionReady)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func containsString(list []string, s string) bool { return slices.Contains(list, s) }
