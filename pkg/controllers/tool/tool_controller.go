// Package tool reconciles a Tool: the connection profile is checked (the
// credentials Secret must hold its key), a probe Job runs the type-specific
// connectivity check when spec.probe is set, a permissions Job provisions
// spec.permissions for the engines that have them, and a bastion pod runs
// only while the Tool is in use: from a session's activity (annotation
// agentkube.io/last-activity, or status.activeSessions) until idleTimeout
// passes without any.
package tool

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/controllers/ctrlutil"
	"github.com/exo-in-go/exo/pkg/controllers/index"
	"github.com/exo-in-go/exo/pkg/runtimes"
)

// Name is the controller's name.
const Name = "tool"

// AnnotationLastActivity is set (RFC 3339) by whatever opens a session
// through the Tool: the exec webhook, the platform tunnel, the CLI. It starts
// the bastion and restarts the idle countdown.
const AnnotationLastActivity = "agentkube.io/last-activity"

// Component labels.
const (
	ComponentBastion     = "bastion"
	ComponentProbe       = "tool-probe"
	ComponentPermissions = "tool-permissions"
)

// Environment of the bastion, probe and permissions containers.
const (
	EnvType        = "TOOL_TYPE"
	EnvHostname    = "TOOL_HOSTNAME"
	EnvPort        = "TOOL_PORT"
	EnvUsername    = "TOOL_USERNAME"
	EnvDatabase    = "TOOL_DATABASE"
	EnvSSLMode     = "TOOL_SSLMODE"
	EnvURL         = "TOOL_URL"
	EnvExtra       = "TOOL_EXTRA"
	EnvCredential  = "TOOL_CREDENTIAL"
	EnvPermissions = "TOOL_PERMISSIONS"
)

// Reconciler reconciles Tools.
type Reconciler struct {
	Client    client.Client
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  recorder.EventRecorder
	Images    runtimes.Images
	Clock     clock.WithDelayedExecution

	wakeups *ctrlutil.Wakeups
}

// +kubebuilder:rbac:groups=agentkube.io,resources=tools,verbs=get;list;watch
// +kubebuilder:rbac:groups=agentkube.io,resources=tools/status,verbs=get;patch;update
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;delete

// SetupWithManager registers the controller.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	r.wakeups = ctrlutil.NewWakeups(r.Clock)
	return ctrl.NewControllerManagedBy(mgr).Named(Name).
		For(&agentkubev1alpha1.Tool{}).
		Owns(&corev1.Pod{}).
		Owns(&batchv1.Job{}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			var tools agentkubev1alpha1.ToolList
			if err := r.Client.List(ctx, &tools, client.InNamespace(o.GetNamespace()), client.MatchingFields{index.ToolSecrets: o.GetName()}); err != nil {
				return nil
			}
			reqs := make([]reconcile.Request, 0, len(tools.Items))
			for i := range tools.Items {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&tools.Items[i])})
			}
			return reqs
		}), builder.OnlyMetadata).
		WatchesRawSource(r.wakeups.Source()).
		Complete(ctrlutil.Instrument(Name, r))
}

// BastionName is the bastion pod of a Tool.
func BastionName(tool string) string { return ctrlutil.ChildName(tool, "bastion", 253) }

