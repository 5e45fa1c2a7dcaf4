package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/utils/ptr"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/apis/subresources"
	"github.com/exo-in-go/exo/pkg/apis/subresources/validation"
	agentkubeclient "github.com/exo-in-go/exo/pkg/generated/clientset/versioned/typed/agentkube/v1alpha1"
)

// FieldManager is the field manager of the AgentRuns this server creates.
const FieldManager = "agentkube-aggregated-api"

// RetryAfterSeconds is what a caller is told to wait when the Agent cannot take a run yet.
const RetryAfterSeconds = 5

// InvokeREST is agents/invoke: POST an AgentInvocation, get it back with status. It creates
// an AgentRun on behalf of the caller (recording who asked) and waits up to
// spec.waitSeconds for the run to end.
type InvokeREST struct {
	agents AgentReader
	runs   agentkubeclient.AgentRunsGetter
}

var (
	_ rest.Storage      = &InvokeREST{}
	_ rest.Scoper       = &InvokeREST{}
	_ rest.NamedCreater = &InvokeREST{}
)

// NewInvokeREST returns the agents/invoke storage. runs creates and watches AgentRuns with
// the server's own credentials: the caller was authorized for agents/invoke, not for
// AgentRuns.
func NewInvokeREST(agents AgentReader, runs agentkubeclient.AgentRunsGetter) *InvokeREST {
	return &InvokeREST{agents: agents, runs: runs}
}

// New implements rest.Storage; it is the request and response body.
func (r *InvokeREST) New() runtime.Object { return &subresources.AgentInvocation{} }

// Destroy implements rest.Storage.
func (r *InvokeREST) Destroy() {}

// NamespaceScoped implements rest.Scoper.
func (r *InvokeREST) NamespaceScoped() bool { return true }

// Create implements rest.NamedCreater.
func (r *InvokeREST) Create(ctx context.Context, name string, obj runtime.Object, createValidation rest.ValidateObjectFunc, options *metav1.CreateOptions) (runtime.Object, error) {
	inv, ok := obj.(*subresources.AgentInvocation)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("not an AgentInvocation: %T", obj))
	}
	namespace := genericapirequest.NamespaceValue(ctx)
	if errs := validation.ValidateAgentInvocation(inv); len(errs) > 0 {
		return nil, apierrors.NewInvalid(schema.GroupKind{Group: subresources.GroupName, Kind: "AgentInvocation"}, name, errs)
	}
	agent, err := getAgent(ctx, r.agents, namespace, name)
	if err != nil {
		return nil, err
	}
	// Validating admission (webhooks, ValidatingAdmissionPolicy) on CREATE agents/invoke.
	// The handler ran mutating admission already; skipping this call would silently skip
	// every validating policy.
	if createValidation != nil {
		if err := createValidation(ctx, inv.DeepCopyObject()); err != nil {
			return nil, err
		}
	}
	if agent.Spec.Paused {
		return nil, apierrors.NewConflict(subresources.Resource("agents"), name,
			errors.New("the Agent is paused and takes no runs; set spec.paused to false on agents.agentkube.io to invoke it"))
	}
	if err := checkReady(agent); err != nil {
		return nil, err
	}
	user, ok := genericapirequest.UserFrom(ctx)
	if !ok {
		return nil, apierrors.NewInternalError(errors.New("no authenticated user in the request context"))
	}

	run := &agentkubev1alpha1.AgentRun{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: generateNamePrefix(name),
			Namespace:    namespace,
			// Owned like the AgentRun controller would own it, so deleting the Agent deletes
			// its history; blockOwnerDeletion stays unset because it needs update rights on
			// the Agent's finalizers that this server has no reason to hold.
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: agentkubev1alpha1.SchemeGroupVersion.String(),
				Kind:       "Agent",
				Name:       agent.Name,
				UID:        agent.UID,
				Controller: ptr.To(true),
			}},
		},
		Spec: agentkubev1alpha1.AgentRunSpec{
			AgentRef: agentkubev1alpha1.LocalObjectReference{Name: name},
			Input:    inv.Spec.Input,
			Args:     inv.Spec.Args,
			Trigger:  agentkubev1alpha1.RunTriggerInvoke,
			Requester: &agentkubev1alpha1.Requester{
				Username: user.GetName(),
				UID:      user.GetUID(),
				Groups:   user.GetGroups(),
			},
		},
	}
	if inv.Spec.TimeoutSeconds > 0 {
		run.Spec.Timeout = &metav1.Duration{Duration: time.Duration(inv.Spec.TimeoutSeconds) * time.Second}
	}
	// dryRun is passed on: kube-apiserver validates the AgentRun against the CRD's schema
	// and CEL rules without storing it, so a dry run answers what a real one would.
	created, err := r.runs.AgentRuns(namespace).Create(ctx, run, metav1.CreateOptions{
		DryRun:       options.DryRun,
		FieldManager: FieldManager,
	})
	if err != nil {
		return nil, fmt.Errorf("creating AgentRun for Agent %s/%s: %w", namespace, name, err)
	}

	out := inv.DeepCopy()
	out.ObjectMeta = metav1.ObjectMeta{Name: name, Namespace: namespace, CreationTimestamp: created.CreationTimestamp}
	if len(options.DryRun) > 0 {
		out.Status = subresources.AgentInvocationStatus{
			RunName: created.Name,
			Message: "dry run: the AgentRun was validated and not created",
		}
		return out, nil
	}
	final := created
	if wait := time.Duration(inv.Spec.WaitSeconds) * time.Second; wait > 0 {
		final, err = r.waitForRun(ctx, created, wait)
		if err != nil {
			return nil, err
		}
	}
	out.Status = invocationStatus(final)
	return out, nil
}

