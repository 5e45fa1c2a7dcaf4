package webhook

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
)

// AuditAnnotationBreakGlass is added to kube-apiserver's audit event of a request
// admitted through a break-glass group, so those sessions are easy to find.
const AuditAnnotationBreakGlass = "break-glass-group"

// lookupTimeout bounds the pod lookup; kube-apiserver gives the whole call
// timeoutSeconds (5 s in the shipped configuration).
const lookupTimeout = 3 * time.Second

// ExecGate denies interactive access (pods/exec, pods/attach, and ephemeral debug
// containers) to the pods the manager runs, except to the manager itself and to
// break-glass groups. Sessions into agents belong to the agents/attach subresource,
// which records them; a raw exec would bypass that record.
type ExecGate struct {
	// Reader looks pods up; use an uncached reader (the manager's cache holds only
	// the pods it manages, and a miss must not read as "unmanaged").
	Reader                client.Reader
	ManagerServiceAccount string
	BreakGlassGroups      []string
}

var podsResource = metav1.GroupVersionResource{Group: "", Version: "v1", Resource: "pods"}

// Handle implements admission.Handler.
func (g *ExecGate) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Resource != podsResource {
		return admission.Allowed("not a pod")
	}
	switch req.SubResource {
	case "exec", "attach", "ephemeralcontainers":
	default:
		return admission.Allowed("not an interactive subresource")
	}
	if req.UserInfo.Username == g.ManagerServiceAccount {
		return admission.Allowed("the manager's own session")
	}

	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	pod := &metav1.PartialObjectMetadata{}
	pod.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
	if err := getFast(ctx, g.Reader, client.ObjectKey{Namespace: req.Namespace, Name: req.Name}, pod); err != nil {
		if apierrors.IsNotFound(err) {
			return admission.Allowed("pod not found") // kube-apiserver answers 404 itself
		}
		// Fail closed for this request: an operator may be trying to get into an agent
		// pod. (An unreachable webhook is the failure policy's business.)
		return admission.Errored(http.StatusInternalServerError,
			fmt.Errorf("looking up pod %s/%s to check whether agentkube-manager runs it: %w", req.Namespace, req.Name, err))
	}
	kind, owner, managed := managedPod(pod)
	if !managed {
		return admission.Allowed("pod not managed by agentkube-manager")
	}
	if group, ok := g.breakGlass(req.UserInfo.Groups); ok {
		logf.FromContext(ctx).Info("Break-glass session into a managed pod admitted",
			"user", req.UserInfo.Username, "group", group, "pod", req.Namespace+"/"+req.Name, "subresource", req.SubResource)
		resp := admission.Allowed("break-glass group " + group)
		resp.AuditAnnotations = map[string]string{AuditAnnotationBreakGlass: group}
		return resp
	}
	return admission.Denied(denialMessage(req.AdmissionRequest, kind, owner))
}

func (g *ExecGate) breakGlass(groups []string) (string, bool) {
	for _, bg := range g.BreakGlassGroups {
		if slices.Contains(groups, bg) {
			return bg, true
		}
	}
	return "", false
}

// managedPod reports whether the manager runs the pod, and for what: an Agent, a
// Tool's bastion, or another agentkube.io object.
func managedPod(pod *metav1.PartialObjectMetadata) (kind, owner string, managed bool) {
	labels := pod.GetLabels()
	if labels[LabelManagedBy] == ManagedByValue {
		if name := labels[LabelAgent]; name != "" {
			return "Agent", ownerName(pod, "Agent", name), true
		}
		if name := labels[LabelTool]; name != "" {
			return "Tool", ownerName(pod, "Tool", name), true
		}
	}
	for _, ref := range pod.GetOwnerReferences() {
		gv, err := schema.ParseGroupVersion(ref.APIVersion)
		if err == nil && gv.Group == agentkubev1alpha1.SchemeGroupVersion.Group {
			return ref.Kind, ref.Name, true
		}
	}
	return "", "", false
}

// ownerName prefers the owner reference's name: label values are truncated to 63
// characters, object names are not.
func ownerName(pod *metav1.PartialObjectMetadata, kind, fromLabel string) string {
	for _, ref := range pod.GetOwnerReferences() {
		if ref.Kind == kind && strings.HasPrefix(ref.APIVersion, agentkubev1alpha1.SchemeGroupVersion.Group+"/") {
			return ref.Name
		}
	}
	return fromLabel
}

func denialMessage(req admissionv1.AdmissionRequest, kind, owner string) string {
	what := "exec into"
	switch req.SubResource {
	case "attach":
		what = "attach to"
	case "ephemeralcontainers":
		what = "debug containers in"
	}
	pod := req.Namespace + "/" + req.Name
	switch kind {
	case "Agent":
		return fmt.Sprintf("%s agent pod %s is not allowed: sessions into agents are recorded through the audited "+
			"agents/attach subresource; use it instead: kubectl agent attach %s -n %s", what, pod, owner, req.Namespace)
	case "Tool":
		return fmt.Sprintf("%s bastion pod %s of Tool %q is not allowed: sessions through Tools are recorded through the "+
			"audited agents/attach subresource; attach to an Agent that uses the Tool instead: kubectl agent attach AGENT -n %s",
			what, pod, owner, req.Namespace)
	default:
		return fmt.Sprintf("%s pod %s is not allowed: agentkube-manager runs it for %s %q; use the audited agents/attach "+
			"subresource instead: kubectl agent attach AGENT -n %s", what, pod, kind, owner, req.Namespace)
	}
}