// Reconcile moves one Tool towards its spec.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var tool agentkubev1alpha1.Tool
	if err := r.Client.Get(ctx, req.NamespacedName, &tool); err != nil {
		if apierrors.IsNotFound(err) {
			r.wakeups.Cancel(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !tool.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	orig := tool.DeepCopy()
	st := &tool.Status
	gen := tool.Generation
	st.ObservedGeneration = gen

	usable := true
	if reason, msg, err := r.checkCredentials(ctx, &tool); err != nil {
		return ctrl.Result{}, err
	} else if reason != "" {
		ctrlutil.SetCondition(&st.Conditions, gen, agentkubev1alpha1.ConditionReconciled, metav1.ConditionFalse, reason, msg)
		ctrlutil.SetCondition(&st.Conditions, gen, agentkubev1alpha1.ConditionReady, metav1.ConditionFalse, reason, msg)
		st.Phase = agentkubev1alpha1.ToolPhaseFailed
		if err := r.deleteBastion(ctx, &tool); err != nil {
			return ctrl.Result{}, err
		}
		st.BastionPod = ""
		return ctrl.Result{}, r.patchStatus(ctx, &tool, orig)
	}
	ctrlutil.SetCondition(&st.Conditions, gen, agentkubev1alpha1.ConditionReconciled, metav1.ConditionTrue, agentkubev1alpha1.ReasonUpToDate, "The connection profile is complete.")

	env := toolEnv(&tool)
	image := tool.Spec.Image
	if image == "" {
		image = r.Images.Component(runtimes.Bastion)
	}

	// Probe before Ready.
	probing := false
	if tool.Spec.Probe {
		done, ok, msg, finished, err := r.runJob(ctx, &tool, ComponentProbe, "probe", image, env)
		if err != nil {
			return ctrl.Result{}, err
		}
		switch {
		case !done:
			probing = true
			ctrlutil.SetCondition(&st.Conditions, gen, agentkubev1alpha1.ConditionProbed, metav1.ConditionUnknown, agentkubev1alpha1.ReasonProbeRunning, msg)
		case ok:
			ctrlutil.SetCondition(&st.Conditions, gen, agentkubev1alpha1.ConditionProbed, metav1.ConditionTrue, agentkubev1alpha1.ReasonProbeSucceeded, msg)
		default:
			usable = false
			ctrlutil.SetCondition(&st.Conditions, gen, agentkubev1alpha1.ConditionProbed, metav1.ConditionFalse, agentkubev1alpha1.ReasonProbeFailed, msg)
		}
		if finished != nil {
			st.LastProbeTime = finished
		}
	} else {
		meta.RemoveStatusCondition(&st.Conditions, agentkubev1alpha1.ConditionProbed)
	}

	// Permissions, for the engines a Job can provision.
	if p := tool.Spec.Permissions; p != nil {
		if !provisionable(tool.Spec.Type) {
			ctrlutil.SetCondition(&st.Conditions, gen, agentkubev1alpha1.ConditionPermissionsProvisioned, metav1.ConditionFalse, agentkubev1alpha1.ReasonUnsupported,
				fmt.Sprintf("Provisioning permissions for %s tools is not supported yet; the policy is not enforced.", tool.Spec.Type))
		} else {
			policy, _ := json.Marshal(p)
			penv := append(append([]corev1.EnvVar{}, env...), corev1.EnvVar{Name: EnvPermissions, Value: string(policy)})
			done, ok, msg, _, err := r.runJob(ctx, &tool, ComponentPermissions, "provision-permissions", image, penv)
			if err != nil {
				return ctrl.Result{}, err
			}
			switch {
			case !done:
				ctrlutil.SetCondition(&st.Conditions, gen, agentkubev1alpha1.ConditionPermissionsProvisioned, metav1.ConditionUnknown, agentkubev1alpha1.ReasonProvisioning, msg)
			case ok:
				ctrlutil.SetCondition(&st.Conditions, gen, agentkubev1alpha1.ConditionPermissionsProvisioned, metav1.ConditionTrue, agentkubev1alpha1.ReasonProvisioned, msg)
			default:
				usable = false
				ctrlutil.SetCondition(&st.Conditions, gen, agentkubev1alpha1.ConditionPermissionsProvisioned, metav1.ConditionFalse, agentkubev1alpha1.ReasonProvisioningFailed, msg)
			}
		}
	} else {
		meta.RemoveStatusCondition(&st.Conditions, agentkubev1alpha1.ConditionPermissionsProvisioned)
	}

	// The bastion, on demand.
	now := r.Clock.Now()
	idle := 15 * time.Minute
	if tool.Spec.IdleTimeout != nil {
		idle = tool.Spec.IdleTimeout.Duration
	}
	last := lastActivity(&tool)
	if last != nil {
		st.LastActivityTime = &metav1.Time{Time: *last}
	}
	inUse := st.ActiveSessions > 0 || (last != nil && now.Before(last.Add(idle)))
	key := client.ObjectKeyFromObject(&tool)
	switch {
	case !usable:
		if err := r.deleteBastion(ctx, &tool); err != nil {
			return ctrl.Result{}, err
		}
		st.BastionPod = ""
		st.Phase = agentkubev1alpha1.ToolPhaseFailed
		ctrlutil.SetCondition(&st.Conditions, gen, agentkubev1alpha1.ConditionReady, metav1.ConditionFalse, agentkubev1alpha1.ReasonProbeFailed,
			"The Tool failed its checks; see the Probed and PermissionsProvisioned conditions.")
	case probing:
		st.Phase = agentkubev1alpha1.ToolPhaseConnecting
		ctrlutil.SetCondition(&st.Conditions, gen, agentkubev1alpha1.ConditionReady, metav1.ConditionFalse, agentkubev1alpha1.ReasonProbeRunning, "The connectivity probe is running.")
	case inUse:
		pod, err := r.ensureBastion(ctx, &tool, image, env)
		if err != nil {
			return ctrl.Result{}, err
		}
		st.BastionPod = pod.Name
		if podReady(pod) {
			st.Phase = agentkubev1alpha1.ToolPhaseReady
			ctrlutil.SetCondition(&st.Conditions, gen, agentkubev1alpha1.ConditionReady, metav1.ConditionTrue, agentkubev1alpha1.ReasonBastionReady, fmt.Sprintf("Bastion %s is ready.", pod.Name))
		} else {
			st.Phase = agentkubev1alpha1.ToolPhaseConnecting
			ctrlutil.SetCondition(&st.Conditions, gen, agentkubev1alpha1.ConditionReady, metav1.ConditionTrue, agentkubev1alpha1.ReasonBastionStarting, fmt.Sprintf("Bastion %s is starting.", pod.Name))
		}
		if st.ActiveSessions == 0 && last != nil {
			r.wakeups.At(key, last.Add(idle).Sub(now))
		}
	default:
		if err := r.deleteBastion(ctx, &tool); err != nil {
			return ctrl.Result{}, err
		}
		st.BastionPod = ""
		st.Phase = agentkubev1alpha1.ToolPhaseIdle
		ctrlutil.SetCondition(&st.Conditions, gen, agentkubev1alpha1.ConditionReady, metav1.ConditionTrue, agentkubev1alpha1.ReasonIdle,
			"Usable; no bastion runs until a session needs one.")
	}
	return ctrl.Result{}, r.patchStatus(ctx, &tool, orig)
}

func (r *Reconciler) checkCredentials(ctx context.Context, tool *agentkubev1alpha1.Tool) (reason, message string, err error) {
	ref := tool.Spec.Config.CredentialsRef
	if ref == nil {
		return "", "", nil
	}
	var s corev1.Secret
	err = r.APIReader.Get(ctx, types.NamespacedName{Namespace: tool.Namespace, Name: ref.Name}, &s)
	switch {
	case apierrors.IsNotFound(err):
		return agentkubev1alpha1.ReasonSecretNotFound, fmt.Sprintf("Secret %q named by spec.config.credentialsRef does not exist in namespace %s: create it with key %q holding the credential.",
			ref.Name, tool.Namespace, ref.Key), nil
	case err != nil:
		return "", "", fmt.Errorf("get credentials secret: %w", err)
	}
	if _, ok := s.Data[ref.Key]; !ok {
		return agentkubev1alpha1.ReasonSecretKeyNotFound, fmt.Sprintf("Secret %q has no key %q (spec.config.credentialsRef.key).", ref.Name, ref.Key), nil
	}
	return "", "", nil
}

// toolEnv is the connection profile as environment; the credential is a
// Secret reference, so it is never copied out of its Secret.
func toolEnv(tool *agentkubev1alpha1.Tool) []corev1.EnvVar {
	c := tool.Spec.Config
	env := []corev1.EnvVar{{Name: EnvType, Value: string(tool.Spec.Type)}}
	add := func(name, value string) {
		if value != "" {
			env = append(env, corev1.EnvVar{Name: name, Value: value})
		}
	}
	add(EnvHostname, c.Hostname)
	if c.Port != 0 {
		add(EnvPort, strconv.Itoa(int(c.Port)))
	}
	add(EnvUsername, c.Username)
	add(EnvDatabase, c.DatabaseName)
	add(EnvSSLMode, c.SSLMode)
	add(EnvURL, c.URL)
	if len(c.Extra) > 0 {
		b, _ := json.Marshal(c.Extra)
		add(EnvExtra, string(b))
	}
	if ref := c.CredentialsRef; ref != nil {
		env = append(env, corev1.EnvVar{Name: EnvCredential, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: ref.Name}, Key: ref.Key,
		}}})
	}
	return env
}

