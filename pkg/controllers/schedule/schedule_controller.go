// Package schedule creates AgentRuns on an Agent's spec.schedule with the
// CronJob controller's rules: never two runs of one Agent at once, no burst of
// missed runs after downtime (only the most recent missed time is run, and
// only within the starting deadline), and deterministic run names so a
// restarted manager cannot create the same occurrence twice.
package schedule

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/robfig/cron/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/controllers/agentrun"
	"github.com/exo-in-go/exo/pkg/controllers/ctrlutil"
	"github.com/exo-in-go/exo/pkg/controllers/index"
	"github.com/exo-in-go/exo/pkg/metrics"
)

// Name is the controller's name in logs, metrics and events.
const Name = "agent-schedule"

// LabelScheduledTime is set on scheduled runs: the occurrence they are for.
const LabelScheduledTime = "agentkube.io/scheduled-time"

// maxWalk bounds how many missed occurrences one reconcile steps through.
const maxWalk = 1000

// DefaultStartingDeadline is how late a scheduled run may still start.
const DefaultStartingDeadline = 5 * time.Minute

// parser accepts five fields and descriptors (@hourly, @every 30m), the same
// language as the CRD's validation.
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Reconciler runs Agent schedules.
type Reconciler struct {
	Client   client.Client
	Scheme   *runtime.Scheme
	Recorder recorder.EventRecorder
	// Clock is injectable so tests drive schedules with a fake clock.
	Clock clock.WithDelayedExecution
	// StartingDeadline bounds how late an occurrence may start; an older one
	// is skipped (and reported) instead of being run late.
	StartingDeadline time.Duration

	wakeups *ctrlutil.Wakeups
}

// +kubebuilder:rbac:groups=agentkube.io,resources=agents,verbs=get;list;watch
// +kubebuilder:rbac:groups=agentkube.io,resources=agents/status,verbs=get;patch;update
// +kubebuilder:rbac:groups=agentkube.io,resources=agentruns,verbs=get;list;watch;create

// SetupWithManager registers the controller.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.StartingDeadline <= 0 {
		r.StartingDeadline = DefaultStartingDeadline
	}
	r.wakeups = ctrlutil.NewWakeups(r.Clock)
	return ctrl.NewControllerManagedBy(mgr).
		Named(Name).
		For(&agentkubev1alpha1.Agent{}).
		// A run of the Agent ending may release an occurrence that waited.
		Watches(&agentkubev1alpha1.AgentRun{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			run := o.(*agentkubev1alpha1.AgentRun)
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: run.Namespace, Name: run.Spec.AgentRef.Name}}}
		})).
		WatchesRawSource(r.wakeups.Source()).
		Complete(ctrlutil.Instrument(Name, r))
}

