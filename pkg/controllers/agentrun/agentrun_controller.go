// Package agentrun executes AgentRuns through the agentlet in the Agent's
// pod. The run ID in the agentlet is the AgentRun's name, so starting is
// idempotent: a manager that restarts mid-run asks the agentlet for the run
// it already started instead of starting another, and a run the agentlet no
// longer knows (its pod or process restarted) is failed with that reason
// rather than left Running.
package agentrun

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/exo-in-go/exo/pkg/agentlet/api"
	agentletclient "github.com/exo-in-go/exo/pkg/agentlet/client"
	"github.com/exo-in-go/exo/pkg/agentlet/endpoint"
	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/controllers/ctrlutil"
	"github.com/exo-in-go/exo/pkg/controllers/index"
	"github.com/exo-in-go/exo/pkg/metrics"
)

// Name is the controller's name in logs, metrics and events.
const Name = "agentrun"

// DefaultRunHistoryLimit applies when an Agent sets no runHistoryLimit.
const DefaultRunHistoryLimit = 10

// Reconciler reconciles AgentRuns.
type Reconciler struct {
	Client client.Client
	// APIReader reads the agentlet token Secret, whose contents the manager
	// does not cache.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  recorder.EventRecorder
	Clock     clock.PassiveClock
	// Addresser finds the address of the agentlet in a pod; the pod IP and
	// the port named "agentlet" when nil.
	Addresser endpoint.Addresser
	// AgentletBundle returns the agentlet CA bundle that agentlets serving
	// TLS are verified against; without one they are not called.
	AgentletBundle func() []byte
	// HTTPClient talks to plain-HTTP agentlets; a client without timeout
	// (followed output streams last as long as runs) when nil.
	HTTPClient *http.Client
	// PollInterval is how often a run in progress is checked (and its
	// output tail copied into status) besides its output stream ending.
	PollInterval time.Duration
	// UnreachableGrace is how long after its timeout a run whose agentlet
	// cannot be reached is still waited for.
	UnreachableGrace time.Duration
	// MaxConcurrentReconciles bounds parallel reconciles (default 4).
	MaxConcurrentReconciles int

	watchers  *watchers
	agentlets *endpoint.Resolver
}

// +kubebuilder:rbac:groups=agentkube.io,resources=agentruns,verbs=get;list;watch;update;patch;delete
// +kubebuilder:rbac:groups=agentkube.io,resources=agentruns/status,verbs=get;patch;update
// +kubebuilder:rbac:groups=agentkube.io,resources=agents,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get

// SetupWithManager registers the controller.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	r.agentlets = &endpoint.Resolver{
		Addresser: r.Addresser,
		Bundle:    r.AgentletBundle,
		Tokens: &endpoint.Tokens{
			// The Secret is immutable, so its UID identifies the token: the
			// UID comes from the metadata cache and the Secret itself is read
			// once.
			UID: func(ctx context.Context, namespace, name string) (types.UID, error) {
				var meta metav1.PartialObjectMetadata
				meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
				err := r.Client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &meta)
				return meta.UID, err
			},
			Get: func(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
				var s corev1.Secret
				err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &s)
				return &s, err
			},
		},
	}
	if r.HTTPClient == nil {
		r.HTTPClient = &http.Client{Transport: http.DefaultTransport}
	}
	if r.PollInterval <= 0 {
		r.PollInterval = 10 * time.Second
	}
	if r.UnreachableGrace <= 0 {
		r.UnreachableGrace = 2 * time.Minute
	}
	n := r.MaxConcurrentReconciles
	if n <= 0 {
		n = 4
	}
	r.watchers = newWatchers(r.PollInterval)
	if err := mgr.Add(&runsByPhaseCollector{client: mgr.GetClient()}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(Name).
		For(&agentkubev1alpha1.AgentRun{}).
		// A run ending, or an Agent's pod becoming ready or going away, lets
		// the Agent's other unfinished runs move.
		Watches(&agentkubev1alpha1.AgentRun{}, handler.EnqueueRequestsFromMapFunc(r.siblings)).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.runsOfPod)).
		Watches(&agentkubev1alpha1.Agent{}, handler.EnqueueRequestsFromMapFunc(r.runsOfAgent)).
		WatchesRawSource(r.watchers.source()).
		WithOptions(controller.Options{MaxConcurrentReconciles: n}).
		Complete(ctrlutil.Instrument(Name, r))
}

