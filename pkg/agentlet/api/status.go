package api

import (
	"encoding/json"
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Errors are reported as a Kubernetes metav1.Status, the shape every
// Kubernetes client already knows how to read.

// NewStatus builds a Failure status for an HTTP error.
func NewStatus(code int, reason metav1.StatusReason, message string) metav1.Status {
	return metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Code:     int32(code),
		Reason:   reason,
		Message:  message,
	}
}

// WriteStatus writes s as the JSON body of an HTTP response with s.Code.
func WriteStatus(w http.ResponseWriter, s metav1.Status) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(int(s.Code))
	_ = json.NewEncoder(w).Encode(s) // the client may be gone; nothing to do
}

// WriteError is WriteStatus(w, NewStatus(...)).
func WriteError(w http.ResponseWriter, code int, reason metav1.StatusReason, message string) {
	WriteStatus(w, NewStatus(code, reason, message))
}