// Reconcile evaluates one Agent's schedule at the clock's now.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var ag agentkubev1alpha1.Agent
	if err := r.Client.Get(ctx, req.NamespacedName, &ag); err != nil {
		if apierrors.IsNotFound(err) {
			r.wakeups.Cancel(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !ag.DeletionTimestamp.IsZero() {
		r.wakeups.Cancel(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	orig := ag.DeepCopy()
	res, err := r.evaluate(ctx, &ag)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !equality.Semantic.DeepEqual(orig.Status, ag.Status) {
		if err := r.Client.Status().Patch(ctx, &ag, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
			if apierrors.IsConflict(err) {
				return ctrlutil.RetryAfterConflict(), nil
			}
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
	return res, nil
}

func (r *Reconciler) evaluate(ctx context.Context, ag *agentkubev1alpha1.Agent) (ctrl.Result, error) {
	key := client.ObjectKeyFromObject(ag)
	st := &ag.Status
	gen := ag.Generation
	if ag.Spec.Schedule == "" {
		r.wakeups.Cancel(key)
		st.NextScheduleTime = nil
		meta.RemoveStatusCondition(&st.Conditions, agentkubev1alpha1.ConditionScheduled)
		return ctrl.Result{}, nil
	}
	sched, err := parser.Parse(ag.Spec.Schedule)
	if err != nil {
		r.wakeups.Cancel(key)
		st.NextScheduleTime = nil
		ctrlutil.SetCondition(&st.Conditions, gen, agentkubev1alpha1.ConditionScheduled, metav1.ConditionFalse, agentkubev1alpha1.ReasonInvalidSchedule,
			fmt.Sprintf("spec.schedule %q cannot be parsed: %v. Use five fields (minute hour day-of-month month day-of-week) or a descriptor such as @hourly or @every 30m.", ag.Spec.Schedule, err))
		return ctrl.Result{}, nil
	}
	now := r.Clock.Now()
	if ag.Spec.Paused {
		// Occurrences while paused are not queued: after unpausing at most
		// the latest one runs, and only within the starting deadline (the
		// CronJob rule for suspend).
		r.wakeups.Cancel(key)
		st.NextScheduleTime = nil
		ctrlutil.SetCondition(&st.Conditions, gen, agentkubev1alpha1.ConditionScheduled, metav1.ConditionFalse, agentkubev1alpha1.ReasonAgentPaused,
			"The Agent is paused; set spec.paused to false to arm the schedule.")
		return ctrl.Result{}, nil
	}

	// Count from the last occurrence the schedule handled, or from the
	// Agent's creation; the starting deadline keeps a schedule added to an
	// old Agent from firing stale occurrences.
	last := ag.CreationTimestamp.Time
	if st.LastScheduleTime != nil {
		last = st.LastScheduleTime.Time
	}
	// Walk the occurrences since then: the latest one inside the deadline
	// window is due; older ones are missed. After a long downtime the walk is
	// cut short by jumping to the window (for "@every" schedules, which count
	// from the previous occurrence, that re-anchors them).
	earliest := now.Add(-r.StartingDeadline)
	var due, lastMissed time.Time
	for n, t := 0, sched.Next(last); !t.After(now); n++ {
		if t.Before(earliest) {
			lastMissed = t
			if n >= maxWalk {
				t = sched.Next(earliest.Add(-time.Second))
				continue
			}
		} else {
			due = t
		}
		t = sched.Next(t)
	}
	next := sched.Next(now)
	st.NextScheduleTime = ptrTime(next)
	r.wakeups.At(key, next.Sub(now))

	if !lastMissed.IsZero() && due.IsZero() {
		metrics.ScheduledRuns.WithLabelValues("missed").Inc()
		r.Recorder.Eventf(ag, nil, corev1.EventTypeWarning, agentkubev1alpha1.ReasonMissedSchedule, "Schedule",
			"Occurrences up to %s were more than the starting deadline (%s) late and were skipped, not replayed",
			lastMissed.UTC().Format(time.RFC3339), r.StartingDeadline)
		// Remember that they were accounted for.
		st.LastScheduleTime = ptrTime(lastMissed)
	}
	if due.IsZero() {
		ctrlutil.SetCondition(&st.Conditions, gen, agentkubev1alpha1.ConditionScheduled, metav1.ConditionTrue, agentkubev1alpha1.ReasonArmed,
			fmt.Sprintf("Next run at %s.", next.UTC().Format(time.RFC3339)))
		return ctrl.Result{}, nil
	}

	// Never two at once: an occurrence waits (within its deadline) for the
	// Agent's unfinished run; the run ending brings us back.
	active, err := r.activeRun(ctx, ag)
	if err != nil {
		return ctrl.Result{}, err
	}
	if active != "" {
		ctrlutil.SetCondition(&st.Conditions, gen, agentkubev1alpha1.ConditionScheduled, metav1.ConditionTrue, agentkubev1alpha1.ReasonPreviousRunActive,
			fmt.Sprintf("The run due at %s waits for run %s to finish; it is skipped if that takes longer than %s.",
				due.UTC().Format(time.RFC3339), active, r.StartingDeadline))
		// Re-check when the due occurrence's deadline expires.
		r.wakeups.At(key, min(next.Sub(now), due.Add(r.StartingDeadline).Sub(now)+time.Second))
		return ctrl.Result{}, nil
	}

	run := &agentkubev1alpha1.AgentRun{
		ObjectMeta: metav1.ObjectMeta{
			Name:      RunName(ag.Name, due),
			Namespace: ag.Namespace,
			Labels: map[string]string{
				ctrlutil.LabelAgent: ctrlutil.LabelValue(ag.Name),
				LabelScheduledTime:  strconv.FormatInt(due.Unix(), 10),
			},
		},
		Spec: agentkubev1alpha1.AgentRunSpec{
			AgentRef: agentkubev1alpha1.LocalObjectReference{Name: ag.Name},
			Trigger:  agentkubev1alpha1.RunTriggerSchedule,
		},
	}
	if err := controllerutil.SetControllerReference(ag, run, r.Scheme); err != nil {
		return ctrl.Result{}, fmt.Errorf("set owner of scheduled run: %w", err)
	}
	switch err := r.Client.Create(ctx, run); {
	case err == nil:
		metrics.ScheduledRuns.WithLabelValues("created").Inc()
		r.Recorder.Eventf(ag, run, corev1.EventTypeNormal, agentkubev1alpha1.ReasonScheduledRunCreated, "Schedule", "Created run %s for %s", run.Name, due.UTC().Format(time.RFC3339))
	case apierrors.IsAlreadyExists(err):
		// The name is the occurrence: it was created before (by us before a
		// restart, or by another replica's last act as leader).
	default:
		return ctrl.Result{}, fmt.Errorf("create scheduled run: %w", err)
	}
	st.LastScheduleTime = ptrTime(due)
	st.LastRun = run.Name
	ctrlutil.SetCondition(&st.Conditions, gen, agentkubev1alpha1.ConditionScheduled, metav1.ConditionTrue, agentkubev1alpha1.ReasonArmed,
		fmt.Sprintf("Last run %s; next run at %s.", run.Name, next.UTC().Format(time.RFC3339)))
	log.FromContext(ctx).V(1).Info("Scheduled run", "run", run.Name, "due", due, "next", next)
	return ctrl.Result{}, nil
}

func (r *Reconciler) activeRun(ctx context.Context, ag *agentkubev1alpha1.Agent) (string, error) {
	var runs agentkubev1alpha1.AgentRunList
	if err := r.Client.List(ctx, &runs, client.InNamespace(ag.Namespace), client.MatchingFields{index.RunAgent: ag.Name}); err != nil {
		return "", fmt.Errorf("list runs of agent: %w", err)
	}
	for i := range runs.Items {
		if !agentrun.IsFinished(&runs.Items[i]) {
			return runs.Items[i].Name, nil
		}
	}
	return "", nil
}

// RunName is the name of the run for the occurrence at t: deterministic, so
// creating it twice fails instead of running twice.
func RunName(agentName string, t time.Time) string {
	return ctrlutil.ChildName(agentName, strconv.FormatInt(t.Unix(), 10), 253)
}

func ptrTime(t time.Time) *metav1.Time { mt := metav1.NewTime(t); return &mt }