// unfinishedRuns lists the Agent's runs that are not in a terminal phase.
func (r *Reconciler) unfinishedRuns(ctx context.Context, namespace, agentName string) []reconcile.Request {
	var runs agentkubev1alpha1.AgentRunList
	if err := r.Client.List(ctx, &runs, client.InNamespace(namespace), client.MatchingFields{index.RunAgent: agentName}); err != nil {
		log.FromContext(ctx).Error(err, "List runs of Agent", "agent", agentName)
		return nil
	}
	var reqs []reconcile.Request
	for i := range runs.Items {
		if !IsFinished(&runs.Items[i]) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&runs.Items[i])})
		}
	}
	return reqs
}

func (r *Reconciler) siblings(ctx context.Context, o client.Object) []reconcile.Request {
	run := o.(*agentkubev1alpha1.AgentRun)
	if !IsFinished(run) {
		return nil // only a run ending (or going away) frees the agentlet
	}
	return r.unfinishedRuns(ctx, run.Namespace, run.Spec.AgentRef.Name)
}

func (r *Reconciler) runsOfPod(ctx context.Context, o client.Object) []reconcile.Request {
	owner := metav1.GetControllerOf(o)
	if owner == nil || owner.Kind != "Agent" || owner.APIVersion != agentkubev1alpha1.SchemeGroupVersion.String() {
		return nil
	}
	return r.unfinishedRuns(ctx, o.GetNamespace(), owner.Name)
}

func (r *Reconciler) runsOfAgent(ctx context.Context, o client.Object) []reconcile.Request {
	return r.unfinishedRuns(ctx, o.GetNamespace(), o.GetName())
}

// IsFinished reports whether the run is in a terminal phase.
func IsFinished(run *agentkubev1alpha1.AgentRun) bool {
	switch run.Status.Phase {
	case agentkubev1alpha1.AgentRunPhaseSucceeded, agentkubev1alpha1.AgentRunPhaseFailed, agentkubev1alpha1.AgentRunPhaseTimedOut:
		return true
	}
	return false
}

// Reconcile moves one AgentRun forward.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var run agentkubev1alpha1.AgentRun
	if err := r.Client.Get(ctx, req.NamespacedName, &run); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if IsFinished(&run) {
		r.watchers.stop(run.UID)
		return ctrl.Result{}, r.prune(ctx, run.Namespace, run.Spec.AgentRef.Name)
	}
	if !run.DeletionTimestamp.IsZero() {
		r.watchers.stop(run.UID)
		return ctrl.Result{}, nil
	}

	var ag agentkubev1alpha1.Agent
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: run.Namespace, Name: run.Spec.AgentRef.Name}, &ag); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		return r.finish(ctx, &run, agentkubev1alpha1.AgentRunPhaseFailed, agentkubev1alpha1.ReasonAgentNotFound,
			fmt.Sprintf("Agent %q does not exist in namespace %s.", run.Spec.AgentRef.Name, run.Namespace), nil)
	}
	// Owned by its Agent: deleting the Agent deletes its history.
	if !metav1.IsControlledBy(&run, &ag) && metav1.GetControllerOf(&run) == nil {
		patch := client.MergeFrom(run.DeepCopy())
		if err := controllerutil.SetControllerReference(&ag, &run, r.Scheme); err != nil {
			return ctrl.Result{}, fmt.Errorf("set owner of run: %w", err)
		}
		if err := r.Client.Patch(ctx, &run, patch); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}

	if run.Status.Phase == agentkubev1alpha1.AgentRunPhaseRunning {
		return r.track(ctx, &run)
	}
	return r.start(ctx, &run, &ag)
}

func (r *Reconciler) timeout(run *agentkubev1alpha1.AgentRun) time.Duration {
	if run.Spec.Timeout != nil && run.Spec.Timeout.Duration > 0 {
		return run.Spec.Timeout.Duration
	}
	return 30 * time.Minute // the CRD default, for objects stored before it
}

