package webhook

import (
	"encoding/json"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

func requesterRequest(t *testing.T, username string, groups []string, object string) admission.Request {
	t.Helper()
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Resource:  agentRunsResource,
		Operation: admissionv1.Create,
		UserInfo:  authenticationv1.UserInfo{Username: username, UID: "uid-" + username, Groups: groups},
		Object:    runtime.RawExtension{Raw: []byte(object)},
	}}
}

func TestRequesterDefaulter(t *testing.T) {
	d := &RequesterDefaulter{ManagerServiceAccount: DefaultManagerServiceAccount}
	groups := []string{"team-a", "system:authenticated"}
	wantCaller := `{"username":"mallory","uid":"uid-mallory","groups":["team-a","system:authenticated"]}`
	for _, tc := range []struct {
		name, user, object string
		allowed            bool
		patch              string // JSON of the single expected operation; "" for none
	}{
		{"none becomes the caller", "mallory", `{"spec":{"agentRef":{"name":"a"}}}`, true,
			`{"op":"add","path":"/spec/requester","value":` + wantCaller + `}`},
		{"own name is completed", "mallory", `{"spec":{"requester":{"username":"mallory"}}}`, true,
			`{"op":"replace","path":"/spec/requester","value":` + wantCaller + `}`},
		{"own groups in another order", "mallory", `{"spec":{"requester":{"username":"mallory","groups":["system:authenticated","team-a"]}}}`, true,
			`{"op":"replace","path":"/spec/requester","value":` + wantCaller + `}`},
		{"no spec at all still patches", "mallory", `{}`, true,
			`{"op":"add","path":"/spec","value":{"requester":` + wantCaller + `}}`},
		{"someone else", "mallory", `{"spec":{"requester":{"username":"alice"}}}`, false, ""},
		{"own name, foreign uid", "mallory", `{"spec":{"requester":{"username":"mallory","uid":"x"}}}`, false, ""},
		{"own name, extra group", "mallory", `{"spec":{"requester":{"username":"mallory","groups":["system:masters"]}}}`, false, ""},
		{"the manager names anyone", DefaultManagerServiceAccount, `{"spec":{"requester":{"username":"alice"}}}`, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := d.Handle(t.Context(), requesterRequest(t, tc.user, groups, tc.object))
			if resp.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v (%+v)", resp.Allowed, tc.allowed, resp.Result)
			}
			if tc.patch == "" {
				if len(resp.Patches) != 0 {
					t.Fatalf("unexpected patches %+v", resp.Patches)
				}
				return
			}
			if len(resp.Patches) != 1 {
				t.Fatalf("patches = %+v, want one", resp.Patches)
			}
			got, err := json.Marshal(resp.Patches[0])
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.patch {
				t.Fatalf("patch = %s\nwant    %s", got, tc.patch)
			}
		})
	}
}
