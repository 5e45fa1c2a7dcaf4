package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	v1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
)

// ToolValidator admits Tool creates and spec updates that the Tool controller can
// actually run: ValidateToolSpec, plus the credentials Secret and key present in the
// Tool's namespace.
type ToolValidator struct {
	// Reader reads Secrets from kube-apiserver; use an uncached reader.
	Reader client.Reader
	// SecretKeys, when set, answers the common case (the key is there) without a
	// round trip; whatever it does not confirm is read through Reader.
	SecretKeys *SecretKeys
}

// Handle implements admission.Handler.
func (v *ToolValidator) Handle(ctx context.Context, req admission.Request) admission.Response {
	tool := &v1alpha1.Tool{}
	if err := json.Unmarshal(req.Object.Raw, tool); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding Tool: %w", err))
	}
	if req.Operation == admissionv1.Update {
		old := &v1alpha1.Tool{}
		if err := json.Unmarshal(req.OldObject.Raw, old); err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the existing Tool: %w", err))
		}
		// Ratchet: only a changed spec is checked again. A Tool whose Secret was
		// deleted later must still accept label, annotation and finalizer changes,
		// and must be deletable.
		if tool.DeletionTimestamp != nil || equality.Semantic.DeepEqual(old.Spec, tool.Spec) {
			return admission.Allowed("spec unchanged")
		}
	}

	errs := ValidateToolSpec(&tool.Spec, field.NewPath("spec"))
	secretErrs, err := v.validateCredentials(ctx, req.Namespace, tool.Spec.Config.CredentialsRef)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	errs = append(errs, secretErrs...)
	if len(errs) == 0 {
		return admission.Allowed("")
	}
	resp := admission.Denied(formatErrors(errs))
	resp.Result.Code = http.StatusUnprocessableEntity
	resp.Result.Reason = metav1.StatusReasonInvalid
	resp.Result.Details = &metav1.StatusDetails{Group: v1alpha1.SchemeGroupVersion.Group, Kind: "Tool", Name: tool.Name}
	for _, e := range errs {
		resp.Result.Details.Causes = append(resp.Result.Details.Causes, metav1.StatusCause{
			Type: metav1.CauseType(e.Type), Message: e.ErrorBody(), Field: e.Field,
		})
	}
	return resp
}

// validateCredentials checks that the referenced Secret and key exist. Only key names
// are looked at; values are never logged or returned.
func (v *ToolValidator) validateCredentials(ctx context.Context, namespace string, ref *v1alpha1.SecretKeyRef) (field.ErrorList, error) {
	if ref == nil {
		return nil, nil
	}
	path := field.NewPath("spec", "config", "credentialsRef")
	if keys, ok := v.SecretKeys.lookup(namespace, ref.Name); ok && keys[ref.Key] {
		return nil, nil
	}
	// The index does not know the Secret or the key, or it is empty. The index may
	// lag a Secret created or changed a moment ago, so a quorum read settles it
	// before anything is refused.
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	secret := &corev1.Secret{}
	err := v.Reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: ref.Name}, secret)
	switch {
	case apierrors.IsNotFound(err):
		return field.ErrorList{field.Invalid(path, ref.Name,
			fmt.Sprintf("Secret %q not found in namespace %q", ref.Name, namespace))}, nil
	case err != nil:
		return nil, fmt.Errorf("reading Secret %s/%s referenced by spec.config.credentialsRef: %w", namespace, ref.Name, err)
	}
	value, ok := secret.Data[ref.Key]
	if !ok {
		return field.ErrorList{field.Invalid(path.Child("key"), ref.Key,
			fmt.Sprintf("Secret %q in namespace %q has no key %q", ref.Name, namespace, ref.Key))}, nil
	}
	if len(value) == 0 {
		return field.ErrorList{field.Invalid(path.Child("key"), ref.Key,
			fmt.Sprintf("key %q of Secret %q in namespace %q is empty", ref.Key, ref.Name, namespace))}, nil
	}
	return nil, nil
}