// start hands a Pending run to the agentlet once nothing stands in its way.
func (r *Reconciler) start(ctx context.Context, run *agentkubev1alpha1.AgentRun, ag *agentkubev1alpha1.Agent) (ctrl.Result, error) {
	if ag.Spec.Paused {
		// Documented choice: a paused Agent never runs anything, and a run
		// held until it is unpaused would fire at a surprising time.
		return r.finish(ctx, run, agentkubev1alpha1.AgentRunPhaseFailed, agentkubev1alpha1.ReasonAgentPaused,
			fmt.Sprintf("Agent %s is paused (spec.paused: true); set paused to false and create a new run.", ag.Name), nil)
	}
	now := r.Clock.Now()
	deadline := run.CreationTimestamp.Add(r.timeout(run))
	if !now.Before(deadline) {
		why := "it never got to start"
		if c := findCondition(run.Status.Conditions, agentkubev1alpha1.ConditionStarted); c != nil {
			why = c.Message
		}
		return r.finish(ctx, run, agentkubev1alpha1.AgentRunPhaseTimedOut, agentkubev1alpha1.ReasonNotStartedBeforeTimeout,
			fmt.Sprintf("The run did not start within its timeout of %s: %s", r.timeout(run), why), nil)
	}
	untilDeadline := deadline.Sub(now)

	// One run at a time per Agent, oldest first.
	var runs agentkubev1alpha1.AgentRunList
	if err := r.Client.List(ctx, &runs, client.InNamespace(run.Namespace), client.MatchingFields{index.RunAgent: ag.Name}); err != nil {
		return ctrl.Result{}, fmt.Errorf("list runs of agent: %w", err)
	}
	for i := range runs.Items {
		other := &runs.Items[i]
		if other.UID == run.UID || IsFinished(other) {
			continue
		}
		if other.Status.Phase == agentkubev1alpha1.AgentRunPhaseRunning || olderThan(other, run) {
			return r.wait(ctx, run, agentkubev1alpha1.ReasonWaitingForRun,
				fmt.Sprintf("Waiting for run %s of Agent %s to finish: an Agent runs one thing at a time.", other.Name, ag.Name), untilDeadline)
		}
	}

	var pod corev1.Pod
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: run.Namespace, Name: ag.Name}, &pod); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		return r.wait(ctx, run, agentkubev1alpha1.ReasonWaitingForAgentPod, fmt.Sprintf("Agent %s has no pod yet.", ag.Name), untilDeadline)
	}
	if !podReady(&pod) || !metav1.IsControlledBy(&pod, ag) {
		return r.wait(ctx, run, agentkubev1alpha1.ReasonWaitingForAgentPod,
			fmt.Sprintf("Pod %s of Agent %s is not ready (see the Agent's Ready condition).", pod.Name, ag.Name), untilDeadline)
	}
	c, err := r.agentletClient(ctx, &pod, ag)
	if err != nil {
		return r.wait(ctx, run, agentkubev1alpha1.ReasonWaitingForAgentPod, err.Error(), untilDeadline)
	}

	timeoutSeconds := int64(math.Ceil(untilDeadline.Seconds()))
	ar, _, err := c.StartRun(ctx, api.RunRequest{ID: run.Name, Input: run.Spec.Input, Args: run.Spec.Args, TimeoutSeconds: timeoutSeconds})
	switch {
	case agentletclient.IsConflict(err):
		return r.wait(ctx, run, agentkubev1alpha1.ReasonAgentletBusy,
			fmt.Sprintf("The agentlet of pod %s is busy with another run (%v).", pod.Name, err), min(untilDeadline, r.PollInterval))
	case agentletclient.IsTooLarge(err), isStatus(err, http.StatusUnprocessableEntity), isStatus(err, http.StatusBadRequest):
		return r.finish(ctx, run, agentkubev1alpha1.AgentRunPhaseFailed, agentkubev1alpha1.ReasonAgentletRefused,
			fmt.Sprintf("The agentlet refused the run: %v", err), nil)
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("start run in agentlet of pod %s: %w", pod.Name, err)
	}

	orig := run.DeepCopy()
	run.Status.Phase = agentkubev1alpha1.AgentRunPhaseRunning
	run.Status.PodName = pod.Name
	run.Status.RunID = ar.ID
	run.Status.StartTime = ptrTime(orDefaultTime(ar.StartTime, now))
	run.Status.Message = fmt.Sprintf("Running in pod %s.", pod.Name)
	ctrlutil.SetCondition(&run.Status.Conditions, run.Generation, agentkubev1alpha1.ConditionStarted, metav1.ConditionTrue, agentkubev1alpha1.ReasonStarted, run.Status.Message)
	if err := r.patchStatus(ctx, run, orig); err != nil {
		return ctrl.Result{}, err
	}
	trigger := string(run.Spec.Trigger)
	if trigger == "" {
		trigger = string(agentkubev1alpha1.RunTriggerManual)
	}
	metrics.Invocations.WithLabelValues(trigger).Inc()
	r.Recorder.Eventf(run, &pod, corev1.EventTypeNormal, agentkubev1alpha1.ReasonStarted, "StartRun", "Started in the agentlet of pod %s", pod.Name)
	if ar.Phase.Finished() {
		// Quick runs may be over before we look again.
		return r.complete(ctx, run, ar)
	}
	r.watchers.ensure(run.UID, client.ObjectKeyFromObject(run), c, ar.ID)
	return ctrl.Result{RequeueAfter: r.PollInterval}, nil
}