// checkReady refuses an invocation the Agent cannot start soon, so the caller gets a 503 to
// retry instead of a run that sits Pending.
func checkReady(agent *agentkubev1alpha1.Agent) error {
	var reason string
	switch {
	case agent.Status.PodName == "":
		reason = "the Agent has no pod yet"
	case agent.Status.Phase != agentkubev1alpha1.AgentPhaseReady && agent.Status.Phase != agentkubev1alpha1.AgentPhaseRunning:
		phase := agent.Status.Phase
		if phase == "" {
			phase = "unknown"
		}
		reason = fmt.Sprintf("the Agent's pod %s is not ready (Agent phase %s)", agent.Status.PodName, phase)
	default:
		return nil
	}
	return serviceUnavailable(agent.Name, reason+"; retry shortly, or see `kubectl describe agent "+agent.Name+"`")
}

// serviceUnavailable is a 503 whose Retry-After header the generic server sets from
// details.retryAfterSeconds.
func serviceUnavailable(name, message string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    http.StatusServiceUnavailable,
		Reason:  metav1.StatusReasonServiceUnavailable,
		Message: message,
		Details: &metav1.StatusDetails{
			Name:              name,
			Group:             subresources.GroupName,
			Kind:              "agents",
			RetryAfterSeconds: RetryAfterSeconds,
		},
	}}
}

// waitForRun watches the run until it ends or wait passes, and returns its last state. A
// run still going when wait passes is not an error: the caller gets its current phase.
func (r *InvokeREST) waitForRun(ctx context.Context, run *agentkubev1alpha1.AgentRun, wait time.Duration) (*agentkubev1alpha1.AgentRun, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	client := r.runs.AgentRuns(run.Namespace)
	selector := fields.OneTermEqualSelector("metadata.name", run.Name).String()
	lw := &cache.ListWatch{
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.FieldSelector = selector
			return client.Watch(ctx, opts)
		},
	}
	last := run
	_, err := watchtools.Until(ctx, run.ResourceVersion, lw, func(ev watch.Event) (bool, error) {
		switch ev.Type {
		case watch.Deleted:
			return false, apierrors.NewConflict(agentkubev1alpha1.Resource("agentruns"), run.Name, errors.New("the AgentRun was deleted before it finished"))
		case watch.Added, watch.Modified:
			if r, ok := ev.Object.(*agentkubev1alpha1.AgentRun); ok {
				last = r
			}
		}
		return runFinished(last), nil
	})
	if err != nil && ctx.Err() == nil && apierrors.IsConflict(err) {
		return nil, err
	}
	// The wait passing, the request ending or the watch breaking down all leave the run as
	// last seen, which is what the caller gets.
	return last, nil
}

func runFinished(run *agentkubev1alpha1.AgentRun) bool {
	switch run.Status.Phase {
	case agentkubev1alpha1.AgentRunPhaseSucceeded, agentkubev1alpha1.AgentRunPhaseFailed, agentkubev1alpha1.AgentRunPhaseTimedOut:
		return true
	}
	return false
}

func invocationStatus(run *agentkubev1alpha1.AgentRun) subresources.AgentInvocationStatus {
	phase := run.Status.Phase
	if phase == "" {
		phase = agentkubev1alpha1.AgentRunPhasePending
	}
	st := subresources.AgentInvocationStatus{
		RunName:        run.Name,
		Phase:          phase,
		OutputTail:     run.Status.OutputTail,
		ExitCode:       run.Status.ExitCode,
		StartTime:      run.Status.StartTime,
		CompletionTime: run.Status.CompletionTime,
		Message:        run.Status.Message,
	}
	if !runFinished(run) && st.Message == "" {
		st.Message = fmt.Sprintf("the run has not finished yet; follow it with `kubectl agent logs %s --run %s -f`", run.Spec.AgentRef.Name, run.Name)
	}
	return st
}

// generateNamePrefix keeps generated AgentRun names valid: the API server appends five
// characters to generateName, and the result must stay within 253.
func generateNamePrefix(agent string) string {
	const max = 253 - 5 - 1
	if len(agent) > max {
		agent = agent[:max]
	}
	return agent + "-"
}
