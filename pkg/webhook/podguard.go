package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
)

// ProtectedLabels are the labels by which the exec gate recognises the manager's
// pods. Only the manager may change them on a pod it runs.
var ProtectedLabels = []string{LabelManagedBy, LabelAgent, LabelTool}

// DefaultGarbageCollectorUsers are the identities kube-controller-manager's garbage
// collector acts as: with --use-service-account-credentials (kubeadm's default) its
// own ServiceAccount, otherwise the controller manager's user.
var DefaultGarbageCollectorUsers = []string{
	"system:serviceaccount:kube-system:generic-garbage-collector",
	"system:kube-controller-manager",
}

// PodGuard refuses updates of the manager's pods that would take them out of the exec
// gate's reach, or put code into them without an exec:
//
//   - changing or removing the labels in ProtectedLabels,
//   - adding, changing or removing an owner reference into the agentkube.io group,
//   - changing the pod's spec (an image swap runs arbitrary code in the agent pod, with
//     its tokens, as an exec would).
//
// The manager's ServiceAccount may do all of it. The garbage collector may remove
// agentkube.io owner references and nothing else: that is how `kubectl delete
// --cascade=orphan` of an Agent completes, and the pod stays gated by its labels.
// Break-glass groups are not exempt: they may exec themselves (the exec gate admits
// and annotates it), but un-gating a pod would let everyone else in unrecorded.
type PodGuard struct {
	ManagerServiceAccount string
	GarbageCollectorUsers []string
}

// Handle implements admission.Handler.
func (g *PodGuard) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Resource != podsResource || req.Operation != admissionv1.Update {
		return admission.Allowed("not a pod update")
	}
	if req.UserInfo.Username == g.ManagerServiceAccount {
		return admission.Allowed("the manager's own change")
	}
	oldPod, newPod := &corev1.Pod{}, &corev1.Pod{}
	if err := json.Unmarshal(req.OldObject.Raw, oldPod); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the existing pod: %w", err))
	}
	if err := json.Unmarshal(req.Object.Raw, newPod); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the updated pod: %w", err))
	}
	kind, owner, managed := managedPod(&metav1.PartialObjectMetadata{ObjectMeta: oldPod.ObjectMeta})
	if !managed {
		return admission.Allowed("pod not managed by agentkube-manager")
	}

	changes := protectedChanges(oldPod, newPod)
	if len(changes) == 0 {
		return admission.Allowed("no protected field changed")
	}
	if slices.Contains(g.GarbageCollectorUsers, req.UserInfo.Username) && onlyOwnerReferencesRemoved(changes, oldPod, newPod) {
		logf.FromContext(ctx).Info("Garbage collector removed agentkube.io owner references of a managed pod",
			"user", req.UserInfo.Username, "pod", req.Namespace+"/"+req.Name)
		return admission.Allowed("the garbage collector orphans the pod; its labels keep it gated")
	}
	what := "pod"
	switch kind {
	case "Agent":
		what = "agent pod"
	case "Tool":
		what = "bastion pod"
	}
	return admission.Denied(fmt.Sprintf("changing %s of %s %s/%s is not allowed: agentkube-manager runs it for %s %q, "+
		"and only the manager may change what marks the pod as its own or what the pod runs (sessions into it are "+
		"recorded through the agents/attach subresource); change the %s instead, or delete the pod and the manager recreates it",
		strings.Join(changes, ", "), what, req.Namespace, req.Name, kind, owner, kind))
}

// protectedChanges names what an update changes that only the manager may change.
func protectedChanges(oldPod, newPod *corev1.Pod) []string {
	var changes []string
	for _, key := range ProtectedLabels {
		// An empty value marks nothing, like a missing one (and the webhook
		// configuration's matchConditions compare them the same way).
		if oldPod.Labels[key] != newPod.Labels[key] {
			changes = append(changes, "label "+key)
		}
	}
	if !equality.Semantic.DeepEqual(agentkubeOwners(oldPod.OwnerReferences), agentkubeOwners(newPod.OwnerReferences)) {
		changes = append(changes, "agentkube.io owner references")
	}
	if !equality.Semantic.DeepEqual(oldPod.Spec, newPod.Spec) {
		changes = append(changes, "spec")
	}
	return changes
}

// onlyOwnerReferencesRemoved reports, given the update's protectedChanges, whether it does nothing protected but
// drop agentkube.io owner references (labels and spec unchanged, no reference added
// or altered).
func onlyOwnerReferencesRemoved(changes []string, oldPod, newPod *corev1.Pod) bool {
	if len(changes) != 1 || changes[0] != "agentkube.io owner references" {
		return false
	}
	before := agentkubeOwners(oldPod.OwnerReferences)
	for _, ref := range agentkubeOwners(newPod.OwnerReferences) {
		if !slices.ContainsFunc(before, func(o metav1.OwnerReference) bool {
			return equality.Semantic.DeepEqual(o, ref)
		}) {
			return false
		}
	}
	return true
}

// agentkubeOwners are the owner references into the agentkube.io group, the ones the
// exec gate honours.
func agentkubeOwners(refs []metav1.OwnerReference) []metav1.OwnerReference {
	var out []metav1.OwnerReference
	for _, ref := range refs {
		if gv, err := schema.ParseGroupVersion(ref.APIVersion); err == nil && gv.Group == agentkubev1alpha1.SchemeGroupVersion.Group {
			out = append(out, ref)
		}
	}
	return out
}