func provisionable(t agentkubev1alpha1.ToolType) bool {
	switch t {
	case agentkubev1alpha1.ToolTypePostgres, agentkubev1alpha1.ToolTypeMySQL, agentkubev1alpha1.ToolTypeSQLServer,
		agentkubev1alpha1.ToolTypeMongoDB, agentkubev1alpha1.ToolTypeClickHouse, agentkubev1alpha1.ToolTypeCockroachDB,
		agentkubev1alpha1.ToolTypeRedshift, agentkubev1alpha1.ToolTypeOracle, agentkubev1alpha1.ToolTypeRedis,
		agentkubev1alpha1.ToolTypeRabbitMQ:
		return true
	}
	return false
}

func lastActivity(tool *agentkubev1alpha1.Tool) *time.Time {
	var last *time.Time
	if v := tool.Annotations[AnnotationLastActivity]; v != "" {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			last = &t
		}
	}
	if s := tool.Status.LastActivityTime; s != nil && (last == nil || s.After(*last)) {
		t := s.Time
		last = &t
	}
	return last
}

func podSpec(component, image string, args []string, env []corev1.EnvVar, restart corev1.RestartPolicy) corev1.PodSpec {
	return corev1.PodSpec{
		RestartPolicy:                restart,
		AutomountServiceAccountToken: ptr.To(false),
		EnableServiceLinks:           ptr.To(false),
		Containers: []corev1.Container{{
			Name:            component,
			Image:           image,
			ImagePullPolicy: corev1.PullIfNotPresent,
			Args:            args,
			Env:             env,
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr.To(false),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
		}},
	}
}