// track follows a Running run until the agentlet reports its end, or until it
// is certain the agentlet cannot report it any more.
func (r *Reconciler) track(ctx context.Context, run *agentkubev1alpha1.AgentRun) (ctrl.Result, error) {
	var pod corev1.Pod
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: run.Namespace, Name: run.Status.PodName}, &pod)
	if apierrors.IsNotFound(err) {
		return r.finish(ctx, run, agentkubev1alpha1.AgentRunPhaseFailed, agentkubev1alpha1.ReasonAgentPodGone,
			fmt.Sprintf("Pod %s was deleted while the run was in progress; its outcome is unknown.", run.Status.PodName), nil)
	} else if err != nil {
		return ctrl.Result{}, err
	}
	var ag agentkubev1alpha1.Agent
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: run.Namespace, Name: run.Spec.AgentRef.Name}, &ag); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}

	start := run.CreationTimestamp.Time
	if run.Status.StartTime != nil {
		start = run.Status.StartTime.Time
	}
	hardDeadline := start.Add(r.timeout(run) + r.UnreachableGrace)
	now := r.Clock.Now()

	var ar api.Run
	c, err := r.agentletClient(ctx, &pod, &ag)
	if err == nil {
		callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		ar, err = c.GetRun(callCtx, run.Status.RunID)
		cancel()
	}
	switch {
	case agentletclient.IsNotFound(err):
		return r.finish(ctx, run, agentkubev1alpha1.AgentRunPhaseFailed, agentkubev1alpha1.ReasonAgentletLostRun,
			fmt.Sprintf("The agentlet in pod %s no longer knows run %s: the agentlet or its pod restarted while the run was in progress, which ended it.", pod.Name, run.Status.RunID), nil)
	case err != nil:
		if !now.Before(hardDeadline) {
			return r.finish(ctx, run, agentkubev1alpha1.AgentRunPhaseFailed, agentkubev1alpha1.ReasonAgentletUnreachable,
				fmt.Sprintf("The agentlet in pod %s has not answered since the run's timeout passed: %v", pod.Name, err), nil)
		}
		log.FromContext(ctx).Info("Agentlet unreachable; will retry", "pod", pod.Name, "error", err.Error())
		return ctrl.Result{RequeueAfter: min(r.PollInterval, hardDeadline.Sub(now))}, nil
	}
	if ar.Phase.Finished() {
		return r.complete(ctx, run, ar)
	}
	if !now.Before(hardDeadline) {
		// The agentlet enforces the timeout itself; reaching this means it
		// did not, so stop the run from here.
		if _, err := c.Cancel(ctx, run.Status.RunID); err != nil {
			log.FromContext(ctx).Error(err, "Cancel overdue run", "run", run.Name)
		}
		return r.finish(ctx, run, agentkubev1alpha1.AgentRunPhaseTimedOut, agentkubev1alpha1.ReasonTimedOut,
			fmt.Sprintf("The run exceeded its timeout of %s and was cancelled.", r.timeout(run)), &ar)
	}
	if tail := tailOf(ar.OutputTail); tail != run.Status.OutputTail {
		orig := run.DeepCopy()
		run.Status.OutputTail = tail
		if err := r.patchStatus(ctx, run, orig); err != nil {
			return ctrl.Result{}, err
		}
	}
	r.watchers.ensure(run.UID, client.ObjectKeyFromObject(run), c, run.Status.RunID)
	return ctrl.Result{RequeueAfter: min(r.PollInterval, hardDeadline.Sub(now))}, nil
}

