// Package ctrlutil holds what every agentkube controller shares: labels,
// naming, hashing of desired state, condition helpers, clock-driven wake-ups
// and reconcile instrumentation.
package ctrlutil

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/exo-in-go/exo/pkg/metrics"
)

// Labels and annotations on the objects the manager creates.
const (
	// LabelManagedBy marks every object the manager creates; the manager's
	// cache is restricted to objects with it, so it never holds every pod of
	// the cluster in memory.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is LabelManagedBy's value.
	ManagedByValue = "agentkube-manager"
	// LabelComponent says what the object is for (agent, bastion, ...).
	LabelComponent = "app.kubernetes.io/component"
	// LabelName is the owning object's name (truncated to a label value).
	LabelName = "app.kubernetes.io/instance"
	// LabelAgent names the Agent of a pod or an AgentRun.
	LabelAgent = "agentkube.io/agent"
	// LabelTool names the Tool of a bastion or a Job.
	LabelTool = "agentkube.io/tool"
	// AnnotationSpecHash is the hash of the desired state an object was
	// built from; a different hash means the object must be replaced.
	AnnotationSpecHash = "agentkube.io/spec-hash"
	// FieldOwner is the manager's field manager name for writes.
	FieldOwner = "agentkube-manager"
)

// ManagedLabels returns the labels of an object created for owner.
func ManagedLabels(component, owner string) map[string]string {
	return map[string]string{
		LabelManagedBy: ManagedByValue,
		LabelComponent: component,
		LabelName:      LabelValue(owner),
	}
}

// LabelValue fits s into a label value (≤63 characters, alphanumeric at
// both ends) by truncating and appending a hash, so distinct long names stay
// distinct.
func LabelValue(s string) string {
	if len(s) <= 63 {
		return s
	}
	return strings.TrimRight(s[:52], "-.") + "-" + shortHash(s)
}

// ChildName is parent+"-"+suffix, shortened (with a hash of the full name)
// to fit max characters. Use 63 for Services and other DNS labels, 253 for
// DNS subdomains.
func ChildName(parent, suffix string, max int) string {
	name := parent + "-" + suffix
	if len(name) <= max {
		return name
	}
	keep := max - len(suffix) - 12
	return strings.TrimRight(parent[:keep], "-.") + "-" + shortHash(name) + "-" + suffix
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:10]
}

// Hash is a stable short hash of v's JSON form, for AnnotationSpecHash.
func Hash(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Only reachable with unmarshalable types, a programming error.
		panic(fmt.Sprintf("hash: %v", err))
	}
	return shortHash(string(b))
}

// SetCondition sets one condition, keeping its transition time when the
// status does not change.
func SetCondition(conds *[]metav1.Condition, generation int64, typ string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(conds, metav1.Condition{
		Type:               typ,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: generation,
	})
}

// Instrument wraps a reconciler so every reconcile is counted in
// agentkube_reconciles_total.
func Instrument(name string, r reconcile.Reconciler) reconcile.Reconciler {
	return reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		res, err := r.Reconcile(ctx, req)
		metrics.ObserveReconcile(name, !res.IsZero(), err)
		return res, err
	})
}

// conflictRetryDelay is how long a reconcile that lost a write race waits
// before it runs again: long enough for the informer to deliver the newer
// object, short enough that nobody notices.
const conflictRetryDelay = 100 * time.Millisecond

// RetryAfterConflict is the result of a reconcile whose write lost an
// optimistic-concurrency race (409) or found its object gone: not an error
// to report, just a reason to run again on the newer object.
func RetryAfterConflict() reconcile.Result {
	return reconcile.Result{RequeueAfter: conflictRetryDelay}
}
