package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
)

var agentRunsResource = metav1.GroupVersionResource{
	Group: agentkubev1alpha1.SchemeGroupVersion.Group, Version: agentkubev1alpha1.SchemeGroupVersion.Version, Resource: "agentruns",
}

// RequesterDefaulter makes AgentRun.spec.requester name the identity kube-apiserver
// authenticated for the create, so the run history is an audit trail nobody can
// forge. A create without a requester gets the caller's; one with a requester that
// names the caller gets the caller's exact identity (uid and groups included); one
// naming anybody else is refused.
//
// The manager's ServiceAccount is trusted with any value: agents/invoke creates runs
// as the manager on behalf of the user the aggregated API authenticated, and the
// schedule and the platform tunnel create them as the manager too.
//
// The spec is immutable after creation (a CEL rule on the CRD), so CREATE is the only
// place the requester can be set.
type RequesterDefaulter struct {
	ManagerServiceAccount string
}

// Handle implements admission.Handler.
func (d *RequesterDefaulter) Handle(_ context.Context, req admission.Request) admission.Response {
	if req.Resource != agentRunsResource || req.Operation != admissionv1.Create || req.SubResource != "" {
		return admission.Allowed("not an AgentRun create")
	}
	if req.UserInfo.Username == d.ManagerServiceAccount {
		return admission.Allowed("the manager sets the requester it authenticated")
	}
	run := &agentkubev1alpha1.AgentRun{}
	if err := json.Unmarshal(req.Object.Raw, run); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding AgentRun: %w", err))
	}
	caller := requesterOf(req.UserInfo)
	if given := run.Spec.Requester; given != nil && !names(given, caller) {
		return admission.Denied(fmt.Sprintf("spec.requester: names %q, but the request was made by %q; the requester "+
			"is set from the authenticated caller, so leave it empty", given.Username, caller.Username))
	}
	// One operation on exactly this field, rather than a diff of a re-encoded object,
	// so nothing else the caller sent is touched.
	var shape struct {
		Spec map[string]json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(req.Object.Raw, &shape); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding AgentRun: %w", err))
	}
	op := jsonpatch.JsonPatchOperation{Operation: "add", Path: "/spec/requester", Value: caller}
	switch {
	case shape.Spec == nil:
		// No spec at all: the schema refuses the object next; the patch must still apply.
		op = jsonpatch.JsonPatchOperation{Operation: "add", Path: "/spec", Value: map[string]any{"requester": caller}}
	case shape.Spec["requester"] != nil:
		op.Operation = "replace"
	}
	return admission.Patched("requester set from the authenticated caller", op)
}

// requesterOf is the identity kube-apiserver authenticated. Requester has no field
// for the user's extra attributes (scopes, the credential's ID), so they are not
// recorded; kube-apiserver's audit log has them.
func requesterOf(u authenticationv1.UserInfo) *agentkubev1alpha1.Requester {
	r := &agentkubev1alpha1.Requester{Username: u.Username, UID: u.UID}
	if len(u.Groups) > 0 {
		r.Groups = slices.Clone(u.Groups)
	}
	return r
}

// names reports whether a caller-supplied requester is consistent with the caller:
// the same username, and uid and groups either left out or the same. The stored value
// is then replaced by the complete identity anyway.
func names(given, caller *agentkubev1alpha1.Requester) bool {
	if given.Username != caller.Username {
		return false
	}
	if given.UID != "" && given.UID != caller.UID {
		return false
	}
	if len(given.Groups) > 0 {
		a, b := slices.Clone(given.Groups), slices.Clone(caller.Groups)
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(slices.Compact(a), slices.Compact(b)) {
			return false
		}
	}
	return true
}