// runJob makes sure the Job for the current inputs exists and reports its
// outcome. The Job's name carries the inputs' hash, so a changed profile
// runs a new check and an unchanged one is never re-run.
func (r *Reconciler) runJob(ctx context.Context, tool *agentkubev1alpha1.Tool, component, arg, image string, env []corev1.EnvVar) (done, ok bool, msg string, finished *metav1.Time, err error) {
	spec := podSpec(component, image, []string{arg}, env, corev1.RestartPolicyNever)
	name := ctrlutil.ChildName(tool.Name, arg+"-"+ctrlutil.Hash(spec), 63)
	var job batchv1.Job
	err = r.Client.Get(ctx, types.NamespacedName{Namespace: tool.Namespace, Name: name}, &job)
	if apierrors.IsNotFound(err) {
		labels := ctrlutil.ManagedLabels(component, tool.Name)
		labels[ctrlutil.LabelTool] = ctrlutil.LabelValue(tool.Name)
		job = batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: tool.Namespace, Labels: labels},
			Spec: batchv1.JobSpec{
				BackoffLimit:            ptr.To[int32](1),
				ActiveDeadlineSeconds:   ptr.To[int64](300),
				TTLSecondsAfterFinished: ptr.To[int32](24 * 3600),
				Template:                corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec},
			},
		}
		if err := controllerutil.SetControllerReference(tool, &job, r.Scheme); err != nil {
			return false, false, "", nil, err
		}
		if err := r.Client.Create(ctx, &job); err != nil && !apierrors.IsAlreadyExists(err) {
			return false, false, "", nil, fmt.Errorf("create %s job: %w", arg, err)
		}
		r.Recorder.Eventf(tool, &job, corev1.EventTypeNormal, "JobCreated", "CreateJob", "Started job %s (%s)", name, arg)
		return false, false, fmt.Sprintf("Job %s started.", name), nil, nil
	} else if err != nil {
		return false, false, "", nil, err
	}
	for _, c := range job.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			return true, true, fmt.Sprintf("Job %s succeeded.", name), job.Status.CompletionTime, nil
		case batchv1.JobFailed:
			t := c.LastTransitionTime
			return true, false, fmt.Sprintf("Job %s failed (%s: %s); see kubectl logs -n %s job/%s.", name, c.Reason, c.Message, tool.Namespace, name), &t, nil
		}
	}
	return false, false, fmt.Sprintf("Job %s is running.", name), nil, nil
}

