package apiserver

import (
	"net/http"
	"testing"

	"k8s.io/apiserver/pkg/endpoints/request"

	"github.com/exo-in-go/exo/pkg/apis/subresources/v1alpha1"
)

func TestLongRunningFuncCoversStreamingSubresources(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	for _, tc := range []struct {
		verb, subresource string
		want              bool
	}{
		{"get", "log", true},
		{"get", "attach", true},
		{"create", "attach", true},
		{"watch", "", true},
		{"create", "invoke", false}, // must answer within kube-apiserver's 60 s
		{"get", "", false},
		{"list", "", false},
	} {
		info := &request.RequestInfo{IsResourceRequest: true, Verb: tc.verb, Resource: "agents", Subresource: tc.subresource}
		if got := LongRunningFunc(req, info); got != tc.want {
			t.Errorf("%s agents/%s long-running = %v, want %v", tc.verb, tc.subresource, got, tc.want)
		}
	}
}

func TestSchemeKnowsTheWireTypes(t *testing.T) {
	for _, kind := range []string{"Agent", "AgentList", "AgentInvocation", "AgentLogOptions", "AgentAttachOptions"} {
		if !Scheme.Recognizes(v1alpha1.SchemeGroupVersion.WithKind(kind)) {
			t.Errorf("scheme does not know %s", kind)
		}
	}
}