// complete records the agentlet's final word on a run.
func (r *Reconciler) complete(ctx context.Context, run *agentkubev1alpha1.AgentRun, ar api.Run) (ctrl.Result, error) {
	switch ar.Phase {
	case api.PhaseSucceeded:
		return r.finish(ctx, run, agentkubev1alpha1.AgentRunPhaseSucceeded, agentkubev1alpha1.ReasonSucceeded, "The run succeeded.", &ar)
	case api.PhaseTimedOut:
		return r.finish(ctx, run, agentkubev1alpha1.AgentRunPhaseTimedOut, agentkubev1alpha1.ReasonTimedOut,
			fmt.Sprintf("The run exceeded its timeout of %s and was killed.", r.timeout(run)), &ar)
	case api.PhaseCanceled:
		return r.finish(ctx, run, agentkubev1alpha1.AgentRunPhaseFailed, agentkubev1alpha1.ReasonCanceled,
			"The run was cancelled in the agentlet (for example because its pod is shutting down). "+ar.Message, &ar)
	default:
		msg := "The run failed"
		if ar.ExitCode != nil {
			msg += fmt.Sprintf(" with exit code %d", *ar.ExitCode)
		}
		if ar.Signal != "" {
			msg += " (" + ar.Signal + ")"
		}
		if ar.Message != "" {
			msg += ": " + ar.Message
		}
		return r.finish(ctx, run, agentkubev1alpha1.AgentRunPhaseFailed, agentkubev1alpha1.ReasonRunFailed, msg+".", &ar)
	}
}

// wait keeps a run Pending and says why. It comes back when something it
// waits for changes (watches) or, at the latest, after `after`.
func (r *Reconciler) wait(ctx context.Context, run *agentkubev1alpha1.AgentRun, reason, message string, after time.Duration) (ctrl.Result, error) {
	orig := run.DeepCopy()
	run.Status.Phase = agentkubev1alpha1.AgentRunPhasePending
	run.Status.Message = message
	run.Status.ObservedGeneration = run.Generation
	ctrlutil.SetCondition(&run.Status.Conditions, run.Generation, agentkubev1alpha1.ConditionStarted, metav1.ConditionFalse, reason, message)
	if err := r.patchStatus(ctx, run, orig); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: after}, nil
}