func (r *Reconciler) ensureBastion(ctx context.Context, tool *agentkubev1alpha1.Tool, image string, env []corev1.EnvVar) (*corev1.Pod, error) {
	spec := podSpec(ComponentBastion, image, []string{"bastion"}, env, corev1.RestartPolicyAlways)
	hash := ctrlutil.Hash(spec)
	name := BastionName(tool.Name)
	var pod corev1.Pod
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: tool.Namespace, Name: name}, &pod)
	if err == nil {
		if pod.Annotations[ctrlutil.AnnotationSpecHash] == hash || !pod.DeletionTimestamp.IsZero() {
			return &pod, nil
		}
		// The profile changed: the next reconcile starts the new bastion.
		if err := r.Client.Delete(ctx, &pod, client.Preconditions{UID: &pod.UID}); err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("replace bastion: %w", err)
		}
		return &pod, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, err
	}
	labels := ctrlutil.ManagedLabels(ComponentBastion, tool.Name)
	labels[ctrlutil.LabelTool] = ctrlutil.LabelValue(tool.Name)
	pod = corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: tool.Namespace, Labels: labels,
			Annotations: map[string]string{ctrlutil.AnnotationSpecHash: hash},
		},
		Spec: spec,
	}
	if err := controllerutil.SetControllerReference(tool, &pod, r.Scheme); err != nil {
		return nil, err
	}
	if err := r.Client.Create(ctx, &pod); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create bastion: %w", err)
	}
	r.Recorder.Eventf(tool, &pod, corev1.EventTypeNormal, "BastionStarted", "CreatePod", "Started bastion %s", name)
	return &pod, nil
}

func (r *Reconciler) deleteBastion(ctx context.Context, tool *agentkubev1alpha1.Tool) error {
	var pod corev1.Pod
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: tool.Namespace, Name: BastionName(tool.Name)}, &pod)
	if apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	if !metav1.IsControlledBy(&pod, tool) || !pod.DeletionTimestamp.IsZero() {
		return nil
	}
	if err := r.Client.Delete(ctx, &pod, client.Preconditions{UID: &pod.UID}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("stop bastion: %w", err)
	}
	log.FromContext(ctx).Info("Stopped idle bastion", "pod", pod.Name)
	r.Recorder.Eventf(tool, &pod, corev1.EventTypeNormal, "BastionStopped", "DeletePod", "Stopped bastion %s: idle", pod.Name)
	return nil
}

func (r *Reconciler) patchStatus(ctx context.Context, tool, orig *agentkubev1alpha1.Tool) error {
	if equality.Semantic.DeepEqual(tool.Status, orig.Status) {
		return nil
	}
	if err := r.Client.Status().Patch(ctx, tool, client.MergeFrom(orig)); err != nil {
		return client.IgnoreNotFound(err)
	}
	return nil
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