// finish moves a run to a terminal phase, once: the optimistic lock makes a
// reconcile working from a stale copy fail instead of finishing twice.
func (r *Reconciler) finish(ctx context.Context, run *agentkubev1alpha1.AgentRun, phase, reason, message string, ar *api.Run) (ctrl.Result, error) {
	orig := run.DeepCopy()
	now := metav1.NewTime(r.Clock.Now())
	st := &run.Status
	st.Phase = phase
	st.Message = message
	st.ObservedGeneration = run.Generation
	st.CompletionTime = &now
	if ar != nil {
		if ar.CompletionTime != nil {
			st.CompletionTime = ptrTime(*ar.CompletionTime)
		}
		if st.StartTime == nil && ar.StartTime != nil {
			st.StartTime = ptrTime(*ar.StartTime)
		}
		if ar.ExitCode != nil {
			code := int32(*ar.ExitCode)
			st.ExitCode = &code
		}
		st.Signal = ar.Signal
		st.OutputTail = tailOf(ar.OutputTail)
	}
	status := metav1.ConditionTrue
	ctrlutil.SetCondition(&st.Conditions, run.Generation, agentkubev1alpha1.ConditionComplete, status, reason, message)
	if err := r.patchStatus(ctx, run, orig); err != nil {
		return ctrl.Result{}, err
	}
	r.watchers.stop(run.UID)

	var start time.Time
	if st.StartTime != nil {
		start = st.StartTime.Time
	}
	metrics.ObserveRunFinished(phase, reason, start, st.CompletionTime.Time)
	eventType := corev1.EventTypeNormal
	if phase != agentkubev1alpha1.AgentRunPhaseSucceeded {
		eventType = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(run, nil, eventType, reason, "FinishRun", "%s", message)
	return ctrl.Result{}, r.prune(ctx, run.Namespace, run.Spec.AgentRef.Name)
}

func (r *Reconciler) patchStatus(ctx context.Context, run, orig *agentkubev1alpha1.AgentRun) error {
	if err := r.Client.Status().Patch(ctx, run, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("update status of run %s: %w", run.Name, err)
	}
	return nil
}

// prune deletes the Agent's oldest finished runs beyond its runHistoryLimit.
func (r *Reconciler) prune(ctx context.Context, namespace, agentName string) error {
	var ag agentkubev1alpha1.Agent
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: agentName}, &ag); err != nil {
		// Without an Agent there is no limit; owner references remove the
		// runs with the Agent.
		return client.IgnoreNotFound(err)
	}
	limit := DefaultRunHistoryLimit
	if ag.Spec.RunHistoryLimit != nil {
		limit = int(*ag.Spec.RunHistoryLimit)
	}
	var runs agentkubev1alpha1.AgentRunList
	if err := r.Client.List(ctx, &runs, client.InNamespace(namespace), client.MatchingFields{index.RunAgent: agentName}); err != nil {
		return fmt.Errorf("list runs of agent: %w", err)
	}
	var finished []*agentkubev1alpha1.AgentRun
	for i := range runs.Items {
		if IsFinished(&runs.Items[i]) && runs.Items[i].DeletionTimestamp.IsZero() {
			finished = append(finished, &runs.Items[i])
		}
	}
	if len(finished) <= limit {
		return nil
	}
	// Newest first; the ones past the limit go.
	sort.Slice(finished, func(i, j int) bool { return olderThan(finished[j], finished[i]) })
	for _, old := range finished[limit:] {
		if err := r.Client.Delete(ctx, old, client.Preconditions{UID: &old.UID}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("prune run %s: %w", old.Name, err)
		}
		log.FromContext(ctx).V(1).Info("Pruned run", "run", old.Name, "agent", agentName, "runHistoryLimit", limit)
	}
	return nil
}

// agentletClient builds a client for the agentlet in pod, with the token from
// the Agent's token Secret, verifying the Agent's certificate when the pod
// serves TLS.
func (r *Reconciler) agentletClient(ctx context.Context, pod *corev1.Pod, ag *agentkubev1alpha1.Agent) (*agentletclient.Client, error) {
	ep, err := r.agentlets.Resolve(ctx, ag.Name, pod)
	if err != nil {
		return nil, err
	}
	return ep.Client(r.HTTPClient)
}

func podReady(pod *corev1.Pod) bool {
	if !pod.DeletionTimestamp.IsZero() || pod.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// olderThan orders runs by completion (finished ones) or creation, then name.
func olderThan(a, b *agentkubev1alpha1.AgentRun) bool {
	ta, tb := a.CreationTimestamp.Time, b.CreationTimestamp.Time
	if a.Status.CompletionTime != nil && b.Status.CompletionTime != nil {
		ta, tb = a.Status.CompletionTime.Time, b.Status.CompletionTime.Time
	}
	if !ta.Equal(tb) {
		return ta.Before(tb)
	}
	return a.Name < b.Name
}

// tailOf bounds s to MaxOutputTailBytes without splitting a character.
func tailOf(s string) string {
	if len(s) <= agentkubev1alpha1.MaxOutputTailBytes {
		return s
	}
	s = s[len(s)-agentkubev1alpha1.MaxOutputTailBytes:]
	for len(s) > 0 && !utf8.RuneStart(s[0]) {
		s = s[1:]
	}
	return s
}

func isStatus(err error, code int) bool {
	var se *agentletclient.StatusError
	return errors.As(err, &se) && int(se.Status.Code) == code
}

func findCondition(conds []metav1.Condition, typ string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

func ptrTime(t time.Time) *metav1.Time { mt := metav1.NewTime(t); return &mt }

func orDefaultTime(t *time.Time, d time.Time) time.Time {
	if t != nil {
		return *t
	}
	return d
}
